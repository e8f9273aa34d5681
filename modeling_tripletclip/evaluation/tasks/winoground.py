"""Winoground-style pairs of pairs (Thrush et al., 2022): two images and two captions per item
(``facebook/winoground``'s columns ``image_0``, ``image_1``, ``caption_0``, ``caption_1``, and an optional tag).

**Data**: ``facebook/winoground`` as the Hub serves it (gated) or any dataset with its columns; or the original
release's layout, a folder holding ``data/examples.jsonl`` (``id``, ``image_0``, ``image_1``, ``caption_0``,
``caption_1``, ``tag``, ...; image names without extension) and ``data/images.zip`` (``images/<name>.png``).

**Scoring** follows Winoground's paper (Thrush et al., 2022, Section 3) as its released example code computes it
(``text_correct``, ``image_correct``, ``group_correct``): text correct when each image scores higher with its own caption than with the other
(strictly), image correct when each caption scores higher with its own image, group when both; each metric is the
mean over items, per tag too (``<tag>/text``, ...).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from dataset_builders import schema

from ...encoding import CLIPEncoder
from ..errors import EvaluationInputError
from ..metrics import winoground_metrics
from .base import BenchmarkResult, _PairOfPairs, _skipped


WINOGROUND_COLUMNS = (schema.IMAGE_0, schema.IMAGE_1, schema.CAPTION_0, schema.CAPTION_1)


class WinogroundBenchmark(_PairOfPairs):
    """Winoground-style text, image and group scores (strict comparisons), overall and per tag."""

    name = "winoground"
    card = ("Compositional image-text matching", "facebook/winoground", "Winoground")
    world_card = ("Winoground-format held-out set of the TripletCLIP procedural world", "tripletclip-world-winoground")
    folder_names = ("winoground", "Winoground")
    headline = "group"
    required = WINOGROUND_COLUMNS
    optional = (schema.TAG,)
    image_columns = (schema.IMAGE_0, schema.IMAGE_1)
    pair_columns = WINOGROUND_COLUMNS
    default_tag_column = schema.TAG

    def open(self):
        original = _original_release(self.data)
        if original is None:
            return super().open()
        return _read_original_release(*original), "test"

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        tag_column = self.options.tag_column or self.default_tag_column
        use_tags = tag_column in self.columns
        scores, tags, total, skipped = [], [], 0, {}
        for batch, keep, (u0, u1, v0, v1), sources, ok in self._scores(encoder):
            total += len(keep)
            _skipped(encoder, sources, ok, skipped)
            scores.append(self.score_matrix(u0, u1, v0, v1)[keep].numpy())
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


def _original_release(data) -> tuple[Path, Path] | None:
    """``(examples.jsonl, images.zip)`` when ``data`` is a folder of Winoground's original release."""
    root = Path(str(data))
    for folder in (root, root / "data"):
        if (folder / "examples.jsonl").is_file() and (folder / "images.zip").is_file():
            return folder / "examples.jsonl", folder / "images.zip"
    return None


def _read_original_release(examples: Path, images: Path):
    """The original release as a dataset with the Hub's columns, images as encoded bytes read from the zip."""
    import datasets

    with zipfile.ZipFile(images) as archive:
        members = {Path(name).stem: name for name in archive.namelist() if not name.endswith("/")}
        rows = []
        for number, line in enumerate(examples.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                row = {key: item[key] for key in ("caption_0", "caption_1")}
                for key in ("image_0", "image_1"):
                    row[key] = {"bytes": archive.read(members[str(item[key])]), "path": None}
            except (ValueError, KeyError) as error:
                raise EvaluationInputError(f"{examples}, line {number}: not a Winoground example, or its image is "
                                           f"not in {images.name} ({error}).") from None
            row[schema.TAG] = item.get(schema.TAG)
            rows.append(row)
    features = datasets.Features({"caption_0": datasets.Value("string"), "caption_1": datasets.Value("string"),
                                  "image_0": datasets.Image(), "image_1": datasets.Image(),
                                  schema.TAG: datasets.Value("string")})
    return datasets.Dataset.from_list(rows, features=features)
