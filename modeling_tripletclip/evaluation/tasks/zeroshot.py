"""Zero-shot image classification: ``image`` + a ``ClassLabel`` column, a folder of class sub-folders, or a
CLIP_benchmark WebDataset export (``.cls`` with ``classnames.txt`` and its templates).

**Scoring** follows CLIP_benchmark's ``clip_benchmark/metrics/zeroshot_classification.py`` (``zero_shot_classifier``,
``accuracy``, and ``evaluate``'s balanced accuracy): each class is the normalised mean of its prompts' normalised
embeddings; top-1 / top-5 accuracy and the mean per-class recall; top-5 with fewer than five classes is left out with
a note (CLIP_benchmark reports NaN). On exact score ties CLIP_benchmark lets index order decide; here a tie counts
against the model.
"""

from __future__ import annotations

import logging

import datasets
import numpy as np
import torch

from ...encoding import CLIPEncoder, image_source_from_value
from .. import data as readers
from ..errors import EvaluationInputError
from ..metrics import rank_of_targets, zero_shot_metrics_from_ranks
from ..templates import OPENAI_IMAGENET_TEMPLATES, class_prompts, validate_templates
from .base import BenchmarkResult, _chunks, _DatasetBenchmark, _skipped

logger = logging.getLogger(__name__)


# Reading ---------------------------------------------------------------------------------------------------------


def classification_columns(dataset, source: str) -> tuple[str, str, list[str]]:
    """The image column, the label column and the class names of an image-classification dataset.

    The label column is ``label`` when it is a ``ClassLabel``, else the first ``ClassLabel`` column; the image column
    is ``image`` (or ``img``) when present, else the first ``Image`` column.
    """
    features = dataset.features or {}
    labels = [n for n, f in features.items() if isinstance(f, datasets.ClassLabel)]
    images = [n for n, f in features.items() if isinstance(f, datasets.Image)]
    if not labels or not images:
        raise EvaluationInputError(
            f"The zeroshot data {source!r} needs an image column (datasets.Image) and a label column "
            "(datasets.ClassLabel with the class names); it has "
            f"{ {n: type(f).__name__ for n, f in features.items()} }. "
            "A folder of class sub-folders (<class name>/<image>) also works."
        )
    label = "label" if "label" in labels else labels[0]
    image = next((n for n in ("image", "img") if n in images), images[0])
    names = list(features[label].names)
    return image, label, [n.replace("_", " ") for n in names]

# Scoring ---------------------------------------------------------------------------------------------------------


class ZeroShotBenchmark(_DatasetBenchmark):
    """Zero-shot classification with prompt ensembling: top-1, top-5 and mean per-class recall.

    Data: an image-classification dataset (an ``Image`` column and a ``ClassLabel`` column whose names are the class
    names; underscores read as spaces), a folder of class sub-folders ``<class name>/<image>``, or a CLIP_benchmark
    classification export (its ``classnames.txt`` and, unless ``templates`` is given, its own templates).
    """

    name = "zeroshot"
    card = ("Zero-shot image classification", "zeroshot", "Zero-shot classification")

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
        self.image_column, self.label_column, self.class_names = classification_columns(
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
