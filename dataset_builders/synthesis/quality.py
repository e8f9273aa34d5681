"""The paper's quality check of negative images: does the image show what its negative caption says?

An LLM writes yes/no questions about each negative caption (:data:`.prompts.QUESTION_PROMPT`, five by default), a
visual-question-answering model answers them on the negative image, and the share of "yes" is the row's
``vqa_score`` (the paper reports about 76% "yes" for SDXL-turbo images, with ViLT as the VQA model).

transformers 5 has no ``visual-question-answering`` pipeline any more; :class:`VQAModel` does what it did with the
``AutoModelForVisualQuestionAnswering`` classes: classifier models (ViLT, the paper's choice and the default) answer
with their best label, generative ones (BLIP) with their decoded text.

The pure parts (:func:`parse_questions`, :func:`yes_share`, :func:`summarize_vqa_scores`) are separate from the
models.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.devices import resolve_device, resolve_dtype
from .llm import LanguageModel
from .prompts import QUESTION_PROMPT, question_prompt

DEFAULT_VQA = "dandelin/vilt-b32-finetuned-vqa"

_ITEM_PREFIX = re.compile(r"^\s*(?:(?:q(?:uestion)?\s*)?\d+\s*[.):-]|[-*\u2022])\s*", re.IGNORECASE)
_YES = ("yes", "yeah", "yep", "true")


def parse_questions(text: str, n: int = 5) -> list[str]:
    """The first ``n`` distinct yes/no questions in an LLM's answer: one per line (numbering and bullets removed),
    or several on one line, each ending with "?"; text that is not a question is ignored."""
    questions: list[str] = []
    for line in text.splitlines():
        line = _ITEM_PREFIX.sub("", line).strip()
        for part in re.findall(r"[^?]*\?", line):
            question = _ITEM_PREFIX.sub("", part).strip()
            if len(question) > 1 and question.lower() not in (q.lower() for q in questions):
                questions.append(question)
    return questions[:n]


def is_yes(answer: str) -> bool:
    """Whether a VQA answer means "yes"."""
    return answer.strip().lower().rstrip(".!") in _YES


def yes_share(answers: Sequence[str]) -> float | None:
    """The share of "yes" among ``answers`` (None when there are none)."""
    if not answers:
        return None
    return sum(is_yes(a) for a in answers) / len(answers)


def summarize_vqa_scores(scores: Sequence[float | None]) -> dict[str, Any]:
    """A summary of per-row ``vqa_score`` values: rows scored and unscored (no valid question), mean and median
    share of "yes", the share of rows with every answer "yes", and a histogram over [0, 1] in five bins."""
    values = [float(s) for s in scores if s is not None and not (isinstance(s, float) and math.isnan(s))]
    bins = [0] * 5
    for value in values:
        bins[min(int(value * 5), 4)] += 1
    return {
        "rows": len(scores),
        "scored": len(values),
        "unscored": len(scores) - len(values),
        "mean_yes": statistics.fmean(values) if values else None,
        "median_yes": statistics.median(values) if values else None,
        "all_yes": sum(v == 1.0 for v in values) / len(values) if values else None,
        "histogram": {f"{i / 5:.1f}-{(i + 1) / 5:.1f}": count for i, count in enumerate(bins)},
    }


@dataclass
class VQAModel:
    """A visual-question-answering model and its processor.

    Args:
        model: an ``AutoModelForVisualQuestionAnswering`` model (ViLT-style classifier or BLIP-style generator).
        processor: its processor.
        batch_size: (image, question) pairs per forward pass.
        max_new_tokens: answer length for generative models.
    """

    model: Any
    processor: Any
    batch_size: int = 32
    max_new_tokens: int = 5

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_VQA, dtype: str | None = None,
                        device: str | None = None, batch_size: int = 32) -> "VQAModel":
        """Load a VQA model (safetensors weights) and its processor from the Hub or a folder."""
        from transformers import AutoConfig, AutoModelForVisualQuestionAnswering, AutoProcessor
        from transformers.models.auto.modeling_auto import MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES

        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        config = AutoConfig.from_pretrained(str(name_or_path))
        if config.model_type not in MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES:
            raise ValueError(
                f"{str(name_or_path)!r} is a {config.model_type!r} model, not a visual-question-answering model "
                f"({', '.join(MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES)}). Use e.g. {DEFAULT_VQA!r}."
            )
        kwargs: dict[str, Any] = {"use_safetensors": True}
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype
        model = AutoModelForVisualQuestionAnswering.from_pretrained(str(name_or_path), **kwargs).to(device).eval()
        return cls(model, AutoProcessor.from_pretrained(str(name_or_path)), batch_size=batch_size)

    def answer(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]:
        """The answer to ``questions[i]`` about ``images[i]`` for every ``i``."""
        import torch

        if len(images) != len(questions):
            raise ValueError(f"Give one question per image: {len(images)} images, {len(questions)} questions.")
        generative = self.model.can_generate()
        answers: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch_images = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            batch_questions = list(questions[start : start + self.batch_size])
            inputs = self.processor(images=batch_images, text=batch_questions, padding=True, truncation=True,
                                    return_tensors="pt").to(self.model.device)
            with torch.inference_mode():
                if generative:
                    output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
                    answers.extend(a.strip() for a in self.processor.batch_decode(output, skip_special_tokens=True))
                else:
                    logits = self.model(**inputs).logits
                    labels = self.model.config.id2label
                    answers.extend(str(labels[int(i)]) for i in logits.argmax(-1).tolist())
        return answers


@dataclass
class QualityResult:
    """Questions about one negative caption, the VQA answers on the negative image, and the share of "yes"."""

    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    @property
    def vqa_score(self) -> float | None:
        return yes_share(self.answers)


@dataclass
class QualityChecker:
    """The paper's quality check: LLM-written yes/no questions answered by a VQA model on the negative image.

    Args:
        lm: the language model that writes questions.
        vqa: the VQA model.
        num_questions: questions per negative caption (the paper: 5).
        prompt: template with ``{n}`` and ``{caption}``.
        max_new_tokens, batch_size: question generation settings (greedy decoding).
    """

    lm: LanguageModel
    vqa: VQAModel
    num_questions: int = 5
    prompt: str = QUESTION_PROMPT
    max_new_tokens: int = 128
    batch_size: int = 16

    def write_questions(self, negative_captions: Sequence[str], seed: int = 0) -> list[list[str]]:
        """Up to ``num_questions`` questions per negative caption (fewer when the LLM writes fewer valid ones)."""
        answers = self.lm.complete(
            [question_prompt(c, self.num_questions, self.prompt) for c in negative_captions],
            max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, seed=seed,
        )
        return [parse_questions(a, self.num_questions) for a in answers]

    def check(self, negative_images: Sequence[Any], negative_captions: Sequence[str], seed: int = 0,
              questions: Sequence[Sequence[str]] | None = None) -> list[QualityResult]:
        """A `QualityResult` per row; ``questions`` skips the LLM (e.g. questions written earlier)."""
        if questions is None:
            questions = self.write_questions(negative_captions, seed=seed)
        flat_images, flat_questions, owners = [], [], []
        for row, (image, row_questions) in enumerate(zip(negative_images, questions)):
            for question in row_questions:
                flat_images.append(image)
                flat_questions.append(question)
                owners.append(row)
        answers = self.vqa.answer(flat_images, flat_questions) if flat_questions else []
        results = [QualityResult(list(q)) for q in questions]
        for row, answer in zip(owners, answers):
            results[row].answers.append(answer)
        return results
