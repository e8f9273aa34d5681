"""The benchmarks: each reads its data, encodes it once with a :class:`CLIPEncoder`, and scores it.

Every benchmark is built in two steps, so that bad input fails before any model runs: constructing it reads and
checks the data (files, columns, images named by a JSON); :meth:`Benchmark.run` encodes and scores. The scoring rules
are the pure functions of :mod:`.metrics`.

=============  =========================================================  ==========================================
name           data                                                       metrics
=============  =========================================================  ==========================================
sugarcrepe     folder of the seven JSON files, or one (+ image folder)    the subsets, replace/swap/add, overall
winoground     dataset with image_0, image_1, caption_0, caption_1 [tag]  text, image, group (+ "<tag>/text", ...)
tripletdata    TripletData (image, caption, negative_image, negative_...)  text, image, group (+ per negative_kind)
retrieval      image + captions (list); Karpathy JSON; CLIP_benchmark     image/text_retrieval_recall@1/5/10
zeroshot       image + ClassLabel; class folders; CLIP_benchmark          top1, top5, mean_per_class_recall
similarity     TripletData (or Winoground-style) dataset                  image/text_similarity_mean/std/median
=============  =========================================================  ==========================================

Each result says how many items the data had, how many were scored and how many were skipped (an image that could not
be decoded, a caption that could not be read), per SugarCrepe subset too. A metric that does not apply to the data
(top-5 accuracy with fewer than five classes, recall@k with no more than k candidates) is left out with a note,
never reported as 100%.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from dataset_builders import schema
from dataset_builders.rows import caption_skip_reason, decode_text, image_skip_reason, text_or_none
from dataset_builders.utils.images import UNDECODABLE

from ..encoding import CLIPEncoder, ImageSource, image_source_from_file, image_source_from_value
from . import data as readers
from .errors import EvaluationInputError
from .metrics import (
    SUGARCREPE_OVERALL_DEFINITION,
    rank_of_targets,
    retrieval_recall,
    similarity_summary,
    sugarcrepe_accuracy,
    sugarcrepe_summary,
    winoground_metrics,
    zero_shot_metrics_from_ranks,
)
from .templates import OPENAI_IMAGENET_TEMPLATES, class_prompts, validate_templates

logger = logging.getLogger(__name__)


@dataclass
class BenchmarkOptions:
    """Options of a benchmark run; each benchmark uses those that apply to it.

    Attributes:
        images: image folder for data that names image files (SugarCrepe, Karpathy-split JSON).
        split: dataset split (default: test, else validation, else train; Karpathy JSON: test).
        streaming: read datasets as streams (for sets too large to prepare on disk).
        max_items: score only the first N rows (or N SugarCrepe items per subset).
        templates: zero-shot prompt templates (default: the dataset's own, else OpenAI's 80 ImageNet templates).
        tag_column: Winoground-style column whose values give per-tag scores (``tag``; ``negative_kind`` for
            TripletData); ignored when absent.
        ks: retrieval cut-offs.
    """

    images: str | Path | None = None
    split: str | None = None
    streaming: bool = False
    max_items: int | None = None
    templates: Sequence[str] | None = None
    tag_column: str | None = None
    ks: Sequence[int] = (1, 5, 10)


@dataclass
class BenchmarkResult:
    """What one benchmark run produced.

    Attributes:
        metrics: ``{metric: value}`` (fractions in [0, 1], similarities in [-1, 1]).
        num_items: items in the data; num_scored: items actually scored; the rest were skipped.
        skipped_images: ``{image name: reason}`` of the images that could not be decoded.
        subsets: per subset (SugarCrepe), ``{"items", "scored", "skipped"}``.
        details: per-item arrays (e.g. the similarity values behind the similarity histograms).
        notes: statements a reader of the numbers needs (e.g. which average ``overall`` is).
        skipped_reasons: what was left out, counted by reason (`dataset_builders.rows.SKIP_REASONS`): items whose
            image could not be used, and captions that could not be read (a retrieval image keeps its other
            captions).
    """

    metrics: dict[str, float]
    num_items: int
    num_scored: int
    skipped_images: dict[str, str] = field(default_factory=dict)
    subsets: dict[str, dict[str, int]] = field(default_factory=dict)
    details: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped_reasons: Counter = field(default_factory=Counter)

    @property
    def num_skipped(self) -> int:
        return self.num_items - self.num_scored

    def counts(self) -> dict[str, Any]:
        """The counts a report carries: items, scored, skipped (and per subset)."""
        counts: dict[str, Any] = {"items": self.num_items, "scored": self.num_scored, "skipped": self.num_skipped}
        if self.subsets:
            counts["subsets"] = self.subsets
        if self.skipped_reasons:
            counts["skipped_by_reason"] = dict(sorted(self.skipped_reasons.items()))
        return counts

    def summary(self, name: str) -> str:
        line = f"{name}: scored {self.num_scored} of {self.num_items} items"
        if self.num_skipped:
            line += f", SKIPPED {self.num_skipped}"
        if self.skipped_images:
            shown = ", ".join(list(self.skipped_images)[:5])
            more = " ..." if len(self.skipped_images) > 5 else ""
            line += f" ({len(self.skipped_images)} undecodable image(s): {shown}{more})"
        return line


class Benchmark(ABC):
    """A benchmark over one data source. Construction reads and checks the data; :meth:`run` scores a model."""

    name: ClassVar[str]

    def __init__(self, data: str | Path, options: BenchmarkOptions | None = None):
        self.data = data
        self.options = options or BenchmarkOptions()

    @abstractmethod
    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        """Encode the benchmark's images and captions with ``encoder`` and score them."""


def _skipped(encoder: CLIPEncoder, sources: Sequence[ImageSource], ok: torch.Tensor, into: dict[str, str],
             reasons: Counter | None = None) -> None:
    """Record the images of ``sources`` that failed (by name), and count them by reason into ``reasons``."""
    for source, good in zip(sources, ok.tolist()):
        if not good:
            into[source.name] = encoder.failure_reason(source) or "could not be decoded"
            if reasons is not None:
                reasons[_image_reason(encoder, source)] += 1


def _image_reason(encoder: CLIPEncoder, source: ImageSource) -> str:
    return image_skip_reason(encoder.failure_kind(source) or UNDECODABLE)


# SugarCrepe -----------------------------------------------------------------------------------------------------


class SugarCrepeBenchmark(Benchmark):
    """SugarCrepe: per-subset accuracy (ties wrong), the replace/swap/add averages and the overall average."""

    name = "sugarcrepe"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.items = readers.load_sugarcrepe(data, images=self.options.images)
        if self.options.max_items:
            self.items = {s: items[: self.options.max_items] for s, items in self.items.items()}

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        all_items = [item for items in self.items.values() for item in items]
        paths = list(dict.fromkeys(item.image_path for item in all_items))
        sources = [image_source_from_file(p) for p in paths]
        image_embeddings, ok = encoder.encode_images(sources, desc="SugarCrepe images")
        texts = list(dict.fromkeys(t for item in all_items if item.skip_reason is None
                                   for t in (item.caption, item.negative_caption)))
        text_embeddings = encoder.encode_texts(texts, desc="SugarCrepe captions")
        image_row = {p: i for i, p in enumerate(paths)}
        text_row = {t: i for i, t in enumerate(texts)}

        accuracies, details, scored, skipped, subsets = {}, {}, 0, {}, {}
        reasons: Counter = Counter()
        _skipped(encoder, sources, ok, skipped)
        for subset, items in self.items.items():
            images = torch.tensor([image_row[item.image_path] for item in items], dtype=torch.long)
            keep = ok[images] & torch.tensor([item.skip_reason is None for item in items], dtype=torch.bool)
            for item, good in zip(items, ok[images].tolist()):
                if item.skip_reason is not None:
                    reasons[item.skip_reason] += 1
                elif not good:
                    reasons[_image_reason(encoder, sources[image_row[item.image_path]])] += 1
            images = images[keep]
            kept = [item for item, k in zip(items, keep.tolist()) if k]
            subsets[subset] = {"items": len(items), "scored": len(kept), "skipped": len(items) - len(kept)}
            if not kept:
                logger.warning("SugarCrepe %s: no item has a decodable image; the subset is not scored.", subset)
                continue
            captions = torch.tensor([text_row[item.caption] for item in kept], dtype=torch.long)
            negatives = torch.tensor([text_row[item.negative_caption] for item in kept], dtype=torch.long)
            u = image_embeddings[images]
            positive = (u * text_embeddings[captions]).sum(-1)
            negative = (u * text_embeddings[negatives]).sum(-1)
            accuracies[subset] = sugarcrepe_accuracy(positive.numpy(), negative.numpy())
            details[f"{subset}/positive_scores"] = positive.numpy()
            details[f"{subset}/negative_scores"] = negative.numpy()
            scored += len(kept)
        notes = [f"SugarCrepe: {SUGARCREPE_OVERALL_DEFINITION}; replace/swap/add = mean of their subsets (the rule of "
                 f"SugarCrepe's eval.py: correct when the positive caption scores strictly higher; a tie is wrong)."]
        partial = [s for s, c in subsets.items() if c["skipped"]]
        if partial:
            notes.append(f"sugarcrepe: items skipped (unusable images or captions) in {', '.join(partial)}: those "
                         f"subsets and the averages over them are computed on the remaining items only.")
        return BenchmarkResult(
            metrics=sugarcrepe_summary(accuracies, {s: c["scored"] for s, c in subsets.items()}),
            num_items=len(all_items),
            num_scored=scored,
            skipped_images=skipped,
            subsets=subsets,
            details=details,
            notes=notes,
            skipped_reasons=reasons,
        )


# Datasets read in chunks ----------------------------------------------------------------------------------------


def _chunks(dataset, chunk_size: int, max_items: int | None):
    """Yield ``(first_row_index, {column: values})`` over a dataset or stream, ``chunk_size`` rows at a time."""
    if max_items:
        dataset = dataset.take(max_items) if hasattr(dataset, "take") else dataset.select(range(max_items))
    start = 0
    for batch in dataset.iter(batch_size=chunk_size):
        yield start, batch
        start += len(next(iter(batch.values())))


def _length(dataset, max_items: int | None) -> int | None:
    try:
        n = len(dataset)
    except TypeError:
        return max_items
    return min(n, max_items) if max_items else n


class _DatasetBenchmark(Benchmark):
    """A benchmark over a dataset: opens it (:meth:`open`) and checks its columns (:meth:`check`) at construction."""

    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    image_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.dataset, self.split = self.open()
        self.columns = self.check()
        self.dataset = readers.undecoded_images(self.dataset, [c for c in self.image_columns if c in self.columns])

    def open(self):
        """``(dataset, split)`` of the benchmark's data."""
        return readers.open_dataset(self.data, split=self.options.split, streaming=self.options.streaming,
                                    what=f"{self.name} data")

    def check(self) -> list[str]:
        """The dataset's columns, after checking that the benchmark's are there."""
        return readers.require_columns(self.dataset, self.required, self.name, str(self.data), self.optional)

    def _progress(self, encoder: CLIPEncoder):
        return tqdm(
            total=_length(self.dataset, self.options.max_items),
            desc=self.name,
            unit="row",
            disable=not encoder.progress,
        )

    def _chunk_size(self, encoder: CLIPEncoder) -> int:
        return max(1, encoder.batch_size * 4)


def _texts(values) -> tuple[list[str], list[bool]]:
    """Captions as text (UTF-8 bytes decoded, as WebDataset shards hold them) and whether each could be read."""
    texts = [text_or_none(v) for v in values]
    return [t if t is not None else "" for t in texts], [t is not None for t in texts]


class _PairOfPairs(_DatasetBenchmark):
    """Rows of two images and two captions, caption_k describing image_k, read in chunks."""

    pair_columns: ClassVar[tuple[str, str, str, str]]  # image_0, image_1, caption_0, caption_1

    def _scores(self, encoder: CLIPEncoder):
        """Encode the dataset chunk by chunk. Yields, per chunk: the rows, a mask of the rows whose two images
        decoded and two captions could be read, the embeddings ``(u0, u1, v0, v1)`` of every row (image_0, image_1,
        caption_0, caption_1), and the image sources with their decoded mask."""
        image_0, image_1, caption_0, caption_1 = self.pair_columns
        with self._progress(encoder) as bar:
            for start, batch in _chunks(self.dataset, self._chunk_size(encoder), self.options.max_items):
                n = len(batch[caption_0])
                sources = [
                    image_source_from_value(value, f"row {start + j}, column {column}")
                    for column in (image_0, image_1)
                    for j, value in enumerate(batch[column])
                ]
                images, ok = encoder.encode_images(sources, progress=False)
                texts, readable = _texts(list(batch[caption_0]) + list(batch[caption_1]))
                text_ok = torch.tensor(readable, dtype=torch.bool)
                embeddings = encoder.encode_texts(texts, progress=False)
                keep = ok[:n] & ok[n:] & text_ok[:n] & text_ok[n:]
                yield batch, keep, (images[:n], images[n:], embeddings[:n], embeddings[n:]), sources, ok
                bar.update(n)


class WinogroundBenchmark(_PairOfPairs):
    """Winoground-style text, image and group scores (strict comparisons), overall and per tag."""

    name = "winoground"
    required = readers.WINOGROUND_COLUMNS
    optional = (schema.TAG,)
    image_columns = (schema.IMAGE_0, schema.IMAGE_1)
    pair_columns = readers.WINOGROUND_COLUMNS
    default_tag_column = schema.TAG

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        tag_column = self.options.tag_column or self.default_tag_column
        use_tags = tag_column in self.columns
        scores, tags, total, skipped = [], [], 0, {}
        for batch, keep, (u0, u1, v0, v1), sources, ok in self._scores(encoder):
            total += len(keep)
            _skipped(encoder, sources, ok, skipped)
            s = torch.stack(
                [
                    torch.stack([(v0 * u0).sum(-1), (v0 * u1).sum(-1)], dim=1),
                    torch.stack([(v1 * u0).sum(-1), (v1 * u1).sum(-1)], dim=1),
                ],
                dim=1,
            )  # (n, caption, image)
            scores.append(s[keep].numpy())
            if use_tags:
                tags.extend(t for t, k in zip(batch[tag_column], keep.tolist()) if k)
        scores = np.concatenate(scores) if scores else np.zeros((0, 2, 2))
        if len(scores) == 0:
            raise EvaluationInputError(
                f"No {self.name} row of {self.data!r} could be scored (no rows, or no decodable images)."
            )
        metrics = winoground_metrics(scores, tags=tags if use_tags else None)
        return BenchmarkResult(
            metrics, num_items=total, num_scored=len(scores), skipped_images=skipped, details={"scores": scores}
        )


class TripletDataBenchmark(WinogroundBenchmark):
    """TripletData as an evaluation set: each triplet (x, y, x', y') scored Winoground-style, with
    caption_0 = caption, image_0 = image, caption_1 = negative caption, image_1 = negative image."""

    name = "tripletdata"
    required = readers.TRIPLETDATA_COLUMNS
    optional = (schema.NEGATIVE_KIND,)
    image_columns = (schema.IMAGE, schema.NEGATIVE_IMAGE)
    pair_columns = readers.TRIPLETDATA_COLUMNS
    default_tag_column = schema.NEGATIVE_KIND


class SimilarityBenchmark(_PairOfPairs):
    """Cosine similarity between each positive and negative image, and between each positive and negative caption.

    Reads TripletData (image vs negative_image, caption vs negative_caption) or a Winoground-style dataset
    (image_0 vs image_1, caption_0 vs caption_1). The per-item values are in ``details`` for histograms.
    """

    name = "similarity"
    image_columns = (schema.IMAGE, schema.NEGATIVE_IMAGE, schema.IMAGE_0, schema.IMAGE_1)

    def check(self) -> list[str]:
        present = readers.dataset_columns(self.dataset)
        if all(c in present for c in readers.TRIPLETDATA_COLUMNS):
            self.pair_columns = readers.TRIPLETDATA_COLUMNS
        elif all(c in present for c in readers.WINOGROUND_COLUMNS):
            self.pair_columns = readers.WINOGROUND_COLUMNS
        else:
            readers.require_columns(self.dataset, readers.TRIPLETDATA_COLUMNS, self.name, str(self.data))
        return present

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        image_similarity, text_similarity, total, skipped = [], [], 0, {}
        for _, keep, (u0, u1, v0, v1), sources, ok in self._scores(encoder):
            total += len(keep)
            _skipped(encoder, sources, ok, skipped)
            image_similarity.append((u0 * u1).sum(-1)[keep].numpy())
            text_similarity.append((v0 * v1).sum(-1)[keep].numpy())
        image_similarity = np.concatenate(image_similarity) if image_similarity else np.zeros(0)
        text_similarity = np.concatenate(text_similarity) if text_similarity else np.zeros(0)
        if image_similarity.size == 0:
            raise EvaluationInputError(f"No row of {self.data!r} could be scored (no rows, or no decodable images).")
        metrics = {**similarity_summary(image_similarity, "image_similarity"),
                   **similarity_summary(text_similarity, "text_similarity")}
        return BenchmarkResult(
            metrics,
            num_items=total,
            num_scored=int(image_similarity.size),
            skipped_images=skipped,
            details={"image_similarity": image_similarity, "text_similarity": text_similarity},
            notes=["similarity: cosine similarity of each positive/negative image pair and caption pair."],
        )


# Retrieval ------------------------------------------------------------------------------------------------------


class RetrievalBenchmark(Benchmark):
    """Zero-shot image-text retrieval recall@k with several captions per image (CLIP_benchmark's semantics, except
    that a tie counts against the model: see :mod:`.metrics`).

    Data: a dataset with ``image`` and ``captions`` (or a list-valued ``caption``), a CLIP_benchmark retrieval
    export, or a Karpathy-split JSON file (COCO / Flickr30k; ``--images`` is its image folder, ``--split`` its
    split, default test).
    """

    name = "retrieval"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.karpathy = str(data).endswith(".json")
        if self.karpathy:
            rows = readers.load_karpathy_split(data, self.options.images, self.options.split)
            if self.options.max_items:
                rows = rows[: self.options.max_items]
            self.rows = rows
            return
        exported = readers.find_clip_benchmark(data, self.options.split)
        if exported is not None and exported.task != "retrieval":
            raise EvaluationInputError(f"{data} is a CLIP_benchmark {exported.task} dataset: evaluate it with "
                                       f"--benchmark zeroshot.")
        if exported is not None:
            self.split = exported.split(self.options.split)
            self.dataset = exported.dataset(self.split, streaming=self.options.streaming)
        else:
            self.dataset, self.split = readers.open_dataset(
                data, split=self.options.split, streaming=self.options.streaming, what="retrieval data"
            )
        self.captions_column = readers.retrieval_columns(self.dataset, str(data))
        self.dataset = readers.undecoded_images(self.dataset, [schema.IMAGE])

    def _row_chunks(self, chunk_size: int):
        """Yield ``(sources, captions per row)`` chunks."""
        if self.karpathy:
            for start in range(0, len(self.rows), chunk_size):
                chunk = self.rows[start : start + chunk_size]
                yield [image_source_from_file(p) for p, _ in chunk], [c for _, c in chunk], [[] for _ in chunk]
        else:
            for start, batch in _chunks(self.dataset, chunk_size, self.options.max_items):
                sources = [
                    image_source_from_value(v, f"row {start + j}, column {schema.IMAGE}")
                    for j, v in enumerate(batch[schema.IMAGE])
                ]
                captions, problems = [], []
                for row_captions in batch[self.captions_column]:
                    decoded = [decode_text(value) for value in row_captions or []]
                    captions.append([text for text, problem in decoded if problem is None])
                    problems.append([problem for _, problem in decoded if problem is not None])
                yield sources, captions, problems

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        image_rows, text_rows, owners, total, skipped = [], [], [], 0, {}
        reasons: Counter = Counter()
        total_rows = len(self.rows) if self.karpathy else _length(self.dataset, self.options.max_items)
        with tqdm(total=total_rows, desc=self.name, unit="image", disable=not encoder.progress) as bar:
            for sources, captions, problems in self._row_chunks(max(1, encoder.batch_size * 4)):
                total += len(sources)
                images, ok = encoder.encode_images(sources, progress=False)
                _skipped(encoder, sources, ok, skipped, reasons)
                for row_problems, good in zip(problems, ok.tolist()):
                    if good:  # the captions of a skipped image are left out with it
                        reasons.update(caption_skip_reason(problem) for problem in row_problems)
                flat = [c for row_captions, good in zip(captions, ok.tolist()) if good for c in row_captions]
                texts = encoder.encode_texts(flat, progress=False)
                for row, (row_captions, good) in enumerate(zip(captions, ok.tolist())):
                    if good:
                        owners.extend([len(image_rows)] * len(row_captions))
                        image_rows.append(images[row])
                text_rows.append(texts)
                bar.update(len(sources))
        if not image_rows:
            raise EvaluationInputError(f"No image of {self.data!r} could be scored (no rows, or none decodable).")
        image_matrix = torch.stack(image_rows)
        text_matrix = torch.cat(text_rows)
        if text_matrix.shape[0] == 0:
            raise EvaluationInputError(f"The retrieval data {self.data!r} has no captions.")
        scores = (image_matrix @ text_matrix.T).numpy()
        metrics = retrieval_recall(scores, owners, ks=self.options.ks)
        notes = []
        for direction, candidates in (("image", image_matrix.shape[0]), ("text", text_matrix.shape[0])):
            trivial = [k for k in self.options.ks if k >= candidates]
            for k in trivial:
                metrics.pop(f"{direction}_retrieval_recall@{k}", None)
            if trivial:
                notes.append(f"retrieval: {direction}_retrieval_recall@{','.join(map(str, trivial))} not applicable "
                             f"(only {candidates} {direction}s to rank: every one is in the top k), left out.")
        captions_left_out = sum(n for reason, n in reasons.items() if "caption" in reason)
        if captions_left_out:
            notes.append(f"retrieval: {captions_left_out} caption(s) could not be read (empty or not UTF-8) and were "
                         f"left out; their images keep their other captions.")
        return BenchmarkResult(metrics, num_items=total, num_scored=len(image_rows), skipped_images=skipped,
                               notes=notes, skipped_reasons=reasons)


# Zero-shot classification ---------------------------------------------------------------------------------------


class ZeroShotBenchmark(_DatasetBenchmark):
    """Zero-shot classification with prompt ensembling: top-1, top-5 and mean per-class recall.

    Data: an image-classification dataset (an ``Image`` column and a ``ClassLabel`` column whose names are the class
    names; underscores read as spaces), a folder of class sub-folders ``<class name>/<image>``, or a CLIP_benchmark
    classification export (its ``classnames.txt`` and, unless ``templates`` is given, its own templates).
    """

    name = "zeroshot"

    def open(self):
        exported = readers.find_clip_benchmark(self.data, self.options.split)
        self.exported_templates: list[str] = []
        if exported is None:
            return super().open()
        if exported.task != "classification":
            raise EvaluationInputError(f"{self.data} is a CLIP_benchmark {exported.task} dataset: evaluate it with "
                                       f"--benchmark {exported.task}.")
        self.exported_templates = exported.templates
        split = exported.split(self.options.split)
        return exported.dataset(split, streaming=self.options.streaming), split

    def check(self) -> list[str]:
        self.image_column, self.label_column, self.class_names = readers.classification_columns(
            self.dataset, str(self.data))
        self.templates = validate_templates(self.options.templates or self.exported_templates
                                            or OPENAI_IMAGENET_TEMPLATES)
        self.image_columns = (self.image_column,)
        return readers.dataset_columns(self.dataset)

    def class_embeddings(self, encoder: CLIPEncoder) -> torch.Tensor:
        """The classifier: per class, the mean of its normalised prompt embeddings, renormalised.

        Returns:
            Tensor of shape `(num_classes, embedding_dim)`.
        """
        prompts = [p for name in self.class_names for p in class_prompts(name, self.templates)]
        embeddings = encoder.encode_texts(prompts, desc="Class prompts")
        embeddings = embeddings.view(len(self.class_names), len(self.templates), -1).mean(dim=1)
        return embeddings / embeddings.norm(dim=-1, keepdim=True)

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        classifier = self.class_embeddings(encoder)
        ranks, labels, total, skipped = [], [], 0, {}
        with self._progress(encoder) as bar:
            for start, batch in _chunks(self.dataset, self._chunk_size(encoder), self.options.max_items):
                sources = [
                    image_source_from_value(v, f"row {start + j}, column {self.image_column}")
                    for j, v in enumerate(batch[self.image_column])
                ]
                total += len(sources)
                images, ok = encoder.encode_images(sources, progress=False)
                _skipped(encoder, sources, ok, skipped)
                targets = np.asarray(batch[self.label_column])[ok.numpy()]
                logits = 100.0 * images[ok] @ classifier.T
                ranks.append(rank_of_targets(logits.numpy(), targets))
                labels.append(targets)
                bar.update(len(sources))
        if not labels or sum(len(x) for x in labels) == 0:
            raise EvaluationInputError(f"No image of {self.data!r} could be scored (no rows, or none decodable).")
        ranks, labels = np.concatenate(ranks), np.concatenate(labels)
        applicable = tuple(k for k in (1, 5) if k < len(self.class_names))
        notes = [f"zeroshot: {len(self.class_names)} classes x {len(self.templates)} prompt templates."]
        if 5 not in applicable:
            notes.append(f"zeroshot: top5 not applicable ({len(self.class_names)} classes: the true class is always in "
                         f"the top 5), left out.")
        metrics = zero_shot_metrics_from_ranks(ranks, labels, ks=applicable or (1,))
        return BenchmarkResult(metrics, num_items=total, num_scored=len(labels), skipped_images=skipped, notes=notes)


BENCHMARKS: dict[str, type[Benchmark]] = {
    "sugarcrepe": SugarCrepeBenchmark,
    "winoground": WinogroundBenchmark,
    "tripletdata": TripletDataBenchmark,
    "retrieval": RetrievalBenchmark,
    "zeroshot": ZeroShotBenchmark,
    "similarity": SimilarityBenchmark,
}
"""Every benchmark by the name the CLI and reports use."""


def load_benchmark(name: str, data: str | Path, options: BenchmarkOptions | None = None) -> Benchmark:
    """Read and check the data of benchmark ``name`` (nothing is encoded yet)."""
    if name not in BENCHMARKS:
        raise EvaluationInputError(f"Unknown benchmark {name!r}. Choose one of: {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[name](data, options)


def prepare_benchmarks(benchmarks: Mapping[str, str | Path], **options: Any) -> dict[str, Benchmark]:
    """Read and check every benchmark's data before any model runs.

    Args:
        benchmarks: ``{benchmark name: data path}``, names from :data:`BENCHMARKS`.
        **options: `BenchmarkOptions` fields; ``images`` may also be ``{benchmark: folder}``.
    """
    unknown = [name for name in benchmarks if name not in BENCHMARKS]
    if unknown:
        raise EvaluationInputError(f"Unknown benchmark(s) {unknown}. Choose from: {', '.join(BENCHMARKS)}.")
    valid = {f.name for f in fields(BenchmarkOptions)}
    wrong = sorted(set(options) - valid)
    if wrong:
        raise TypeError(f"Unknown benchmark option(s) {wrong}; valid: {sorted(valid)}.")
    images = options.pop("images", None)
    loaded = {}
    for name, path in benchmarks.items():
        folder = images.get(name) if isinstance(images, Mapping) else images
        loaded[name] = load_benchmark(name, path, BenchmarkOptions(images=folder, **options))
    return loaded


def run_benchmarks(encoder: CLIPEncoder, benchmarks: Mapping[str, Benchmark]) -> dict[str, BenchmarkResult]:
    """Run each benchmark with one shared encoder (an image or caption used by several is encoded once)."""
    results = {}
    for name, benchmark in benchmarks.items():
        result = benchmark.run(encoder)
        logger.info(result.summary(name))
        results[name] = result
    return results


def evaluate_model_detailed(model, processor, benchmarks: Mapping[str, str | Path], *, batch_size: int = 64,
                            num_workers: int | None = None, progress: bool = True,
                            reduced_image_decoding: bool = False, **options: Any) -> dict[str, BenchmarkResult]:
    """Evaluate a CLIP-like model on benchmarks; returns full :class:`BenchmarkResult` objects (counts, skipped
    images, details).

    Args:
        model: a `TripletCLIPModel`, `CLIPModel` or any model with ``get_text_features`` / ``get_image_features``
            (unwrapped: not a DDP wrapper). It is put in eval mode and its previous mode restored afterwards.
        processor: its processor.
        benchmarks: ``{benchmark name: data path}``, names from :data:`BENCHMARKS`. SugarCrepe's images default to
            ``<path>/images`` (the built-in world's layout).
        batch_size, num_workers, progress, reduced_image_decoding: see :class:`CLIPEncoder`.
        **options: `BenchmarkOptions` fields (``images``, ``split``, ``streaming``, ``max_items``, ``templates``,
            ...); ``images`` may also be ``{benchmark: folder}``.
    """
    loaded = prepare_benchmarks(benchmarks, **options)
    encoder = CLIPEncoder(model, processor, batch_size=batch_size, num_workers=num_workers, progress=progress,
                          reduced_image_decoding=reduced_image_decoding)
    was_training = model.training
    model.eval()
    try:
        return run_benchmarks(encoder, loaded)
    finally:
        model.train(was_training)


def evaluate_model(model, processor, benchmarks: Mapping[str, str | Path], **kwargs: Any) -> dict[str, dict[str, float]]:
    """As :func:`evaluate_model_detailed`, returning ``{benchmark: {metric: value}}`` (fractions in [0, 1]).

    Example:
        >>> benchmarks = WorldLayout("world").benchmark_paths(["sugarcrepe", "winoground"])
        >>> results = evaluate_model(model, processor, benchmarks)  # doctest: +SKIP
        >>> results["sugarcrepe"]["overall"]  # doctest: +SKIP
    """
    return {name: result.metrics for name, result in evaluate_model_detailed(model, processor, benchmarks,
                                                                             **kwargs).items()}
