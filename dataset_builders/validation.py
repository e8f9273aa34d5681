"""Checks and decoding shared by every reader of triplet rows: what makes a row unusable, and why.

A row is skipped, never fatal, when an image cannot be decoded, a caption is empty, or a negative is missing; the
reason is one of :data:`SKIP_REASONS`, so counts from the collator, the converter and the builder read alike.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

from . import schema

UNDECODABLE_IMAGE = "undecodable image"
UNDECODABLE_NEGATIVE_IMAGE = "undecodable negative image"
MISSING_IMAGE = "missing image"
MISSING_NEGATIVE_IMAGE = "missing negative image"
EMPTY_CAPTION = "empty caption"
EMPTY_NEGATIVE_CAPTION = "empty negative caption"
SKIP_REASONS = (
    UNDECODABLE_IMAGE,
    UNDECODABLE_NEGATIVE_IMAGE,
    MISSING_IMAGE,
    MISSING_NEGATIVE_IMAGE,
    EMPTY_CAPTION,
    EMPTY_NEGATIVE_CAPTION,
)
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def is_missing(value: Any) -> bool:
    """Whether an image value is absent (None, or a ``{"bytes": None, "path": None}`` dict)."""
    if value is None:
        return True
    if isinstance(value, Mapping):
        return value.get("bytes") is None and not value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return len(value) == 0
    return False


def decode_image(value: Any) -> Image.Image | None:
    """Decode an image value to an RGB `PIL.Image.Image`, or None when it is absent or cannot be decoded.

    Accepts what datasets and WebDataset give: a PIL image (decoded fully here, so a truncated file fails now and
    not inside the image processor), encoded bytes, or a ``{"bytes", "path"}`` dict.
    """
    if is_missing(value):
        return None
    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, Mapping):
            image = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") is not None else Image.open(value["path"])
        elif isinstance(value, (bytes, bytearray)):
            image = Image.open(io.BytesIO(value))
        else:
            return None
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")
    except _DECODE_ERRORS:
        return None


def decode_text(value: Any) -> str | None:
    """A caption as text: ``str`` as is, UTF-8 ``bytes`` decoded; None when absent or not valid UTF-8."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def is_empty_text(value: Any) -> bool:
    text = decode_text(value)
    return text is None or not text.strip()


def text_skip_reason(row: Mapping[str, Any], negative_caption: bool) -> str | None:
    """The reason to skip a row for its captions, or None."""
    if is_empty_text(row.get(schema.CAPTION)):
        return EMPTY_CAPTION
    if negative_caption and is_empty_text(row.get(schema.NEGATIVE_CAPTION)):
        return EMPTY_NEGATIVE_CAPTION
    return None


def image_skip_reason(value: Any, negative: bool) -> str | None:
    """The reason to skip a row for one of its images (decoding it to find out), or None."""
    if is_missing(value):
        return MISSING_NEGATIVE_IMAGE if negative else MISSING_IMAGE
    if decode_image(value) is None:
        return UNDECODABLE_NEGATIVE_IMAGE if negative else UNDECODABLE_IMAGE
    return None


def triplet_skip_reason(row: Mapping[str, Any]) -> str | None:
    """Why a full triplet row is unusable (first problem found), or None when all four values are good."""
    return (
        text_skip_reason(row, negative_caption=True)
        or image_skip_reason(row.get(schema.IMAGE), negative=False)
        or image_skip_reason(row.get(schema.NEGATIVE_IMAGE), negative=True)
    )
