"""The official TripletCLIP data layout: WebDataset tar shards with ``.image``, ``.neg_image``, ``.caption`` and
``.neg_caption`` per sample (as in ``TripletCLIP/TripletCLIP-High-Quality``), mapped onto the TripletData schema;
and a resumable converter from any form of that data (Hub id, local copy, shards) to the Hub layout.

datasets cannot guess types for these extensions, so every field arrives as raw bytes (plus ``__key__`` and
``__url__``). The key names are mapped onto the schema here and nowhere else: :func:`from_official` renames the
columns of any `datasets` dataset read from such shards (nothing is copied or decoded: the row decoder of
`dataset_builders.rows` reads UTF-8 bytes and encoded images), and :func:`official_to_triplet` turns one sample into a
full schema row with an id, for the converter and the builder. Bad samples (a corrupt image, undecodable text, a
missing field) are skipped and counted by whoever consumes the rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import schema
from .rows import decode_row
from .schema import OFFICIAL_FIELDS
from .sources import WEBDATASET, DatasetSourceError, load_dataset, resolve_dataset

logger = logging.getLogger(__name__)

CONVERSION_DIR = ".conversion"
CONVERT_JOB = "tripletclip data convert-webdataset"


def undecoded_triplet_features():
    """TripletData features with nothing decoded: images encoded (``{"bytes", "path"}``) and captions as the shards
    hold them (UTF-8 bytes), so that every decoding problem reaches the reader, which counts it by reason."""
    import datasets

    features = schema.triplet_features([schema.ID])
    for name in schema.IMAGE_COLUMNS:
        features[name] = datasets.Image(decode=False)
    for name in schema.CAPTION_COLUMNS:
        features[name] = datasets.Value("binary")
    return features


def shard_name(url: str) -> str:
    name = str(url or "").rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def official_to_triplet(sample: Mapping[str, Any]) -> dict[str, Any]:
    """One official sample (raw, or with the schema's names) as a schema row with an id; nothing is decoded (images
    as ``{"bytes", "path"}``, captions as the UTF-8 bytes they are), absent fields become None.

    The id is ``<shard name>/<sample key>``, unique across shards.
    """
    def image(value):
        if value is None or isinstance(value, Mapping):
            return value
        return {"bytes": value, "path": None}

    def text(value):
        return value.encode("utf-8") if isinstance(value, str) else value

    def get(official: str):
        return sample.get(official, sample.get(OFFICIAL_FIELDS[official]))

    return {
        schema.IMAGE: image(get("image")),
        schema.CAPTION: text(get("caption")),
        schema.NEGATIVE_IMAGE: image(get("neg_image")),
        schema.NEGATIVE_CAPTION: text(get("neg_caption")),
        schema.ID: f"{shard_name(sample.get('__url__'))}/{sample.get('__key__')}",
    }


def valid_triplet(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(row with its captions as text, None)`` when all four values are usable (`dataset_builders.rows.decode_row`),
    else ``(None, reason)``; the images stay encoded."""
    decoded, reason = decode_row(row)
    if reason is not None:
        return None, reason
    return {**row, schema.CAPTION: decoded.caption, schema.NEGATIVE_CAPTION: decoded.negative_caption}, None


def read_official_shards(value, split: str = "train"):
    """Stream the released TripletData (a Hub id, a local copy, or shards: any form `dataset_builders.sources`
    resolves) as schema rows with an ``id``, without materialising them.

    Returns:
        A `datasets.IterableDataset` with ``image``, ``caption``, ``negative_image``, ``negative_caption`` and
        ``id``; images stay encoded (``{"bytes", "path"}``, features ``Image(decode=False)``) so that a corrupt
        image is skipped and counted by the consumer rather than raising inside the stream. It has one shard per
        tar file, so `datasets.distributed.split_dataset_by_node` and DataLoader workers divide whole files.
    """

    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("No shards given: pass one or more WebDataset .tar files (e.g. shard-{0..750}.tar).")
        missing = [str(s) for s in value if "://" not in str(s) and not Path(s).is_file()]
        if missing:
            raise FileNotFoundError(f"WebDataset shard(s) not found: {', '.join(missing[:5])}"
                                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        value = ",".join(str(s) for s in value)
    stream = load_dataset(value, split=split, streaming=True)
    columns = list(stream.features or {})
    if not {schema.IMAGE, schema.CAPTION, schema.NEGATIVE_IMAGE, schema.NEGATIVE_CAPTION} <= set(columns):
        raise DatasetSourceError(
            f"{value} does not hold the released TripletData layout (.image, .neg_image, .caption, .neg_caption per "
            f"sample); its columns are {columns}."
        )
    return stream.map(official_to_triplet, remove_columns=columns, features=undecoded_triplet_features())


def iter_valid_triplets(rows: Iterable[Mapping[str, Any]], skipped: Counter) -> Iterator[dict[str, Any]]:
    """The rows whose four values are usable (images decode, captions non-empty); the others are counted.

    ``skipped`` is updated in place with one count per skipped row under its reason
    (see `dataset_builders.rows.SKIP_REASONS`). Rows are yielded with their captions as text, images still encoded.
    """
    for row in rows:
        valid, reason = valid_triplet(row)
        if reason is None:
            yield valid
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
    value,
    out_dir: str | Path,
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
    **card_kwargs: Any,
) -> ConversionReport:
    """Convert the released TripletData (Hub id, local copy or shards) to the Hub layout, one parquet shard per tar.

    The conversion resumes: the output folder is claimed for this source (`OutputFolder`), each output shard is
    written atomically and then recorded as done (with its row and skip counts) in the folder's ledger
    (``out_dir/.conversion/``); a rerun after an interruption converts only the shards not yet recorded, so the result
    has every good sample exactly once. Images keep their original encoding (no re-compression); samples with an
    undecodable image or caption, an empty caption or a missing field are skipped and counted.

    Args:
        value: a Hub id, a folder holding the shards, or shards (a list, or paths / globs / brace ranges).
        out_dir: the dataset folder to create or complete.
        split: the split name.
        overwrite: start afresh when ``out_dir`` holds a conversion of other shards (or other files).
        progress: show a progress bar per shard.
        **card_kwargs: passed to `write_dataset_card`.
    """
    from tqdm.auto import tqdm

    from .hub_layout import DATA_DIR, ParquetShardWriter, shard_filename, write_dataset_card
    from .utils.output_folders import OutputFolder

    stream = read_official_shards(value, split=split)  # checks the shards exist before anything is written
    source = resolve_dataset(",".join(map(str, value)) if isinstance(value, (list, tuple)) else value)
    names = list(source.shards) if source.kind == WEBDATASET else [f"{source.value}#{i}" for i in
                                                                   range(stream.num_shards)]
    out_dir = Path(out_dir)
    folder = OutputFolder(
        out_dir, {"split": split, "shards": [str(Path(n).resolve()) if Path(n).is_file() else n for n in names]},
        CONVERT_JOB, identity_file=f"{CONVERSION_DIR}/sources.json", ledger_dir=CONVERSION_DIR,
        other_message="{path} holds a conversion of other shards ({differences}). Use another --output_dir, or "
                      "{flag} to discard it and convert these shards.",
        foreign_message="{path} already holds files that this converter did not write. Use another --output_dir, "
                        "or {flag} to replace them.",
    )
    folder.claim(overwrite=overwrite)
    try:

        features = schema.triplet_features([schema.ID])
        report = ConversionReport(out_dir)
        total = stream.num_shards
        for index in range(total):
            target = out_dir / DATA_DIR / shard_filename(split, index, total)
            done = folder.record_for(index)
            if done is not None and target.exists():
                report.rows += done["rows"]
                report.skipped.update(done["skipped"])
                report.reused_shards.append(names[index])
                continue
            skipped: Counter = Counter()
            rows = stream.shard(num_shards=total, index=index)
            with ParquetShardWriter(target, features) as writer:
                for row in tqdm(iter_valid_triplets(rows, skipped), desc=shard_name(names[index]), unit="triplet",
                                disable=not progress):
                    writer.write(row)
            folder.record(index, {"source": names[index], "rows": writer.num_rows, "skipped": dict(skipped)})
            if skipped:
                logger.warning("%s: skipped %s", names[index], dict(skipped))
            report.rows += writer.num_rows
            report.skipped.update(skipped)
            report.converted_shards.append(names[index])

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
    finally:
        folder.release()  # other runs may write the folder again
