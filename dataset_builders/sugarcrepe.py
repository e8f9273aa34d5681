"""SugarCrepe's annotation files, as its repository publishes them.

A SugarCrepe folder holds ``<subset>.json`` for its seven subsets (``add_att``, ``replace_obj``, ...); each file is one
JSON object keyed by item id, every value ``{"filename": ..., "caption": ..., "negative_caption": ...}``. The
evaluation scores them against their images; the concept-coverage analysis reads only the captions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from .synthesis.rules import NEGATIVE_KINDS
from .utils.errors import InputError

logger = logging.getLogger(__name__)


def is_sugarcrepe(path: str | Path) -> bool:
    """Whether ``path`` is a SugarCrepe subset file or a folder holding one."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".json" and path.stem in NEGATIVE_KINDS
    return path.is_dir() and any((path / f"{subset}.json").is_file() for subset in NEGATIVE_KINDS)


def sugarcrepe_subsets(data_dir: str | Path, subsets: Sequence[str] | None = None) -> tuple[Path, list[str]]:
    """The folder and the subsets to read: a folder of subset files (every one present, or ``subsets``), or one
    subset file (that subset only)."""
    data_dir = Path(data_dir)
    if data_dir.is_file():
        if data_dir.suffix != ".json" or data_dir.stem not in NEGATIVE_KINDS:
            raise InputError(
                f"{data_dir} is not a SugarCrepe subset file: give the folder of the seven files, or one of "
                f"{', '.join(s + '.json' for s in NEGATIVE_KINDS)} (then only that subset is scored)."
            )
        if subsets is not None and list(subsets) != [data_dir.stem]:
            raise InputError(f"{data_dir} holds the subset {data_dir.stem} only.")
        subsets, data_dir = [data_dir.stem], data_dir.parent
    elif not data_dir.is_dir():
        raise InputError(
            f"The SugarCrepe folder {data_dir} does not exist. Give the folder of the seven JSON files (or one of "
            f"them), e.g. the official repository's data/ folder."
        )
    if subsets is None:
        subsets = [s for s in NEGATIVE_KINDS if (data_dir / f"{s}.json").is_file()]
        if not subsets:
            raise InputError(
                f"{data_dir} holds none of SugarCrepe's files ({', '.join(s + '.json' for s in NEGATIVE_KINDS)})."
            )
        absent = [s for s in NEGATIVE_KINDS if s not in subsets]
        if absent:
            logger.warning("SugarCrepe subsets missing from %s: %s (no overall average).", data_dir, ", ".join(absent))
    else:
        unknown = [s for s in subsets if s not in NEGATIVE_KINDS]
        if unknown:
            raise InputError(
                f"Unknown SugarCrepe subset(s) {unknown}; choose from {list(NEGATIVE_KINDS)}."
            )
    return data_dir, list(subsets)


def read_sugarcrepe_subset(path: Path) -> dict[str, dict]:
    """One subset file's items by id, each checked to have ``filename``, ``caption`` and ``negative_caption``."""
    if not path.is_file():
        raise InputError(f"The SugarCrepe file {path} does not exist.")
    try:
        annotations = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON ({error}).") from error
    if not isinstance(annotations, dict):
        raise InputError(
            f"{path} must hold one JSON object keyed by item id, each value "
            '{"filename": ..., "caption": ..., "negative_caption": ...}.'
        )
    for key, value in annotations.items():
        fields = ("filename", "caption", "negative_caption")
        lacking = [f for f in fields if not isinstance(value, dict) or f not in value]
        if lacking:
            raise InputError(
                f"Item {key!r} of {path} lacks {lacking}; every item needs filename, caption and negative_caption."
            )
    return annotations


__all__ = ["is_sugarcrepe", "read_sugarcrepe_subset", "sugarcrepe_subsets"]
