"""MMVP-VLM (Tong et al., 2024, "Eyes Wide Shut?"): 135 pairs of images that CLIP sees alike, each with a statement
that fits one of them, in nine visual patterns of 15 pairs each.

**Data**: ``MMVP/MMVP_VLM`` by Hub id (downloaded with `huggingface_hub.snapshot_download`) or its download folder:
``Questions.csv`` (header, then rows ``qid, qtype, statement``; rows 2k-1 and 2k form pair k) and
``MLLM_VLM Images/<qtype>/<qid>.jpg``.

**Scoring** follows MMVP's ``scripts/evaluate_vlm.py`` (``benchmark_model``) exactly: the text is ``"a photo of " +
statement``; for each statement the two images of the pair (both from the first row's ``qtype`` folder) are ranked by
the softmax of the statement's logits, the prediction is image 1 when its probability is above 0.5 (so when its
similarity is strictly higher) and image 2 otherwise, a tie included; the truth is image 1 for an odd ``qid``, image 2
for an even one; a pair is correct when both statements are; the pattern of pair k is the k // 15-th of the script's
nine, and its score is correct pairs / (pairs // 9). ``average`` is the mean of the nine patterns, as the paper
reports.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ...encoding import CLIPEncoder, image_source_from_file
from .. import data as readers
from ..errors import EvaluationInputError
from .base import Benchmark, BenchmarkResult, _skipped

#: The script's patterns, in its order (pair k belongs to ``PATTERNS[k // 15]``).
PATTERNS = ("Orientation and Direction", "Presence of Specific Features", "State and Condition", "Quantity and Count",
            "Positional and Relational Context", "Color and Appearance", "Structural Characteristics", "Texts",
            "Viewpoint and Perspective")
PAIRS_PER_PATTERN = 15
IMAGE_DIR = "MLLM_VLM Images"
QUESTIONS = "Questions.csv"
HUB_ID = "MMVP/MMVP_VLM"


def find_mmvp(value: str | Path) -> Path:
    """The folder holding ``Questions.csv`` and ``MLLM_VLM Images/`` (a Hub id is downloaded first)."""
    root = readers.local_copy(value)
    for folder in (root, *sorted(p.parent for p in root.rglob(QUESTIONS))):
        if (folder / QUESTIONS).is_file() and (folder / IMAGE_DIR).is_dir():
            return folder
    raise EvaluationInputError(f"{value} is not MMVP-VLM: it needs {QUESTIONS} and the folder '{IMAGE_DIR}/' beside "
                               f"it. Give the download folder of {HUB_ID} or its Hub id.")


def read_pairs(folder: Path) -> list[tuple[tuple[int, str, str], tuple[int, str, str]]]:
    """The statement pairs of ``Questions.csv`` as the script reads them (header skipped, consecutive rows paired,
    a last unpaired row dropped)."""
    with open(folder / QUESTIONS, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    pairs = []
    for first, second in zip(rows[0::2], rows[1::2]):
        try:
            pairs.append(((int(first[0]), first[1], first[2]), (int(second[0]), second[1], second[2])))
        except (ValueError, IndexError) as error:
            raise EvaluationInputError(f"{folder / QUESTIONS}: rows must be 'qid, qtype, statement' ({error}).") from None
    return pairs


class MMVPBenchmark(Benchmark):
    """MMVP-VLM's pair accuracy per visual pattern and their average."""

    name = "mmvp"
    card = ("Visual pattern matching", "MMVP/MMVP_VLM", "MMVP-VLM")
    folder_names = ("MMVP_VLM", "mmvp", "MMVP")
    headline = "average"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.folder = find_mmvp(data)
        self.pairs = read_pairs(self.folder)
        missing = [str(p) for pair in self.pairs for p in self._paths(pair) if not p.is_file()]
        if missing:
            raise EvaluationInputError(f"{len(missing)} image(s) of MMVP-VLM are missing, e.g. {missing[0]}.")

    def _paths(self, pair) -> tuple[Path, Path]:
        (qid1, qtype, _), (qid2, _, _) = pair
        return self.folder / IMAGE_DIR / qtype / f"{qid1}.jpg", self.folder / IMAGE_DIR / qtype / f"{qid2}.jpg"

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        paths = [p for pair in self.pairs for p in self._paths(pair)]
        sources = [image_source_from_file(p) for p in paths]
        images, ok = encoder.encode_images(sources, desc="MMVP-VLM images")
        texts = encoder.encode_texts(["a photo of " + s for pair in self.pairs for _, _, s in pair],
                                     desc="MMVP-VLM statements")
        skipped = {}
        _skipped(encoder, sources, ok, skipped)
        if skipped:
            raise EvaluationInputError(f"MMVP-VLM images could not be decoded: {', '.join(list(skipped)[:3])}.")
        correct = np.zeros(len(PATTERNS))
        for k, ((qid1, _, _), (qid2, _, _)) in enumerate(self.pairs):
            u1, u2 = images[2 * k], images[2 * k + 1]
            right = True
            for qid, text in ((qid1, texts[2 * k]), (qid2, texts[2 * k + 1])):
                prediction = 1 if float(text @ u1) > float(text @ u2) else 2
                right &= prediction == (1 if qid % 2 == 1 else 2)
            if k // PAIRS_PER_PATTERN < len(PATTERNS):
                correct[k // PAIRS_PER_PATTERN] += right
        per_pattern = len(self.pairs) // len(PATTERNS)
        if per_pattern == 0:
            raise EvaluationInputError(f"MMVP-VLM needs at least {len(PATTERNS)} pairs; {self.data!r} has "
                                       f"{len(self.pairs)}.")
        metrics = {pattern: float(c / per_pattern) for pattern, c in zip(PATTERNS, correct)}
        metrics["average"] = float(np.mean([metrics[p] for p in PATTERNS]))
        notes = [f"mmvp: pair accuracy per pattern (both statements right), as scripts/evaluate_vlm.py; average = mean "
                 f"of the nine patterns; {len(self.pairs)} pairs."]
        return BenchmarkResult(metrics, num_items=len(self.pairs), num_scored=len(self.pairs), notes=notes)
