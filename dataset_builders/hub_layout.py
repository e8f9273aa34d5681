"""Read and write datasets in the Hugging Face Hub layout: parquet shards under ``data/`` plus a README card.

A folder written here loads with no script, locally or once uploaded::

    out/
      README.md                               card; its YAML declares configs, splits and features
      sample_grid.png                         a picture of a few rows, shown in the card
      data/train-00000-of-00002.parquet
      data/train-00001-of-00002.parquet

so that ``datasets.load_dataset("out")``, ``load_dataset("out", streaming=True)`` and, after an upload,
``load_dataset("org/name")`` all give the declared features (two `datasets.Image` columns included).

Every file is written atomically (`dataset_builders.utils.atomic`): to a temporary name in the same folder, then
renamed into place, so a crash never leaves a half shard under a name a reader would pick up. Reading any dataset
value (a folder like this one, a Hub id, WebDataset shards) goes through `dataset_builders.sources`; this module
reads the folders it writes (:func:`load_folder`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .schema import NotTripletDataError
from .utils import atomic

logger = logging.getLogger(__name__)

DATA_DIR = "data"
CARD_NAME = "README.md"
SAMPLE_GRID_NAME = "sample_grid.png"
#: Rows per parquet row group for image datasets (the Hub dataset viewer's convention): reading one row reads its group.
ROW_GROUP_SIZE = 100
DEFAULT_ROWS_PER_SHARD = 1000
SHARD_PATTERN = re.compile(r"^(?P<split>[\w.]+?)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet$")


LOCAL_CACHE_DIR = ".cache"
"""Where `load_folder` keeps the Arrow cache of a local Hub-layout folder (inside the folder)."""


def shard_filename(split: str, index: int, total: int) -> str:
    """``{split}-{index:05d}-of-{total:05d}.parquet``, the Hub's shard naming."""
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


class ParquetShardWriter:
    """Write rows to one parquet shard incrementally, atomically: the shard appears under its name only on close.

    Rows are encoded with the features (`datasets.Features.encode_example`: a PIL image becomes PNG bytes unless it
    carries its own format), and the features travel in the parquet schema metadata, as datasets writes them.

    Example:
        >>> with ParquetShardWriter("data/train-00000-of-00001.parquet", schema.triplet_features()) as writer:
        ...     for row in rows:
        ...         writer.write(row)
    """

    def __init__(self, path: str | Path, features: datasets.Features, row_group_size: int = ROW_GROUP_SIZE):
        self.path = Path(path)
        self.features = features
        self.row_group_size = row_group_size
        self.num_rows = 0  # rows flushed to the file so far
        self._buffer: list[dict[str, Any]] = []
        self._context = None
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "ParquetShardWriter":
        self._context = atomic.atomic_path(self.path)
        self._tmp = self._context.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, self.features.arrow_schema)
        return self

    def write(self, row: Mapping[str, Any]) -> None:
        missing = [name for name in self.features if name not in row]
        if missing:
            raise ValueError(
                f"Row is missing column(s) {missing} declared by the features; give every row all of "
                f"{list(self.features)} (use None for an absent optional value)."
            )
        self._buffer.append(self.features.encode_example({name: row[name] for name in self.features}))
        if len(self._buffer) >= self.row_group_size:
            self._flush()

    @property
    def rows_written(self) -> int:
        """Rows handed to :meth:`write` so far (flushed or buffered)."""
        return self.num_rows + len(self._buffer)

    def _flush(self) -> None:
        if self._buffer:
            table = pa.Table.from_pylist(self._buffer, schema=self.features.arrow_schema)
            self._writer.write_table(table, row_group_size=self.row_group_size)
            self.num_rows += len(self._buffer)
            self._buffer = []

    def __exit__(self, exc_type, exc, tb) -> bool:
        error = exc
        try:
            if exc_type is None:
                self._flush()
            self._writer.close()
        except BaseException as raised:  # the last rows or the footer could not be written: nothing is committed
            error = raised
            try:
                self._writer.close()
            except BaseException:  # noqa: BLE001 - the file is discarded anyway
                pass
        if error is None:
            self._context.__exit__(None, None, None)  # commit
            return False
        self._context.__exit__(type(error), error, error.__traceback__)  # discards; a full disk: DiskFullError
        if error is not exc:
            raise error
        return False


def write_parquet_shard(
    rows: Iterable[Mapping[str, Any]], path: str | Path, features: datasets.Features, row_group_size: int = ROW_GROUP_SIZE
) -> Path:
    """Write ``rows`` to the parquet file ``path`` atomically, encoded with ``features``; returns ``path``."""
    with ParquetShardWriter(path, features, row_group_size=row_group_size) as writer:
        for row in rows:
            writer.write(row)
    return Path(path)


def list_shards(out_dir: str | Path, split: str | None = None) -> dict[str, list[Path]]:
    """The complete parquet shards under ``out_dir/data``, by split, sorted by index."""
    found: dict[str, list[tuple[int, Path]]] = {}
    data_dir = Path(out_dir) / DATA_DIR
    if data_dir.is_dir():
        for path in data_dir.iterdir():
            match = SHARD_PATTERN.match(path.name)
            if match and (split is None or match["split"] == split):
                found.setdefault(match["split"], []).append((int(match["index"]), path))
    return {name: [p for _, p in sorted(paths)] for name, paths in sorted(found.items())}


def count_rows(paths: Sequence[Path]) -> int:
    """Rows in parquet files, read from their footers (no data is read)."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in paths)


def count_bytes(paths: Sequence[Path]) -> int:
    """Uncompressed size of parquet files' data, read from their footers."""
    total = 0
    for path in paths:
        metadata = pq.ParquetFile(path).metadata
        total += sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return total


def read_features(path: str | Path) -> datasets.Features:
    """The `datasets.Features` stored in a parquet file's schema."""
    return datasets.Features.from_arrow_schema(pq.read_schema(path))


def infer_triplet_features(row: Mapping[str, Any]) -> datasets.Features:
    """TripletData features for rows shaped like ``row``: the required columns plus the metadata columns it has."""
    missing = [name for name in schema.REQUIRED_COLUMNS if name not in row]
    if missing:
        raise NotTripletDataError(
            f"A TripletData row needs the columns {list(schema.REQUIRED_COLUMNS)}; this one lacks {missing}."
        )
    unknown = [name for name in row if name not in schema.REQUIRED_COLUMNS and name not in schema.METADATA_COLUMNS]
    if unknown:
        raise ValueError(
            f"Columns {unknown} are not part of the TripletData schema; pass features=schema.triplet_features("
            f"{{name: datasets.Value(...)}}) to declare them, or drop them."
        )
    return schema.triplet_features([name for name in schema.METADATA_COLUMNS if name in row])


def write_dataset(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    features: datasets.Features,
    split: str = "train",
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    card: bool = True,
    progress: bool = True,
    **card_kwargs: Any,
) -> Path:
    """Write rows of any layout as one split of a Hub-layout dataset in ``out_dir``; returns ``out_dir``.

    Shards are first written under a staging folder and moved to their final names
    (``data/{split}-{i:05d}-of-{n:05d}.parquet``) once the total is known, replacing the split's previous shards.
    Other splits already in ``out_dir`` are kept. With ``card=True`` the README card is (re)written for all splits
    present; ``card_kwargs`` go to :func:`write_dataset_card`.
    """
    from tqdm.auto import tqdm

    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be at least 1, got {rows_per_shard}.")
    if not re.fullmatch(r"[A-Za-z0-9_.]+", split):
        raise ValueError(f"Split name {split!r} must use letters, digits, '_' or '.' only (e.g. 'train', 'test').")
    out_dir = Path(out_dir)
    data_dir = out_dir / DATA_DIR
    # The folder's own Arrow cache (see `load_folder`) describes the old shards: drop it.
    shutil.rmtree(out_dir / LOCAL_CACHE_DIR, ignore_errors=True)
    staging = data_dir / f".staging-{split}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    staged: list[Path] = []
    writer: ParquetShardWriter | None = None
    total = None
    try:
        total = len(rows)  # type: ignore[arg-type]
    except TypeError:
        pass
    bar = tqdm(total=total, desc=f"writing {split}", unit="row", disable=not progress)
    try:
        for row in rows:
            if writer is None:
                writer = ParquetShardWriter(staging / f"{len(staged):05d}.parquet", features).__enter__()
            writer.write(row)
            bar.update(1)
            if writer.rows_written >= rows_per_shard:
                writer.__exit__(None, None, None)
                staged.append(writer.path)
                writer = None
        if writer is not None:
            writer.__exit__(None, None, None)
            staged.append(writer.path)
    except BaseException as error:
        if writer is not None:
            writer.__exit__(type(error), error, None)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    if not staged:  # an empty split still gets one (empty) shard, so it is declared and loads
        staged.append(write_parquet_shard([], staging / "00000.parquet", features))

    for old in list_shards(out_dir, split).get(split, []):
        old.unlink()
    for index, path in enumerate(staged):
        atomic.commit(path, data_dir / shard_filename(split, index, len(staged)))
    shutil.rmtree(staging, ignore_errors=True)
    if card:
        write_dataset_card(out_dir, features=features, **card_kwargs)
    return out_dir


def write_tripletdata(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    split: str = "train",
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    features: datasets.Features | None = None,
    card: bool = True,
    progress: bool = True,
    **card_kwargs: Any,
) -> Path:
    """Write triplet rows as TripletData in the Hub layout under ``out_dir``; returns ``out_dir``.

    Args:
        rows: dicts with ``image``, ``caption``, ``negative_image``, ``negative_caption`` (images as PIL images,
            encoded bytes or ``{"bytes", "path"}`` dicts) and optionally the metadata columns of
            :func:`schema.metadata_features`. Any iterable, also a generator of unknown length.
        out_dir: the dataset folder; other splits already there are kept, this split's shards are replaced.
        split: the split name (``train``, ``test``, ...).
        rows_per_shard: rows per parquet shard.
        features: the row features; by default inferred from the first row (required + present metadata columns).
        card: write the README card (YAML configs, splits, features) and the sample grid.
        progress: show a progress bar.
        **card_kwargs: passed to :func:`write_dataset_card` (``pretty_name``, ``description``, ``license``, ...).
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if features is None:
        features = schema.triplet_features() if first is None else infer_triplet_features(first)
    else:
        validate_columns(features, schema.REQUIRED_COLUMNS, source="features")

    def all_rows():
        if first is not None:
            yield first
            yield from iterator

    total = len(rows) if hasattr(rows, "__len__") else None
    stream = _Sized(all_rows(), total) if total is not None else all_rows()
    return write_dataset(stream, out_dir, features, split=split, rows_per_shard=rows_per_shard, card=card,
                         progress=progress, **card_kwargs)


class _Sized:
    """An iterator that knows its length (for the progress bar)."""

    def __init__(self, iterator: Iterator, length: int):
        self._iterator, self._length = iterator, length

    def __iter__(self):
        return self._iterator

    def __len__(self):
        return self._length


def _size_category(num_rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if num_rows < bound:
            return label
    return "100M<n<1B"


def sample_grid_columns(features: datasets.Features) -> tuple[list[str], list[str]]:
    """The image and text columns a sample grid shows (for TripletData: captions and the negative kind)."""
    images = [name for name, f in features.items() if isinstance(f, datasets.Image)]
    if all(name in features for name in schema.REQUIRED_COLUMNS):
        return images, [name for name in (*schema.CAPTION_COLUMNS, schema.NEGATIVE_KIND) if name in features]
    texts = [
        name for name, f in features.items()
        if name != schema.ID and (
            (isinstance(f, datasets.Value) and f.dtype == "string")
            or (isinstance(f, (datasets.List, datasets.Sequence)) and getattr(f.feature, "dtype", None) == "string")
        )
    ]
    return images, texts


def write_dataset_card(
    out_dir: str | Path,
    features: datasets.Features | None = None,
    pretty_name: str = "TripletData",
    description: str | None = None,
    license: str = "apache-2.0",
    tags: Sequence[str] = ("tripletclip", "compositionality", "hard-negatives"),
    sample_grid: bool = True,
    sample_rows: int = 8,
    repo_id: str = "<org>/<name>",
    details: str | None = None,
    template_path: str | Path | None = None,
) -> Path:
    """Write ``out_dir/README.md``, a dataset card whose YAML makes the folder load with `datasets.load_dataset`.

    The YAML (through huggingface_hub's `DatasetCardData` and datasets' own card writers, as ``push_to_hub`` does)
    declares one config ``default`` with a ``data_files`` pattern per split found under ``data/``, the features and
    the number of rows per split. With ``sample_grid=True`` a PNG of the first rows is saved beside it and shown in
    the card. ``details`` is free Markdown added to the card body (e.g. how the data was generated).

    Returns the card's path.
    """
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    out_dir = Path(out_dir)
    shards = list_shards(out_dir)
    if not shards:
        raise NotTripletDataError(
            f"No parquet shards named like data/<split>-00000-of-00001.parquet in {out_dir}; write the data first "
            f"(write_tripletdata or write_dataset), then the card."
        )
    if features is None:
        features = read_features(next(iter(shards.values()))[0])
    counts = {split: count_rows(paths) for split, paths in shards.items()}

    card_data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        size_categories=_size_category(sum(counts.values())),
        task_categories=["zero-shot-image-classification", "image-to-text", "text-to-image"],
        tags=list(tags),
    )
    MetadataConfigs(
        {"default": {"data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in shards]}}
    ).to_dataset_card_data(card_data)
    splits = SplitDict()
    for split, count in counts.items():
        splits.add(SplitInfo(name=split, num_examples=count, num_bytes=count_bytes(shards[split])))
    DatasetInfosDict({"default": DatasetInfo(features=features, splits=splits)}).to_dataset_card_data(card_data)

    grid_name = None
    if sample_grid:
        from .sample_grid import render_sample_grid, save_sample_grid

        first_split = "train" if "train" in shards else next(iter(shards))
        table = pq.read_table(shards[first_split][0]).slice(0, sample_rows)
        image_columns, text_columns = sample_grid_columns(features)
        save_sample_grid(render_sample_grid(table.to_pylist(), image_columns, text_columns), out_dir / SAMPLE_GRID_NAME)
        grid_name = SAMPLE_GRID_NAME

    if template_path is None:
        from model_cards import template_path as find_template

        template = find_template("dataset_card.md")
    else:
        template = Path(template_path)
        if not template.is_file():
            raise FileNotFoundError(f"Dataset card template {template} not found.")
    card = DatasetCard.from_template(
        card_data,
        template_path=str(template),
        pretty_name=pretty_name,
        description=description,
        repo_id=repo_id,
        sample_grid=grid_name,
        splits=counts,
        features=[(name, describe_feature(feature)) for name, feature in features.items()],
        is_tripletdata=all(name in features for name in schema.REQUIRED_COLUMNS),
        details=details,
    )
    path = out_dir / CARD_NAME
    with atomic.atomic_path(path) as tmp:
        card.save(tmp)
    return path


def describe_feature(feature: Any) -> str:
    """A feature in a few words, as the card and `tripletclip data inspect` show it (e.g. ``"list of string"``)."""
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, (datasets.List, datasets.Sequence)):
        return f"list of {describe_feature(feature.feature)}"
    return type(feature).__name__


def validate_columns(features: Mapping[str, Any] | Sequence[str], required: Sequence[str], source: str) -> None:
    """Raise `NotTripletDataError` naming the missing columns of ``source`` and how to fix it."""
    present = list(features)
    missing = [name for name in required if name not in present]
    if missing:
        hint = (
            "Rename existing columns with `dataset.rename_column(old, new)`, or create negative captions and images "
            "with `tripletclip synthesize`."
            if set(required) == set(schema.REQUIRED_COLUMNS)
            else "Regenerate it with the command that wrote it."
        )
        raise NotTripletDataError(
            f"{source} lacks the column(s) {missing}; it has {present}, and needs {list(required)}. {hint}"
        )


def check_folder(path: Path) -> None:
    """Refuse a Hub-layout folder whose card has a broken YAML header (datasets would read it wrongly)."""
    card = path / CARD_NAME
    if card.exists():
        import yaml
        from huggingface_hub import DatasetCard

        try:
            DatasetCard.load(card)
        except (ValueError, yaml.YAMLError) as error:
            raise NotTripletDataError(
                f"The card {card} has a broken YAML header ({error}). Fix the YAML between the '---' lines, or "
                f"rewrite the card with `dataset_builders.hub_layout.write_dataset_card({str(path)!r})`."
            ) from error


def load_folder(path: str | Path, split: str | None = "train", streaming: bool = False, **load_kwargs: Any):
    """`datasets.load_dataset` a Hub-layout folder (``split=None``: every split, as a dict)."""
    local = Path(path)
    check_folder(local)
    if not streaming and "cache_dir" not in load_kwargs and os.access(local, os.W_OK):
        # datasets keys the Arrow cache of a local folder on its card's metadata and the folder's name, not on the
        # shards' contents, so two different folders with equal names and sizes would share one cache entry.
        # A cache inside the folder belongs to that folder alone (and is dropped whenever the folder is rewritten).
        load_kwargs["cache_dir"] = str(local / LOCAL_CACHE_DIR)
    return datasets.load_dataset(str(local), split=split, streaming=streaming, **load_kwargs)
