"""Readers for the benchmark formats people actually have, each checked before any model runs.

- SugarCrepe: the seven official JSON files ``{key: {"filename", "caption", "negative_caption"}}`` (keys are not
  contiguous) plus a folder with the images they name (COCO val2017, or ``<data>/images`` in the built-in world).
- Datasets readable with ``datasets.load_dataset`` (a Hub id or a folder in the Hub layout) or saved with
  ``save_to_disk``: Winoground-style pairs of pairs, TripletData, retrieval (image + captions), image
  classification (image + ClassLabel), including a plain folder of class sub-folders.
- Karpathy-split JSON for COCO / Flickr30k retrieval: ``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from dataset_builders import schema

from .errors import EvaluationInputError
from .metrics import SUGARCREPE_SUBSETS

logger = logging.getLogger(__name__)

SPLIT_PREFERENCE = ("test", "validation", "val", "train")
"""The split evaluated when none is given: the first of these the dataset has (else its first split)."""


# SugarCrepe -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SugarCrepeItem:
    """One SugarCrepe item: an image file with its caption and negative caption."""

    subset: str
    key: str
    image_path: Path
    caption: str
    negative_caption: str


def find_sugarcrepe_images(data_dir: Path, images: str | Path | None) -> Path:
    """The folder of SugarCrepe images: ``images`` when given, else ``<data_dir>/images``."""
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise EvaluationInputError(
                f"The SugarCrepe image folder {folder} does not exist. Pass the folder holding the images the JSON "
                "files name with --images DIR (images= in Python)."
            )
        return folder
    folder = data_dir / "images"
    if not folder.is_dir():
        raise EvaluationInputError(
            f"No image folder for the SugarCrepe files in {data_dir}: {folder} does not exist. Pass the folder of "
            "the images the JSON files name (COCO val2017 for the official SugarCrepe) with --images DIR (images= in "
            "Python)."
        )
    return folder


def load_sugarcrepe(
    data_dir: str | Path, images: str | Path | None = None, subsets: Sequence[str] | None = None
) -> dict[str, list[SugarCrepeItem]]:
    """Read SugarCrepe's annotation files and check that every image they name exists.

    Args:
        data_dir: folder holding ``<subset>.json`` for the subsets (any of :data:`SUGARCREPE_SUBSETS`).
        images: folder of the images; defaults to ``<data_dir>/images``.
        subsets: the subsets to read; defaults to every subset file present.

    Returns:
        ``{subset: [items]}`` in file order (the keys of a file need not be contiguous).

    Raises:
        EvaluationInputError: no subset file, a malformed file or item, or images missing from the folder (the
            message names the files).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EvaluationInputError(f"The SugarCrepe folder {data_dir} does not exist.")
    if subsets is None:
        subsets = [s for s in SUGARCREPE_SUBSETS if (data_dir / f"{s}.json").is_file()]
        if not subsets:
            raise EvaluationInputError(
                f"{data_dir} holds none of SugarCrepe's files ({', '.join(s + '.json' for s in SUGARCREPE_SUBSETS)})."
            )
        absent = [s for s in SUGARCREPE_SUBSETS if s not in subsets]
        if absent:
            logger.warning("SugarCrepe subsets missing from %s: %s (no overall average).", data_dir, ", ".join(absent))
    else:
        unknown = [s for s in subsets if s not in SUGARCREPE_SUBSETS]
        if unknown:
            raise EvaluationInputError(
                f"Unknown SugarCrepe subset(s) {unknown}; choose from {list(SUGARCREPE_SUBSETS)}."
            )
    image_dir = find_sugarcrepe_images(data_dir, images)

    result: dict[str, list[SugarCrepeItem]] = {}
    missing: dict[str, str] = {}
    for subset in subsets:
        path = data_dir / f"{subset}.json"
        if not path.is_file():
            raise EvaluationInputError(f"The SugarCrepe file {path} does not exist.")
        try:
            annotations = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EvaluationInputError(f"{path} is not valid JSON ({error}).") from error
        if not isinstance(annotations, dict):
            raise EvaluationInputError(
                f"{path} must hold one JSON object keyed by item id, each value "
                '{"filename": ..., "caption": ..., "negative_caption": ...}.'
            )
        items = []
        for key, value in annotations.items():
            fields = ("filename", "caption", "negative_caption")
            lacking = [f for f in fields if not isinstance(value, dict) or f not in value]
            if lacking:
                raise EvaluationInputError(
                    f"Item {key!r} of {path} lacks {lacking}; every item needs filename, caption and negative_caption."
                )
            image_path = image_dir / value["filename"]
            if value["filename"] not in missing and not image_path.is_file():
                missing[value["filename"]] = f"{path.name}[{key!r}]"
            items.append(SugarCrepeItem(subset, str(key), image_path, value["caption"], value["negative_caption"]))
        result[subset] = items
    if missing:
        shown = ", ".join(f"{name} (named by {where})" for name, where in list(missing.items())[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise EvaluationInputError(
            f"{len(missing)} image file(s) named by the SugarCrepe JSON are not in {image_dir}: {shown}{more}. "
            "Point --images at the folder that holds them (COCO val2017 for the official SugarCrepe)."
        )
    return result


# Datasets -------------------------------------------------------------------------------------------------------


def open_dataset(path: str | Path, split: str | None = None, streaming: bool = False, what: str = "dataset"):
    """Open a dataset for evaluation: a folder or Hub id ``load_dataset`` reads, or a ``save_to_disk`` folder.

    Without ``split``, the first of :data:`SPLIT_PREFERENCE` the dataset has is used (else its first split).

    Returns:
        ``(dataset, split)``: a `datasets.Dataset` (or `datasets.IterableDataset` when streaming) and its split.
    """
    local = Path(path).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(local))
            if streaming:
                loaded = (
                    loaded.to_iterable_dataset()
                    if isinstance(loaded, datasets.Dataset)
                    else datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in loaded.items()})
                )
        else:
            if not local.exists() and (str(path).startswith((".", "/", "~")) or str(path).count("/") > 1):
                raise EvaluationInputError(f"The {what} {path} does not exist.")
            loaded = datasets.load_dataset(str(local) if local.exists() else str(path), streaming=streaming)
    except EvaluationInputError:
        raise
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:
        where = (
            f"the folder {str(local)!r} could not be read"
            if local.exists()
            else f"{str(path)!r} is not a local folder, nor a dataset loadable from the Hub"
        )
        raise EvaluationInputError(
            f"Cannot read the {what}: {where} ({error}). Give a folder in the Hub layout (data/*.parquet), a folder "
            "written by save_to_disk, or a Hub dataset id."
        ) from error
    if isinstance(loaded, (datasets.Dataset, datasets.IterableDataset)):
        return loaded, split or "train"
    splits = list(loaded)
    if split is None:
        split = next((s for s in SPLIT_PREFERENCE if s in loaded), splits[0])
    elif split not in loaded:
        raise EvaluationInputError(f"The {what} at {path!r} has no split {split!r}; it has {splits}.")
    return loaded[split], split


def dataset_columns(dataset) -> list[str]:
    """Column names of a dataset or stream (a stream without declared features is peeked at)."""
    if dataset.features is not None:
        return list(dataset.features)
    first = next(iter(dataset), None)
    return [] if first is None else list(first)


def require_columns(dataset, required: Sequence[str], benchmark: str, source: str, optional: Sequence[str] = ()):
    """Raise :class:`EvaluationInputError` naming the missing columns and the expected ones."""
    present = dataset_columns(dataset)
    missing = [c for c in required if c not in present]
    if missing:
        extra = f" (optional: {', '.join(optional)})" if optional else ""
        raise EvaluationInputError(
            f"The {benchmark} data {source!r} lacks the column(s) {', '.join(missing)}. A {benchmark} dataset needs "
            f"{', '.join(required)}{extra}; this one has {', '.join(present) or 'no columns'}. Rename columns with "
            "`dataset.rename_column(old, new)` before evaluating."
        )
    return present


def undecoded_images(dataset, columns: Sequence[str]):
    """Cast the image columns to ``Image(decode=False)`` so that images are decoded by the encoder, where a broken one
    is skipped and counted instead of stopping the run."""
    for column in columns:
        feature = dataset.features[column] if dataset.features is not None else None
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    return dataset


WINOGROUND_COLUMNS = (schema.IMAGE_0, schema.IMAGE_1, schema.CAPTION_0, schema.CAPTION_1)
TRIPLETDATA_COLUMNS = (schema.IMAGE, schema.NEGATIVE_IMAGE, schema.CAPTION, schema.NEGATIVE_CAPTION)
RETRIEVAL_COLUMNS = (schema.IMAGE, schema.CAPTIONS)


# Karpathy splits ------------------------------------------------------------------------------------------------


def load_karpathy_split(
    json_path: str | Path, images: str | Path | None, split: str | None = None
) -> list[tuple[Path, list[str]]]:
    """Read a Karpathy-split JSON (COCO / Flickr30k) and check the images exist.

    Args:
        json_path: ``{"images": [{"filename", "split", "sentences": [{"raw"}], "filepath"?}]}``.
        images: the image folder; an entry's file is ``<images>/<filepath>/<filename>`` when it has a
            ``filepath`` and that file exists, else ``<images>/<filename>``. Defaults to the JSON's folder.
        split: which split to read (default ``"test"``: COCO's 5k and Flickr30k's 1k test images).

    Returns:
        ``[(image_path, [captions])]`` in file order.
    """
    json_path = Path(json_path)
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise EvaluationInputError(f"Cannot read the Karpathy-split file {json_path} ({error}).") from error
    if not isinstance(content, dict) or not isinstance(content.get("images"), list):
        raise EvaluationInputError(
            f'{json_path} is not a Karpathy-split file: expected {{"images": [{{"filename", "split", '
            '"sentences": [{"raw"}]}]}.'
        )
    split = split or "test"
    entries = [e for e in content["images"] if e.get("split") == split]
    if not entries:
        found = sorted({str(e.get("split")) for e in content["images"]})
        raise EvaluationInputError(f"{json_path} has no images in split {split!r}; its splits are {found}.")
    image_dir = Path(images) if images is not None else json_path.parent
    rows, missing = [], []
    for entry in entries:
        if "filename" not in entry or "sentences" not in entry:
            raise EvaluationInputError(f"An entry of {json_path} lacks 'filename' or 'sentences': {str(entry)[:120]}")
        path = image_dir / entry["filename"]
        if entry.get("filepath"):
            nested = image_dir / entry["filepath"] / entry["filename"]
            if nested.is_file() or not path.is_file():
                path = nested
        if not path.is_file():
            missing.append(entry["filename"])
        rows.append((path, [s["raw"] for s in entry["sentences"]]))
    if missing:
        raise EvaluationInputError(
            f"{len(missing)} image file(s) named by {json_path.name} are not in {image_dir}: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Point --images at the image folder."
        )
    return rows


# Image classification -------------------------------------------------------------------------------------------


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
