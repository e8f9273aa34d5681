"""The official TripletCLIP data layout: WebDataset tar shards with ``.image``, ``.neg_image``, ``.caption`` and
``.neg_caption`` per sample (as in ``TripletCLIP/TripletCLIP-High-Quality``), read by datasets' own WebDataset
loader and mapped onto the TripletData schema; and a resumable converter from those shards to the Hub layout.

datasets cannot guess types for these extensions, so every field arrives as raw bytes: the reader declares the
raw features up front (so a sample missing a field reads as None instead of breaking type inference), turns the
fields into schema columns lazily, and leaves decoding to whoever consumes the rows, which skips and counts bad
samples (`TripletCollator` during training, :func:`iter_valid_triplets` and the converter here).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from . import schema
from .hub_layout import DATA_DIR, ParquetShardWriter, atomic_path, list_shards, shard_filename, write_dataset_card
from .validation import decode_text, triplet_skip_reason

logger = logging.getLogger(__name__)

#: Official field name -> TripletData column.
OFFICIAL_FIELDS: dict[str, str] = {
    "image": schema.IMAGE,
    "neg_image": schema.NEGATIVE_IMAGE,
    "caption": schema.CAPTION,
    "neg_caption": schema.NEGATIVE_CAPTION,
}
PROGRESS_DIR = ".conversion"


def official_raw_features() -> datasets.Features:
    """The official samples as datasets' WebDataset loader gives them: key, shard URL and four raw byte fields."""
    features = {"__key__": datasets.Value("string"), "__url__": datasets.Value("string")}
    features.update({name: datasets.Value("binary") for name in OFFICIAL_FIELDS})
    return datasets.Features(features)


def undecoded_triplet_features() -> datasets.Features:
    """TripletData features with images left encoded (``{"bytes", "path"}``), so decoding errors reach the reader."""
    features = schema.triplet_features([schema.ID])
    for name in schema.IMAGE_COLUMNS:
        features[name] = datasets.Image(decode=False)
    return features


def _check_shards(shards: Sequence[str | Path]) -> list[str]:
    if isinstance(shards, (str, Path)):
        shards = [shards]
    shards = [str(s) for s in shards]
    if not shards:
        raise ValueError("No shards given: pass one or more WebDataset .tar files (e.g. shard-{0..750}.tar).")
    missing = [s for s in shards if "://" not in s and not Path(s).is_file()]
    if missing:
        raise FileNotFoundError(f"WebDataset shard(s) not found: {', '.join(missing[:5])}"
                                + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    return shards


def _shard_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def official_to_triplet(sample: Mapping[str, Any]) -> dict[str, Any]:
    """Map one raw official sample onto the schema; nothing is decoded, absent fields become None.

    The id is ``<shard name>/<sample key>``, unique across shards. A caption that is not valid UTF-8 becomes None
    (and is then counted as an empty caption).
    """
    def image(value):
        return None if value is None else {"bytes": value, "path": None}

    return {
        schema.IMAGE: image(sample.get("image")),
        schema.CAPTION: decode_text(sample.get("caption")),
        schema.NEGATIVE_IMAGE: image(sample.get("neg_image")),
        schema.NEGATIVE_CAPTION: decode_text(sample.get("neg_caption")),
        schema.ID: f"{_shard_name(sample.get('__url__') or '')}/{sample.get('__key__')}",
    }


def read_official_shards(shards: str | Path | Sequence[str | Path], split: str = "train") -> datasets.IterableDataset:
    """Stream official WebDataset shards as TripletData rows, without materialising them.

    Args:
        shards: local paths (or URLs datasets can open) of ``.tar`` shards in the official layout.
        split: the split name given to the stream.

    Returns:
        A `datasets.IterableDataset` with ``image``, ``caption``, ``negative_image``, ``negative_caption`` and
        ``id``; images stay encoded (``{"bytes", "path"}``, features ``Image(decode=False)``) so that a corrupt
        image is skipped and counted by the consumer rather than raising inside the stream. It has one shard per
        tar file, so `datasets.distributed.split_dataset_by_node` and DataLoader workers divide whole files.
    """
    shards = _check_shards(shards)
    raw = datasets.load_dataset(
        "webdataset", data_files={split: shards}, split=split, streaming=True, features=official_raw_features()
    )
    return raw.map(official_to_triplet, remove_columns=list(official_raw_features()),
                   features=undecoded_triplet_features())


def iter_valid_triplets(rows: Iterable[Mapping[str, Any]], skipped: Counter) -> Iterator[dict[str, Any]]:
    """The rows whose four values are usable (images decode, captions non-empty); the others are counted.

    ``skipped`` is updated in place with one count per skipped row under its reason
    (see `dataset_builders.validation.SKIP_REASONS`). Rows are yielded unchanged (images still encoded).
    """
    for row in rows:
        reason = triplet_skip_reason(row)
        if reason is None:
            yield dict(row)
        else:
            skipped[reason] += 1
            logger.debug("Skipping %s: %s", row.get(schema.ID), reason)


@dataclass
class ConversionReport:
    """What a conversion did: rows written, rows skipped by reason, shards converted now or found done."""

    out_dir: Path
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    converted_shards: list[str] = field(default_factory=list)
    reused_shards: list[str] = field(default_factory=list)

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return (f"{self.rows} triplets in {self.out_dir} ({len(self.converted_shards)} shard(s) converted now, "
                f"{len(self.reused_shards)} already done); skipped: {skipped}")


def convert_official_shards(
    shards: Sequence[str | Path],
    out_dir: str | Path,
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
    **card_kwargs: Any,
) -> ConversionReport:
    """Convert official WebDataset shards to TripletData in the Hub layout, one parquet shard per tar file.

    The conversion resumes: each output shard is written atomically and then recorded as done (with its row and
    skip counts) under ``out_dir/.conversion/``; a rerun after an interruption converts only the shards not yet
    recorded, so the result has every good sample exactly once. Images keep their original encoding (no
    re-compression); samples with an undecodable image, an empty caption or a missing field are skipped and counted.

    Args:
        shards: the ``.tar`` files, in the order their rows should appear.
        out_dir: the dataset folder to create or complete.
        split: the split name.
        overwrite: start afresh when ``out_dir`` holds a conversion of other shards.
        progress: show a progress bar per shard.
        **card_kwargs: passed to `write_dataset_card`.

    Returns:
        A `ConversionReport` (rows, skip counts, converted and reused shards).
    """
    from tqdm.auto import tqdm

    shards = _check_shards(shards)
    out_dir = Path(out_dir)
    progress_dir = out_dir / PROGRESS_DIR
    sources_file = progress_dir / "sources.json"
    plan = {"split": split, "shards": shards}
    if sources_file.exists() and json.loads(sources_file.read_text()) != plan:
        if not overwrite:
            raise FileExistsError(
                f"{out_dir} holds a conversion of other shards (see {sources_file}). Use another --out folder, or "
                f"--overwrite to discard it and convert these shards."
            )
        shutil.rmtree(progress_dir)
        for paths in list_shards(out_dir, split).values():
            for path in paths:
                path.unlink()
    elif not sources_file.exists() and list_shards(out_dir, split):
        if not overwrite:
            raise FileExistsError(
                f"{out_dir} already holds {split} shards that this converter did not write. Use another --out "
                f"folder, or --overwrite to replace them."
            )
        for path in list_shards(out_dir, split)[split]:
            path.unlink()
    progress_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(sources_file) as tmp:
        tmp.write_text(json.dumps(plan, indent=1))
    for stale in (out_dir / DATA_DIR).glob(".*.tmp") if (out_dir / DATA_DIR).is_dir() else []:
        stale.unlink()  # half-written shards of an interrupted run

    features = schema.triplet_features([schema.ID])
    report = ConversionReport(out_dir)
    total = len(shards)
    for index, shard in enumerate(shards):
        marker = progress_dir / f"{index:05d}.json"
        target = out_dir / DATA_DIR / shard_filename(split, index, total)
        if marker.exists() and target.exists():
            done = json.loads(marker.read_text())
            report.rows += done["rows"]
            report.skipped.update(done["skipped"])
            report.reused_shards.append(shard)
            continue
        skipped: Counter = Counter()
        rows = read_official_shards([shard], split=split)
        with ParquetShardWriter(target, features) as writer:
            for row in tqdm(iter_valid_triplets(rows, skipped), desc=_shard_name(shard), unit="triplet",
                            disable=not progress):
                writer.write(row)
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"source": shard, "rows": writer.num_rows, "skipped": dict(skipped)}))
        if skipped:
            logger.warning("%s: skipped %s", shard, dict(skipped))
        report.rows += writer.num_rows
        report.skipped.update(skipped)
        report.converted_shards.append(shard)

    skipped_text = ", ".join(f"{n} ({reason})" for reason, n in sorted(report.skipped.items())) or "none"
    card_kwargs.setdefault("pretty_name", "TripletData")
    card_kwargs.setdefault(
        "details",
        f"Converted by `tripletclip data convert-webdataset` from {total} WebDataset shard(s) in the official "
        f"TripletCLIP layout (`.image`, `.neg_image`, `.caption`, `.neg_caption`); images keep their original "
        f"encoding. Samples skipped: {skipped_text}.",
    )
    write_dataset_card(out_dir, features=features, **card_kwargs)
    return report
