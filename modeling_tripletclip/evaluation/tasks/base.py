"""What every evaluation task shares: its options, its result, the `Benchmark` base class (construction reads and
checks the data, `run` encodes and scores), and the reading of datasets in chunks."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from tqdm.auto import tqdm

from dataset_builders.rows import image_skip_reason, text_or_none
from dataset_builders.utils.images import UNDECODABLE

from ...encoding import CLIPEncoder, ImageSource, image_source_from_value
from .. import data as readers

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
    """A benchmark over one data source. Construction reads and checks the data; :meth:`run` scores a model.

    Each task's file defines one subclass with its ``name`` (the registry key), and its model-card metadata:
    ``card`` = (task name, dataset type, dataset name) when its scores go on cards, ``world_card`` = (dataset name,
    dataset type) under which the built-in world's held-out set of that format is reported; a compositional
    benchmark also names its ``folder_names`` and ``headline`` metric.
    """

    name: ClassVar[str]
    card: ClassVar[tuple[str, str, str] | None] = None
    world_card: ClassVar[tuple[str, str] | None] = None
    #: For a compositional benchmark: the folder names it is found under in ``--data_root`` (first match wins) and
    #: its headline metric, the one the compositional average takes.
    folder_names: ClassVar[tuple[str, ...]] = ()
    headline: ClassVar[str | None] = None

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

    @staticmethod
    def score_matrix(u0, u1, v0, v1) -> torch.Tensor:
        """``(n, caption, image)`` cosine similarities of each row's two captions with its two images."""
        return torch.stack([torch.stack([(v0 * u0).sum(-1), (v0 * u1).sum(-1)], dim=1),
                            torch.stack([(v1 * u0).sum(-1), (v1 * u1).sum(-1)], dim=1)], dim=1)

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
