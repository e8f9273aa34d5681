"""Decoding images: every value a dataset, a WebDataset shard, a file or an upload can hold, to an RGB picture.

:func:`decode_image` is the one place where an image is opened. It accepts a `PIL.Image.Image`, encoded bytes, the
``{"bytes", "path"}`` dict of `datasets.Image(decode=False)`, or a file path, and returns a fully decoded RGB image
(decoded now, so that a truncated file fails here and not inside an image processor) or the problem that prevents it:

- ``missing``: no value, or a dict with neither bytes nor path;
- ``undecodable``: empty, truncated or corrupt data, or bytes that are not an image (SVG, HTML, text);
- ``too large``: more pixels than ``max_pixels`` (a decompression bomb is refused from its header, never decoded).

What a viewer shows is what the model gets: the EXIF orientation of a photo is applied, an animated image gives its
first frame, CMYK and YCCK JPEGs are converted by their colour model, 16-bit and 32-bit grey images are scaled to 8
bits, and transparency (RGBA, LA, palettes with a transparent colour) is composited on white.

With ``target_size`` (the shortest edge the image will be resized to), a JPEG at least twice that size is decoded at a
reduced scale (1/2, 1/4 or 1/8, libjpeg's DCT scaling through `PIL.Image.Image.draft`), still at least
``target_size`` on its shortest edge: the exact resize that follows then starts from fewer pixels. The result differs
from resizing the full decode by a small amount (measured in the tests and documented in README's Performance).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

MISSING = "missing"
UNDECODABLE = "undecodable"
TOO_LARGE = "too large"
PROBLEMS = (MISSING, UNDECODABLE, TOO_LARGE)


class ImageProblem(str):
    """Why an image could not be decoded: equal to one of `PROBLEMS` (so it counts and compares as that), with the
    decoder's own words in ``detail``."""

    detail: str

    def __new__(cls, problem: str, detail: str = "") -> "ImageProblem":
        value = super().__new__(cls, problem)
        value.detail = detail
        return value

    def explain(self) -> str:
        """``"undecodable image (cannot identify image file ...)"``."""
        return f"{self} image" + (f" ({self.detail})" if self.detail else "")

#: The largest image decoded (pixels); larger ones are refused as ``too large`` before decoding. 64 megapixels covers
#: every photo of CC3M/CC12M and refuses decompression bombs long before they use memory.
DEFAULT_MAX_PIXELS = 64_000_000
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                  TypeError, KeyError, IndexError, ZeroDivisionError, MemoryError)
_WHITE = (255, 255, 255)
_ORIENTATION = 0x0112  # the EXIF tag


def is_missing(value: Any) -> bool:
    """Whether an image value is absent: None, or a ``{"bytes": None, "path": None}`` dict."""
    if value is None:
        return True
    if isinstance(value, Mapping):
        return value.get("bytes") is None and not value.get("path")
    return False


def open_image(value: Any) -> Image.Image:
    """Open (not decode) an image value: reads the header only. Raises on anything that is not an image."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        if data is not None:
            return Image.open(io.BytesIO(data))
        return Image.open(path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(value)))
    if isinstance(value, (str, os.PathLike)):
        return Image.open(Path(value))
    raise TypeError(f"not an image value: {type(value).__name__}")


def _reduced_decoding(image: Image.Image, target_size: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale that keeps the shortest edge at least ``target_size``."""
    if image.format != "JPEG" or not target_size:
        return
    width, height = image.size
    if min(width, height) >= 2 * target_size:
        factor = min(width, height) / target_size
        image.draft("RGB", (max(1, int(width / factor)), max(1, int(height / factor))))


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB version of a decoded image, as a viewer shows it (see the module docstring)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16- and 32-bit grey: scale the actual range of the format to 8 bits.
        top = 65535 if image.mode.startswith("I;16") else max(1, image.getextrema()[1] or 1)
        grey = image.convert("I").point(lambda value: value * (255.0 / top)).convert("L")
        return grey.convert("RGB")
    if image.mode == "F":
        low, high = image.getextrema()
        span = (high - low) or 1.0
        return image.point(lambda value: (value - low) * 255.0 / span).convert("L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")  # L, 1, P, CMYK (and YCCK, which PIL opens as CMYK), YCbCr, LAB, HSV


def decode_image(
    value: Any, *, target_size: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[Image.Image | None, str | None]:
    """Decode an image value to RGB: ``(image, None)``, or ``(None, problem)`` with problem one of `PROBLEMS`.

    Args:
        value: a PIL image, encoded bytes, a ``{"bytes", "path"}`` dict or a file path.
        target_size: the shortest edge the image will be resized to; enables reduced JPEG decoding (module docstring).
        max_pixels: refuse larger images as ``too large`` (None: no limit beyond Pillow's own).
    """
    if is_missing(value):
        return None, ImageProblem(MISSING, "no image data")
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 0:
        return None, ImageProblem(UNDECODABLE, "empty file")
    try:
        image = open_image(value)
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            return None, ImageProblem(TOO_LARGE, f"{width}x{height} pixels, more than {max_pixels}")
        if target_size:
            _reduced_decoding(image, target_size)
        image.load()  # an animated image is opened at its first frame, which is what is decoded
        orientation = image.getexif().get(_ORIENTATION, 1)
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image), None
    except _DECODE_ERRORS as error:
        return None, ImageProblem(UNDECODABLE, f"{type(error).__name__}: {error}")


def image_size(value: Any) -> tuple[int, int] | None:
    """The (width, height) from the header, without decoding; None when it cannot be read."""
    try:
        return open_image(value).size
    except _DECODE_ERRORS:
        return None




# ---------------------------------------------------------------------------------------------------- to model inputs


class ImageTransform:
    """A CLIP image processor's work, split in two so that the expensive half runs in data-loader workers.

    `prepare` (per image, in a worker): resize the shortest edge to the processor's size with its resampling filter
    and centre-crop to its crop size, exactly as the processor does, giving a small ``uint8`` array. `pixel_values`
    (once per batch, in the training process): rescale and normalise the whole batch through a 256-entry table per
    channel, giving what ``processor(images=...)["pixel_values"]`` gives (up to float rounding; checked in the tests).

    For an image processor it does not recognise (not resize-shortest-edge + centre-crop + rescale + normalise),
    `exact` is False: `prepare` returns the RGB image and `pixel_values` calls the processor on the batch.

    Args:
        image_processor: a transformers image processor (e.g. ``processor.image_processor`` of a CLIP checkpoint).
    """

    def __init__(self, image_processor):
        self.image_processor = image_processor
        self.exact = False
        self.size = self.crop_height = self.crop_width = None
        self.resample = None
        self._table = None
        try:
            size, crop = image_processor.size, image_processor.crop_size
            side = size["shortest_edge"]
            crop_height, crop_width = crop["height"], crop["width"]
            flags = (image_processor.do_resize, image_processor.do_center_crop, image_processor.do_rescale,
                     image_processor.do_normalize)
            mean, std = list(image_processor.image_mean), list(image_processor.image_std)
            factor = float(image_processor.rescale_factor)
            resample = image_processor.resample
        except (AttributeError, KeyError, TypeError):
            return
        longest = size.get("longest_edge") if hasattr(size, "get") else None
        if not all(flags) or not side or longest or len(mean) != 3 or len(std) != 3:
            return
        import numpy as np

        self.size, self.crop_height, self.crop_width = int(side), int(crop_height), int(crop_width)
        self.resample = Image.Resampling(int(resample)) if resample is not None else Image.Resampling.BILINEAR
        # The processor's own arithmetic: rescale in float64, cast to float32, normalise in float32.
        values = (np.arange(256, dtype=np.float64) * factor).astype(np.float32)
        self._table = np.stack([(values - np.float32(m)) / np.float32(s) for m, s in zip(mean, std)])
        self.exact = True

    @property
    def target_size(self) -> int | None:
        """The shortest edge images are resized to (for reduced decoding), when known."""
        return self.size

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the shortest-edge resize, as transformers computes it."""
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.size, int(self.size * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def prepare(self, image: Image.Image):
        """One decoded RGB image -> ``uint8`` array ``(crop_height, crop_width, 3)`` (or the image itself when not
        `exact`)."""
        if not self.exact:
            return image
        import numpy as np

        width, height = self.output_size(*image.size)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=self.resample)
        top, left = (height - self.crop_height) // 2, (width - self.crop_width) // 2
        if top < 0 or left < 0:  # smaller than the crop: the processor pads; let it
            return image
        if (top, left, width, height) != (0, 0, self.crop_width, self.crop_height):
            image = image.crop((left, top, left + self.crop_width, top + self.crop_height))
        return np.asarray(image, dtype=np.uint8)

    def pixel_values(self, prepared: list):
        """Prepared images -> ``pixel_values`` tensor ``(N, 3, crop_height, crop_width)`` in one vectorised pass."""
        import numpy as np
        import torch

        arrays = [p for p in prepared if isinstance(p, np.ndarray)]
        if not self.exact or len(arrays) != len(prepared):
            images = [Image.fromarray(p) if isinstance(p, np.ndarray) else p for p in prepared]
            return self.image_processor(images, return_tensors="pt")["pixel_values"]
        batch = np.stack(arrays)  # (N, H, W, 3) uint8
        pixels = np.empty((len(arrays), 3, self.crop_height, self.crop_width), dtype=np.float32)
        for channel in range(3):
            np.take(self._table[channel], batch[..., channel], out=pixels[:, channel])
        return torch.from_numpy(pixels)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageProblem",
    "ImageTransform",
    "MISSING",
    "PROBLEMS",
    "TOO_LARGE",
    "UNDECODABLE",
    "decode_image",
    "image_size",
    "is_missing",
    "open_image",
    "to_rgb",
]
