"""Look inside a dataset folder: splits and row counts, features, whether it is TripletData, and a sample grid."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from . import schema
from .hub_layout import NotTripletDataError, describe_feature, sample_grid_columns, looks_like_local_path, count_rows, list_shards, read_features
from .sample_grid import render_sample_grid, save_sample_grid


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
    """Summarise a Hub-layout folder (or a Hub dataset id) and, with ``grid_path``, save a sample grid PNG.

    Row counts of a folder come from the parquet footers, so even a 13M-row dataset is summarised instantly.
    """
    local = Path(path)
    if not local.exists() and looks_like_local_path(str(path)):
        raise NotTripletDataError(f"No such folder: {local}.")
    if local.is_dir():
        shards = list_shards(local)
        if not shards:
            raise NotTripletDataError(
                f"{local} holds no parquet shards named like data/<split>-00000-of-00001.parquet: it is not a "
                f"dataset in the Hub layout. Create one with `tripletclip data world --out DIR` or "
                f"`tripletclip data convert-webdataset SHARDS --out DIR`."
            )
        if split is not None and split not in shards:
            raise ValueError(f"{local} has no split {split!r}; it has {', '.join(shards)}.")
        features = read_features(next(iter(shards.values()))[0])
        summary = DatasetSummary(str(local), {s: count_rows(p) for s, p in shards.items()},
                                 {s: len(p) for s, p in shards.items()}, features, dataset_kind(features))
        chosen = split or ("train" if "train" in shards else next(iter(shards)))
        sample = pq.read_table(shards[chosen][0]).slice(0, rows).to_pylist() if grid_path else []
    else:
        dataset = datasets.load_dataset(str(path), split=split or "train", streaming=True)
        features = dataset.features
        if features is None:
            first = next(iter(dataset))
            features = datasets.Features({k: datasets.Value("string") for k in first})
        summary = DatasetSummary(str(path), {}, {}, features, dataset_kind(features))
        summary.notes.append("row counts are not read for a remote dataset (streamed)")
        sample = list(dataset.take(rows)) if grid_path else []
    if grid_path is not None:
        image_columns, text_columns = sample_grid_columns(features)
        summary.grid = save_sample_grid(render_sample_grid(sample, image_columns, text_columns, max_rows=rows),
                                        grid_path)
    return summary


def summarize_world(world_dir: str | Path) -> str:
    """A text summary of every part of a generated world (its manifest, splits and SugarCrepe files)."""
    from .world.generate import load_manifest

    world_dir = Path(world_dir)
    manifest = load_manifest(world_dir)
    lines = [f"{world_dir}: procedural world, seed {manifest['config']['seed']}, "
             f"{manifest['config']['image_size']} px, {len(manifest['held_out'])} held-out colour-shape pairs"]
    for part in ("train", "test", "winoground", "retrieval"):
        if (world_dir / part).is_dir():
            s = summarize_dataset(world_dir / part)
            lines.append(f"  {part}/: {s.kind}, " + ", ".join(f"{k} {v} rows" for k, v in s.splits.items()))
    sugarcrepe = world_dir / "sugarcrepe"
    if sugarcrepe.is_dir():
        counts = {p.stem: len(json.loads(p.read_text())) for p in sorted(sugarcrepe.glob("*.json"))}
        images = len(list((sugarcrepe / "images").glob("*.png")))
        lines.append(f"  sugarcrepe/: {images} images; " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for part, timing in manifest.get("timings", {}).items():
        lines.append(f"  generated {part}: {timing['rows']} rows in {timing['seconds']} s "
                     f"({timing['rows_per_second']} rows/s)")
    return "\n".join(lines)
