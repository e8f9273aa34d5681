"""BiVLC (Miranda et al., 2024): image-to-text *and* text-to-image retrieval over a positive pair and a synthetic
hard-negative pair: the shape of TripletData itself.

**Data**: ``imirandam/BiVLC`` (split ``test``; columns ``image``, ``caption``, ``negative_image``,
``negative_caption``, ``type``, ``subtype``) by Hub id or a local copy, and any TripletData (ours, the released one):
without ``type`` its rows are grouped by ``negative_kind`` when present.

**Scoring** follows BiVLC's ``src/CLIP_fine_tuning/CLIP_utils.py`` (``evaluate_BiVLC``) and
``main_evaluation_BiVLC.py``: with cosine similarities s, ``Ipos_2T`` = s(C0, I0) > s(C1, I0), ``Ineg_2T`` =
s(C1, I1) > s(C0, I1), ``Tpos_2I`` = s(C0, I0) > s(C0, I1), ``Tneg_2I`` = s(C1, I1) > s(C1, I0) (strict: a tie is
wrong); ``I2T`` = both image decisions, ``T2I`` = both text decisions, ``group`` = all four; each the share of items,
overall, per type and per type and subtype (`metrics.bivlc_metrics`).
"""

from __future__ import annotations

import numpy as np

from dataset_builders import schema

from ...encoding import CLIPEncoder
from ..errors import EvaluationInputError
from ..metrics import bivlc_metrics
from .base import BenchmarkResult, _PairOfPairs, _skipped
from .tripletdata import TRIPLETDATA_COLUMNS

BIVLC_TYPE, BIVLC_SUBTYPE = "type", "subtype"


class BiVLCBenchmark(_PairOfPairs):
    """BiVLC's I2T, T2I and group scores (and their four parts), overall and per type / subtype."""

    name = "bivlc"
    card = ("Compositional image-text retrieval", "imirandam/BiVLC", "BiVLC")
    folder_names = ("BiVLC", "bivlc")
    headline = "group"
    required = TRIPLETDATA_COLUMNS
    optional = (BIVLC_TYPE, BIVLC_SUBTYPE, schema.NEGATIVE_KIND)
    image_columns = (schema.IMAGE, schema.NEGATIVE_IMAGE)
    pair_columns = TRIPLETDATA_COLUMNS

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        type_column = BIVLC_TYPE if BIVLC_TYPE in self.columns else (
            schema.NEGATIVE_KIND if schema.NEGATIVE_KIND in self.columns else None)
        subtype_column = BIVLC_SUBTYPE if type_column == BIVLC_TYPE and BIVLC_SUBTYPE in self.columns else None
        scores, types, subtypes, total, skipped = [], [], [], 0, {}
        for batch, keep, (u0, u1, v0, v1), sources, ok in self._scores(encoder):
            total += len(keep)
            _skipped(encoder, sources, ok, skipped)
            scores.append(self.score_matrix(u0, u1, v0, v1)[keep].numpy())
            kept = keep.tolist()
            if type_column:
                types.extend(t for t, k in zip(batch[type_column], kept) if k)
            if subtype_column:
                subtypes.extend(t for t, k in zip(batch[subtype_column], kept) if k)
        scores = np.concatenate(scores) if scores else np.zeros((0, 2, 2))
        if len(scores) == 0:
            raise EvaluationInputError(f"No BiVLC row of {self.data!r} could be scored (no rows, or no decodable "
                                       f"images).")
        metrics = bivlc_metrics(scores, types if type_column else None, subtypes if subtype_column else None)
        notes = ["bivlc: I2T, T2I and group follow BiVLC's evaluate_BiVLC (strict comparisons, ties wrong)."]
        return BenchmarkResult(metrics, num_items=total, num_scored=len(scores), skipped_images=skipped,
                               details={"scores": scores}, notes=notes)
