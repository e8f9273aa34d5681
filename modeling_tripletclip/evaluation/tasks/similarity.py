"""The similarity analysis of the paper: cosine similarity of each positive with its negative, for images and for
captions (mean, std, median): descriptive, not a score, and never put on a card."""

from __future__ import annotations

import numpy as np

from dataset_builders import schema

from ...encoding import CLIPEncoder
from .. import data as readers
from ..errors import EvaluationInputError
from ..metrics import similarity_summary
from .base import BenchmarkResult, _PairOfPairs, _skipped
from .tripletdata import TRIPLETDATA_COLUMNS
from .winoground import WINOGROUND_COLUMNS


class SimilarityBenchmark(_PairOfPairs):
    """Cosine similarity between each positive and negative image, and between each positive and negative caption.

    Reads TripletData (image vs negative_image, caption vs negative_caption) or a Winoground-style dataset
    (image_0 vs image_1, caption_0 vs caption_1). The per-item values are in ``details`` for histograms.
    """

    name = "similarity"
    image_columns = (schema.IMAGE, schema.NEGATIVE_IMAGE, schema.IMAGE_0, schema.IMAGE_1)

    def check(self) -> list[str]:
        present = readers.dataset_columns(self.dataset)
        if all(c in present for c in TRIPLETDATA_COLUMNS):
            self.pair_columns = TRIPLETDATA_COLUMNS
        elif all(c in present for c in WINOGROUND_COLUMNS):
            self.pair_columns = WINOGROUND_COLUMNS
        else:
            readers.require_columns(self.dataset, TRIPLETDATA_COLUMNS, self.name, str(self.data))
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
