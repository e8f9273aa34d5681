"""What a ``--dataset`` value is, and how to read it: the one resolver every command uses.

A dataset value is one of:

- a **Hub dataset id** (``TripletCLIP/TripletCLIP-High-Quality``, ``org/tripletdata``), read with
  `datasets.load_dataset` (map-style or streaming);
- a **folder in the Hub layout** (``data/*.parquet`` + ``README.md``, as `write_tripletdata` and ``tripletclip data
  world`` write it), or one written by ``save_to_disk``;
- a **folder holding WebDataset shards** (``*.tar``, anywhere below it: what ``hf download --repo-type dataset ...
  --local-dir DIR`` writes), read as `datasets` reads the same repository on the Hub;
- **explicit shards**: paths, globs and brace ranges (``shard-{0000..0750}.tar``), comma-separated or as a shell
  expands them;
- a single data file (``.parquet``, ``.jsonl``, ``.json``, ``.csv``, ``.tsv``, ``.arrow``, ``.txt``);
- the **built-in world** (the value ``world``: generated on first use by the trainer) or a **generated world's
  folder**: a world is not one dataset (its training rows are ``<world>/train``, its benchmarks beside them), so the
  resolver names it and the readers of one dataset refuse it, saying where its parts are.

Whichever the form, the released TripletData's key names (``.image``, ``.neg_image``, ``.caption``,
``.neg_caption``) are mapped onto the schema in one place (`dataset_builders.schema.from_official`), so the
same rows arrive in the same order from the Hub id, a local copy of it, or its shards. Folders and globs are read in
path order, as `datasets` orders a repository's files; explicit paths and brace ranges in the order given.

    source = resolve_dataset("TripletCLIP/TripletCLIP-High-Quality")   # what it is (nothing is read)
    dataset = load_tripletdata(source, streaming=True)                 # TripletData columns, checked
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import schema
from .schema import OFFICIAL_FIELDS, NotTripletDataError, from_official, official_raw_features
from .utils.errors import InputError
from .utils.locations import is_local, is_pattern

HUB_ID = "Hub dataset id"
HUB_LAYOUT = "folder in the Hub layout"
SAVED = "folder written by save_to_disk"
WEBDATASET = "WebDataset shards"
DATA_FILE = "data file"
IMAGE_FOLDER = "folder of images"
WORLD = "generated world"
#: The dataset value that names the built-in world.
BUILTIN_WORLD = "world"
KINDS = (HUB_ID, HUB_LAYOUT, SAVED, WEBDATASET, DATA_FILE, IMAGE_FOLDER, WORLD)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
DATA_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
                      ".arrow": "arrow", ".txt": "text"}
#: What a folder is recognised by, for the message when it is none of them.
FORMS = (
    "a Hub dataset id (namespace/name)",
    "a folder in the Hub layout (README.md + data/*.parquet)",
    "a folder written by save_to_disk (dataset_info.json / state.json)",
    "a folder holding WebDataset shards (*.tar, in any sub-folder)",
    "WebDataset shards given as paths, globs or brace ranges (shard-{0000..0009}.tar), comma-separated",
    "a data file (.parquet, .jsonl, .json, .csv, .tsv, .arrow, .txt)",
    "a folder of images, in class sub-folders for classification (datasets' imagefolder)",
)


class DatasetSourceError(NotTripletDataError):
    """A dataset value that is none of the supported forms; the message says what was looked for and found."""


@dataclass(frozen=True)
class DatasetSource:
    """A resolved dataset value.

    Attributes:
        value: the value as given.
        kind: one of :data:`KINDS`.
        path: the local file or folder (None for a Hub id or explicit shards).
        shards: the WebDataset shards, in reading order (explicit shards, or a folder's).
    """

    value: str
    kind: str
    path: Path | None = None
    shards: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        if self.kind == WEBDATASET:
            where = f" in {self.path}" if self.path is not None else ""
            return f"{len(self.shards)} WebDataset shard(s){where}"
        return f"{self.value} ({self.kind})"


def _is_shard(name: str) -> bool:
    return name.endswith(SHARD_SUFFIXES)


def _expand(part: str) -> list[str]:
    """Brace ranges (in the order given) then globs (in path order) of one shard specification."""
    import braceexpand

    found: list[str] = []
    for item in braceexpand.braceexpand(part) if "{" in part else [part]:
        item = os.path.expanduser(item)
        if any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise DatasetSourceError(f"No file matches {item!r}. Give existing WebDataset shards (*.tar).")
            found.extend(matches)
        else:
            found.append(item)
    return found


def _shards_in(folder: Path) -> list[str]:
    """The shards below ``folder`` (hidden folders such as ``.cache`` skipped), in path order as datasets lists them."""
    shards = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        shards += [os.path.join(root, f) for f in files if _is_shard(f) and not f.startswith(".")]
    return sorted(shards, key=lambda p: Path(p).relative_to(folder).as_posix())


def _folder_kind(folder: Path) -> tuple[str, tuple[str, ...]]:
    from .world.layout import WorldLayout

    if WorldLayout(folder).is_world():
        return WORLD, ()
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        return SAVED, ()
    if any(folder.glob("data/*.parquet")) or any(folder.glob("*.parquet")) or any(folder.glob("*/*.parquet")):
        return HUB_LAYOUT, ()
    shards = _shards_in(folder)
    if shards:
        return WEBDATASET, tuple(shards)
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*") if p.is_file()):
        return IMAGE_FOLDER, ()
    found: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".tar.gz") else (path.suffix or path.name)
            found[suffix] = found.get(suffix, 0) + 1
    seen = ", ".join(f"{n} {k}" for k, n in sorted(found.items(), key=lambda kv: -kv[1])[:8]) or "nothing"
    raise DatasetSourceError(
        f"{folder} holds no parquet shards (data/<split>-00000-of-0000N.parquet) nor another dataset: it is not a "
        f"dataset in the Hub layout, nor in another form this package reads; it holds {seen}. "
        f"Looked for: " + "; ".join(FORMS[1:4]) + "; " + FORMS[-1] + ". Create TripletData with `tripletclip data "
        "world --output_dir DIR` or `tripletclip data convert-webdataset --dataset SHARDS --output_dir DIR`."
    )


def resolve_dataset(value: str | os.PathLike | DatasetSource) -> DatasetSource:
    """Decide what a dataset value is, from its spelling and the files it names (no data is read).

    ``world`` is the built-in world (kind :data:`WORLD`, no path); a generated world's folder is :data:`WORLD` with
    its path.

    Raises:
        DatasetSourceError: a path that does not exist, a folder in no known layout, a pattern matching nothing
            (each message names what was looked for and what was found).
    """
    if isinstance(value, DatasetSource):
        return value
    text = os.fspath(value)
    if text == BUILTIN_WORLD:
        return DatasetSource(text, WORLD)
    if not text or not text.strip():
        raise DatasetSourceError("Empty dataset value. Give " + "; or ".join(FORMS) + ".")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > 1 or is_pattern(text):
        shards = [s for part in parts for s in _expand(part)]
        missing = [s for s in shards if "://" not in s and not Path(s).is_file()]
        if missing:
            raise DatasetSourceError(f"WebDataset shard(s) not found: {', '.join(missing[:5])}"
                                     + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + ".")
        return DatasetSource(text, WEBDATASET, None, tuple(shards))
    path = Path(text).expanduser()
    if path.is_file():
        if _is_shard(path.name):
            return DatasetSource(text, WEBDATASET, None, (str(path),))
        if path.suffix.lower() in DATA_FILE_BUILDERS:
            return DatasetSource(text, DATA_FILE, path)
        raise DatasetSourceError(f"{path} is a file of a kind this package does not read as a dataset. Give "
                                 + "; or ".join(FORMS[1:]) + ".")
    if path.is_dir():
        kind, shards = _folder_kind(path)
        return DatasetSource(text, kind, path, shards)
    if is_local(text):
        raise DatasetSourceError(f"No such folder or file: {path}. A dataset is " + "; or ".join(FORMS) + ".")
    return DatasetSource(text, HUB_ID)


# ------------------------------------------------------------------------------------------------ reading


def _webdataset_features(shards: Sequence[str]):
    """The official raw features when the first shard holds the official layout (so a sample missing a field reads as
    None instead of breaking datasets' type inference); None otherwise (datasets infers them)."""
    import tarfile

    first = next((s for s in shards if "://" not in s), None)
    if first is None:
        return None
    fields = set()
    try:
        with tarfile.open(first) as archive:
            for member, _ in zip(archive, range(64)):
                fields.add(member.name.rsplit(".", 1)[-1].lower() if "." in member.name else "")
    except (OSError, tarfile.TarError):
        return None  # datasets will report the broken shard with its own message
    return official_raw_features() if fields & set(OFFICIAL_FIELDS) - {"image", "caption"} else None


def _load_hub_id(value: str, split: str | None, streaming: bool, **kwargs: Any):
    import datasets

    try:
        return datasets.load_dataset(value, split=split, streaming=streaming, **kwargs)
    except ValueError as error:
        # datasets infers a WebDataset repository's columns from its first samples and refuses when one lacks a
        # field; the released TripletData is the layout we know, so read it with its declared fields.
        if "WebDataset format" not in str(error) or "features" in kwargs:
            raise
        return datasets.load_dataset(value, split=split, streaming=streaming, features=official_raw_features(),
                                     **kwargs)


def load_dataset(value: str | os.PathLike | DatasetSource, split: str | None = "train", streaming: bool = False,
                 **load_kwargs: Any):
    """Read a dataset value (see the module docstring); the official key names are mapped onto the schema.

    Args:
        value: the dataset value, or a `DatasetSource` from :func:`resolve_dataset`.
        split: the split; None returns every split (a `DatasetDict` / `IterableDatasetDict`).
        streaming: an `IterableDataset` read lazily (the 13M-row scale), instead of preparing it on disk.
        **load_kwargs: passed to `datasets.load_dataset` (``revision``, ``cache_dir``, ...).
    """
    import datasets

    from . import hub_layout

    source = resolve_dataset(value)
    if source.kind == WORLD:
        where = source.path if source.path is not None else "the built-in world"
        raise NotTripletDataError(
            f"{where} is a generated world, not one dataset: its training data is "
            f"{source.path / 'train' if source.path is not None else '<world>/train'} (benchmarks in test/, "
            f"winoground/, retrieval/ and sugarcrepe/)."
        )
    try:
        if source.kind == HUB_ID:
            loaded = _load_hub_id(source.value, split, streaming, **load_kwargs)
        elif source.kind == HUB_LAYOUT:
            loaded = hub_layout.load_folder(source.path, split=split, streaming=streaming, **load_kwargs)
        elif source.kind == IMAGE_FOLDER:
            loaded = datasets.load_dataset(str(source.path), split=split, streaming=streaming, **load_kwargs)
        elif source.kind == SAVED:
            loaded = datasets.load_from_disk(str(source.path))
            if isinstance(loaded, datasets.DatasetDict) and split is not None:
                if split not in loaded:
                    raise DatasetSourceError(f"{source.path} has no split {split!r}; it has {list(loaded)}.")
                loaded = loaded[split]
            if streaming:
                loaded = (loaded.to_iterable_dataset() if isinstance(loaded, datasets.Dataset) else
                          datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in loaded.items()}))
        elif source.kind == WEBDATASET:
            features = load_kwargs.pop("features", None) or _webdataset_features(source.shards)
            if source.path is not None:  # a folder: read it as datasets reads the same repository on the Hub
                loaded = datasets.load_dataset(str(source.path), split=split, streaming=streaming, features=features,
                                               **load_kwargs)
            else:
                files = {split or "train": list(source.shards)}
                loaded = datasets.load_dataset("webdataset", data_files=files, split=split, streaming=streaming,
                                               features=features, **load_kwargs)
        else:  # a data file
            builder = DATA_FILE_BUILDERS[source.path.suffix.lower()]
            extra = {"delimiter": "\t"} if source.path.suffix.lower() == ".tsv" else {}
            loaded = datasets.load_dataset(builder, data_files=str(source.path), split=split or "train",
                                           streaming=streaming, **extra, **load_kwargs)
    except InputError:
        raise
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
        if source.kind == HUB_ID and "gated" in str(error).lower():
            raise DatasetSourceError(
                f"{source.value!r} is a gated dataset on the Hub: accept its conditions at "
                f"https://huggingface.co/datasets/{source.value}, then log in with `hf auth login` (or set HF_TOKEN) "
                f"and run the command again; or give a local copy of it."
            ) from error
        where = "on the Hub (or in the local cache, offline)" if source.kind == HUB_ID else f"at {source.value}"
        raise DatasetSourceError(f"No dataset {source.value!r} {where} ({error}). A dataset is "
                                 + "; or ".join(FORMS) + ".") from error
    except ValueError as error:
        if "split" in str(error).lower() and "unknown split" in str(error).lower():
            raise DatasetSourceError(f"{source.describe()}: {error}") from error
        raise
    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return type(loaded)({name: from_official(part) for name, part in loaded.items()})
    return from_official(loaded)


def dataset_columns(dataset) -> list[str]:
    """Column names of a dataset or stream (a stream without declared features is peeked at)."""
    if dataset.features is not None:
        return list(dataset.features)
    first = next(iter(dataset), None)
    return [] if first is None else list(first)


def load_hub_dataset(value: str | os.PathLike | DatasetSource, required_columns: Sequence[str], split: str = "train",
                     streaming: bool = False, **load_kwargs: Any):
    """:func:`load_dataset` and check that the dataset has ``required_columns`` (images declared as images)."""
    import datasets

    from .hub_layout import validate_columns

    source = resolve_dataset(value)
    dataset = load_dataset(source, split=split, streaming=streaming, **load_kwargs)
    features = dataset_columns(dataset)
    validate_columns(features, required_columns, source=f"The dataset {source.value!r} (split {split!r})")
    # Parquet written without datasets' metadata stores images as structs or bytes: declare them as images.
    for name in schema.IMAGE_COLUMNS + (schema.IMAGE_0, schema.IMAGE_1):
        if name in required_columns and dataset.features is not None and \
                isinstance(dataset.features[name], dict) and "bytes" in dataset.features[name]:
            dataset = dataset.cast_column(name, datasets.Image())
    return dataset


def load_tripletdata(value: str | os.PathLike | DatasetSource, split: str = "train", streaming: bool = False,
                     **load_kwargs: Any):
    """Load TripletData from any dataset value (see the module docstring), checking it has the four triplet columns.

    Returns:
        A `datasets.Dataset` (or `datasets.IterableDataset` with ``streaming``) with at least ``image``, ``caption``,
        ``negative_image``, ``negative_caption``; optional metadata columns are kept when present. Values of the
        released TripletData stay as its shards hold them (encoded bytes): every reader decodes rows with
        `dataset_builders.rows.decode_row`.

    Raises:
        NotTripletDataError: columns are missing (the message names them and how to fix it), or the folder is a world.
        DatasetSourceError: the value is none of the supported forms.
    """
    return load_hub_dataset(value, schema.REQUIRED_COLUMNS, split=split, streaming=streaming, **load_kwargs)


__all__ = [
    "DATA_FILE",
    "DatasetSource",
    "DatasetSourceError",
    "HUB_ID",
    "HUB_LAYOUT",
    "IMAGE_FOLDER",
    "KINDS",
    "SAVED",
    "WEBDATASET",
    "dataset_columns",
    "load_dataset",
    "load_hub_dataset",
    "load_tripletdata",
    "resolve_dataset",
]
