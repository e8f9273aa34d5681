"""Decoding and validating one TripletData row: what every reader does before a row becomes model input.

:func:`decode_row` is the one function that opens a row: it decodes the captions (``str``, or UTF-8 ``bytes`` as
WebDataset shards hold them) and the images (`dataset_builders.utils.images`), prepares the images for the model
(resize and crop, when given an `ImageTransform`), and says why a row cannot be used. It runs in data-loader workers;
turning many decoded rows into one batch of tensors is the collator's job (`dataset_builders.batches`).

A row is skipped, never fatal, with one of :data:`SKIP_REASONS`, so that counts read alike in the trainer, the
converter, the builder, evaluation and synthesis. Control characters in a caption are replaced by spaces (the row is
used); a caption longer than the model's text length is truncated by the tokenizer, and counted there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import schema
from .utils import images

EMPTY_CAPTION = "empty caption"
EMPTY_NEGATIVE_CAPTION = "empty negative caption"
UNDECODABLE_CAPTION = "undecodable caption"
UNDECODABLE_NEGATIVE_CAPTION = "undecodable negative caption"
MISSING_IMAGE = "missing image"
MISSING_NEGATIVE_IMAGE = "missing negative image"
UNDECODABLE_IMAGE = "undecodable image"
UNDECODABLE_NEGATIVE_IMAGE = "undecodable negative image"
IMAGE_TOO_LARGE = "image too large"
NEGATIVE_IMAGE_TOO_LARGE = "negative image too large"
SKIP_REASONS = (
    EMPTY_CAPTION, EMPTY_NEGATIVE_CAPTION, UNDECODABLE_CAPTION,
    UNDECODABLE_NEGATIVE_CAPTION, MISSING_IMAGE, MISSING_NEGATIVE_IMAGE, UNDECODABLE_IMAGE, UNDECODABLE_NEGATIVE_IMAGE,
    IMAGE_TOO_LARGE, NEGATIVE_IMAGE_TOO_LARGE,
)
"""Every reason a row is skipped."""

_TEXT_REASONS = {
    False: {"empty": EMPTY_CAPTION, "undecodable": UNDECODABLE_CAPTION},
    True: {"empty": EMPTY_NEGATIVE_CAPTION, "undecodable": UNDECODABLE_NEGATIVE_CAPTION},
}
_IMAGE_REASONS = {
    False: {images.MISSING: MISSING_IMAGE, images.UNDECODABLE: UNDECODABLE_IMAGE, images.TOO_LARGE: IMAGE_TOO_LARGE},
    True: {images.MISSING: MISSING_NEGATIVE_IMAGE, images.UNDECODABLE: UNDECODABLE_NEGATIVE_IMAGE,
           images.TOO_LARGE: NEGATIVE_IMAGE_TOO_LARGE},
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # Unicode category Cc, except tab and newline


def caption_skip_reason(problem: str, negative: bool = False) -> str:
    """The skip reason (`SKIP_REASONS`) for a `decode_text` problem of a caption (or of a negative caption)."""
    return _TEXT_REASONS[negative][problem]


def image_skip_reason(problem: str, negative: bool = False) -> str:
    """The skip reason (`SKIP_REASONS`) for a `decode_image` problem of an image (or of a negative image)."""
    return _IMAGE_REASONS[negative][str(problem)]


def decode_text(value: Any) -> tuple[str | None, str | None]:
    """A caption value as text: ``(text, None)`` or ``(None, problem)`` with problem ``empty`` (absent, or only
    white space) or ``undecodable`` (bytes that are not UTF-8, or a value that is not text). Control characters become
    spaces."""
    if value is None:
        return None, "empty"
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, "undecodable"
    if not isinstance(value, str):
        return None, "undecodable"
    value = _CONTROL.sub(" ", value)
    if not value.strip():
        return None, "empty"
    return value, None


MAX_CAPTION_CHARACTERS = 2_000
"""Longest caption synthesis edits (CLIP reads 77 tokens, about 300 characters; an LLM prompt has a budget too)."""


def shorten_caption(text: str, limit: int = MAX_CAPTION_CHARACTERS) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters at the last word boundary, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    cut = text[: limit + 1]
    boundary = cut.rstrip().rfind(" ")
    return (cut[:boundary] if boundary > 0 else text[:limit]).rstrip(), True


def text_or_none(value: Any) -> str | None:
    """The caption as text, or None when it is absent, empty or undecodable."""
    return decode_text(value)[0]


@dataclass
class DecodedRow:
    """A usable row: captions as text, images decoded (and prepared for the model when a transform was given).

    ``negative_caption`` / ``negative_image`` are None when they were not asked for. ``caption_ids`` /
    ``negative_caption_ids`` hold the captions' token ids once tokenised (by
    `dataset_builders.batches.TripletCollator.tokenize`, in a data-loader worker), with ``truncated`` the number of
    the row's captions that were longer than the model's text length."""

    caption: str
    image: Any
    negative_caption: str | None = None
    negative_image: Any = None
    id: str | None = None
    caption_ids: list[int] | None = None
    negative_caption_ids: list[int] | None = None
    truncated: int = 0


def decode_row(
    row: Mapping[str, Any],
    *,
    negative_captions: bool = True,
    negative_images: bool = True,
    transform: images.ImageTransform | None = None,
    max_pixels: int | None = images.DEFAULT_MAX_PIXELS,
) -> tuple[DecodedRow | None, str | None]:
    """Decode and check one row: ``(DecodedRow, None)``, or ``(None, reason)`` with reason one of `SKIP_REASONS`.

    Args:
        row: a TripletData row (images as PIL images, bytes or ``{"bytes", "path"}`` dicts; captions as text or bytes).
        negative_captions, negative_images: whether the row must have (and the result carry) them.
        transform: decodes each image as it wants (full or reduced decoding) and prepares it for the model (resize
            and crop); None decodes fully and keeps the RGB image.
        max_pixels: images with more pixels are skipped as too large, from their header.

    The captions are checked first (no image is decoded for a row without a usable caption), then the images.
    """
    caption, problem = decode_text(row.get(schema.CAPTION))
    if problem:
        return None, _TEXT_REASONS[False][problem]
    negative_caption = None
    if negative_captions:
        negative_caption, problem = decode_text(row.get(schema.NEGATIVE_CAPTION))
        if problem:
            return None, _TEXT_REASONS[True][problem]
    decode = transform.decode if transform is not None else images.decode_image
    image, problem = decode(row.get(schema.IMAGE), max_pixels=max_pixels)
    if problem:
        return None, _IMAGE_REASONS[False][problem]
    negative_image = None
    if negative_images:
        negative_image, problem = decode(row.get(schema.NEGATIVE_IMAGE), max_pixels=max_pixels)
        if problem:
            return None, _IMAGE_REASONS[True][problem]
    if transform is not None:
        image = transform.prepare(image)
        negative_image = transform.prepare(negative_image) if negative_image is not None else None
    row_id = row.get(schema.ID)
    return DecodedRow(caption, image, negative_caption, negative_image, None if row_id is None else str(row_id)), None


def triplet_skip_reason(row: Mapping[str, Any]) -> str | None:
    """Why a full triplet row is unusable (first problem found), or None when all four values are good."""
    return decode_row(row, max_pixels=images.DEFAULT_MAX_PIXELS)[1]


__all__ = [
    "DecodedRow",
    "SKIP_REASONS",
    "caption_skip_reason",
    "image_skip_reason",
    "decode_row",
    "decode_text",
    "text_or_none",
    "triplet_skip_reason",
]
