"""Look inside a dataset folder: splits and row counts, features, whether it is TripletData, and a sample grid."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from . import schema
from .hub_layout import count_rows, describe_feature, list_shards, read_features, sample_grid_columns
from .sample_grid import render_sample_grid, save_sample_grid
from .sources import HUB_LAYOUT, load_dataset, resolve_dataset
from .world.layout import WorldLayout


@dataclass
class DatasetSummary:
    """Splits with row and shard counts, the features, and what kind of dataset the columns make it."""

    path: str
    splits: dict[str, int]
    shards: dict[str, int]
    features: datasets.Features
    kind: str
    grid: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = [f"{self.path}: {self.kind}"]
        lines += [f"  split {name}: {rows} rows in {self.shards.get(name, '?')} shard(s)"
                  for name, rows in self.splits.items()]
        lines.append("  columns:")
        lines += [f"    {name}: {describe_feature(feature)}" for name, feature in self.features.items()]
        lines += [f"  {note}" for note in self.notes]
        if self.grid is not None:
            lines.append(f"  sample grid: {self.grid}")
        return "\n".join(lines)


def dataset_kind(features: datasets.Features) -> str:
    """``TripletData``, ``Winoground-style``, ``retrieval`` or ``image-caption pairs`` from the columns."""
    names = set(features)
    if set(schema.REQUIRED_COLUMNS) <= names:
        return "TripletData"
    if set(schema.WINOGROUND_COLUMNS) - {schema.TAG} <= names:
        return "Winoground-style"
    if set(schema.RETRIEVAL_COLUMNS) <= names:
        return "retrieval"
    if {schema.IMAGE, schema.CAPTION} <= names:
        return "image-caption pairs (no negatives: not TripletData)"
    return "unknown layout"


def summarize_dataset(path: str | Path, split: str | None = None, grid_path: str | Path | None = None,
                      rows: int = 8) -> DatasetSummary:
    """Summarise a dataset in any form `dataset_builders.sources` resolves and, with ``grid_path``, save a sample grid.

    Row counts of a Hub-layout folder come from the parquet footers, so even a 13M-row dataset is summarised instantly;
    other forms are streamed (their row counts are not read) and show their first rows as stored.
    """
    source = resolve_dataset(str(path))
    if source.kind == HUB_LAYOUT:
        local = source.path
        shards = list_shards(local)
        if split is not None and split not in shards:
            raise ValueError(f"{local} has no split {split!r}; it has {', '.join(shards)}.")
        features = read_features(next(iter(shards.values()))[0])
        summary = DatasetSummary(str(local), {s: count_rows(p) for s, p in shards.items()},
                                 {s: len(p) for s, p in shards.items()}, features, dataset_kind(features))
        chosen = split or ("train" if "train" in shards else next(iter(shards)))
        sample = pq.read_table(shards[chosen][0]).slice(0, rows).to_pylist() if grid_path else []
    else:
        dataset = load_dataset(source, split=split or "train", streaming=True)
        features = dataset.features
        if features is None:
            first = next(iter(dataset))
            features = datasets.Features({k: datasets.Value("string") for k in first})
        shards = {split or "train": source.shards} if source.shards else {}
        summary = DatasetSummary(source.describe(), {}, {k: len(v) for k, v in shards.items()}, features,
                                 dataset_kind(features))
        summary.notes.append(f"row counts are not read for a {source.kind} (streamed)")
        sample = list(dataset.take(rows)) if grid_path else []
    if grid_path is not None:
        image_columns, text_columns = sample_grid_columns(features)
        summary.grid = save_sample_grid(render_sample_grid(sample, image_columns, text_columns, max_rows=rows),
                                        grid_path)
    return summary


def summarize_world(world_dir: str | Path) -> str:
    """A text summary of every part of a generated world (its manifest, splits and SugarCrepe files)."""
    layout = WorldLayout(world_dir)
    world_dir = layout.root
    manifest = layout.load_manifest()
    lines = [f"{world_dir}: procedural world, seed {manifest['config']['seed']}, "
             f"{manifest['config']['image_size']} px, {len(manifest['held_out'])} held-out colour-shape pairs"]
    for part in ("train", "test", "winoground", "retrieval"):
        if layout.part(part).is_dir():
            s = summarize_dataset(layout.part(part))
            lines.append(f"  {part}/: {s.kind}, " + ", ".join(f"{k} {v} rows" for k, v in s.splits.items()))
    sugarcrepe = layout.sugarcrepe
    if sugarcrepe.is_dir():
        counts = {p.stem: len(json.loads(p.read_text())) for p in sorted(sugarcrepe.glob("*.json"))}
        images = len(list(layout.sugarcrepe_images.glob("*.png")))
        lines.append(f"  sugarcrepe/: {images} images; " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for part, timing in manifest.get("timings", {}).items():
        lines.append(f"  generated {part}: {timing['rows']} rows in {timing['seconds']} s "
                     f"({timing['rows_per_second']} rows/s)")
    return "\n".join(lines)
