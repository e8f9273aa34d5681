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

*Reduced decoding* (``target_size`` given: the shortest edge the image will be resized to) decodes less: a JPEG at
least twice that size is decoded at a reduced scale (1/2, 1/4 or 1/8, libjpeg's DCT scaling through
`PIL.Image.Image.draft`), still at least ``target_size`` on its shortest edge; the resize that follows then starts
from fewer pixels. The result differs from full decoding by a small,
documented amount (:data:`REDUCED_DECODING_BOUND`, measured on real photos in the tests). Without ``target_size`` the
image is decoded exactly as every other tool decodes it.
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


#: How far reduced decoding (and `ImageTransform` with ``reduced=True``) may move the model's input, in 8-bit levels
#: of the resized and cropped image, for photos (JPEG, quality 90, 1.3x to 8x the model's input): at most ``max``
#: levels on any pixel and ``mean`` levels averaged over an image. One level is 1/255 of the range, about 0.015 of a
#: normalised CLIP pixel value. Measured on the photographs of ``tests/data/images`` at 64, 112 and 224 px by
#: ``tests/test_image_decoding.py`` (worst seen: 43 and 2.3): the differences sit on sharp edges, where DCT scaling
#: low-passes differently from a bicubic filter.
REDUCED_DECODING_BOUND = {"max": 48, "mean": 2.5}


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
    except Image.DecompressionBombError as error:  # Pillow's own limit, met while reading the header
        return None, ImageProblem(TOO_LARGE, str(error))
    except _DECODE_ERRORS as error:
        return None, ImageProblem(UNDECODABLE, f"{type(error).__name__}: {error}")


def image_size(value: Any) -> tuple[int, int] | None:
    """The (width, height) from the header, without decoding; None when it cannot be read."""
    try:
        return open_image(value).size
    except _DECODE_ERRORS:
        return None




# ---------------------------------------------------------------------------------------------------- to model inputs


#: Pillow filters that torch's antialiased interpolation reproduces (within one 8-bit level).
_TORCH_FILTERS = {Image.Resampling.BICUBIC: "bicubic", Image.Resampling.BILINEAR: "bilinear"}


class ImageTransform:
    """A CLIP image processor's work, split in two so that the expensive half runs in data-loader workers.

    `prepare` (per image, in a worker): resize the shortest edge to the processor's size with its resampling filter
    and centre-crop to its crop size, exactly as the processor does, giving a small ``uint8`` array. `pixel_values`
    (once per batch, in the training process): rescale and normalise the whole batch through a 256-entry table per
    channel, giving what ``processor(images=...)["pixel_values"]`` gives (up to float rounding; checked in the tests).

    For an image processor it does not recognise (not resize-shortest-edge + centre-crop + rescale + normalise),
    `exact` is False: `prepare` returns the RGB image and `pixel_values` calls the processor on the batch.

    With ``reduced=True`` (training), less work for nearly the same pixels: images are decoded with reduced decoding
    (`decode_image` with ``target_size``: large JPEGs at a DCT scale) and resized with torch's antialiased ``uint8``
    kernels, which agree with Pillow's bicubic and bilinear filters within one 8-bit level at several times the
    speed (other filters: Pillow, resizing only the part the centre crop keeps). Together they stay within
    :data:`REDUCED_DECODING_BOUND` of the exact path.

    Args:
        image_processor: a transformers image processor (e.g. ``processor.image_processor`` of a CLIP checkpoint).
        reduced: decode and resize less, as above (default: the processor's exact result).
    """

    def __init__(self, image_processor, *, reduced: bool = False):
        self.image_processor = image_processor
        self.reduced = bool(reduced)
        self.exact = False
        self.size = self.crop_height = self.crop_width = None
        self.resample = None
        self._table = None
        self._device_tables: dict = {}
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

    def __getstate__(self):  # to data-loader workers: without tensors on accelerators
        return {**self.__dict__, "_device_tables": {}}

    @property
    def target_size(self) -> int | None:
        """The shortest edge images are resized to, when known."""
        return self.size

    @property
    def draft_size(self) -> int | None:
        """The ``target_size`` to decode images with (`decode_image`): the resize's edge in reduced mode, else None
        (full decoding)."""
        return self.size if self.reduced else None

    def decode(self, value: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        """`decode_image` as this transform wants it (reduced decoding in reduced mode)."""
        return decode_image(value, target_size=self.draft_size, max_pixels=max_pixels)

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
        top, left = (height - self.crop_height) // 2, (width - self.crop_width) // 2
        if top < 0 or left < 0:  # smaller than the crop: the processor pads; let it
            return image
        if self.reduced and (width, height) != image.size:
            return self._prepare_reduced(image, width, height, top, left)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=self.resample)
        if (top, left, width, height) != (0, 0, self.crop_width, self.crop_height):
            image = image.crop((left, top, left + self.crop_width, top + self.crop_height))
        return np.asarray(image, dtype=np.uint8)

    def _prepare_reduced(self, image: Image.Image, width: int, height: int, top: int, left: int):
        """The reduced-mode resize and crop: torch's antialiased ``uint8`` kernels for the processor's filter
        (within one level of Pillow's, several times faster), else Pillow resizing only the crop's box."""
        import numpy as np

        mode = _TORCH_FILTERS.get(self.resample)
        if mode is None:
            scale_x, scale_y = image.width / width, image.height / height
            box = (left * scale_x, top * scale_y, (left + self.crop_width) * scale_x,
                   (top + self.crop_height) * scale_y)
            return np.asarray(image.resize((self.crop_width, self.crop_height), resample=self.resample, box=box),
                              dtype=np.uint8)
        import torch
        from torch.nn import functional

        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
        resized = functional.interpolate(pixels, size=(height, width), mode=mode, antialias=True)
        crop = resized[0, :, top : top + self.crop_height, left : left + self.crop_width]
        return np.ascontiguousarray(crop.permute(1, 2, 0).numpy())

    def pixel_values(self, prepared: list):
        """Prepared images -> ``pixel_values`` tensor ``(N, 3, crop_height, crop_width)`` in one vectorised pass."""
        return self.normalize(self.stack(prepared))

    def stack(self, prepared: list):
        """Prepared images -> one ``uint8`` tensor ``(N, crop_height, crop_width, 3)``, still to be normalised
        (`normalize`), a quarter of the float size: what a data loader hands to the training process and the
        training process copies to the accelerator. For a processor that is not `exact`, the processor's own
        ``pixel_values`` (float, already normalised)."""
        import numpy as np
        import torch

        arrays = [p for p in prepared if isinstance(p, np.ndarray)]
        if not self.exact or len(arrays) != len(prepared):
            images = [Image.fromarray(p) if isinstance(p, np.ndarray) else p for p in prepared]
            return self.image_processor(images, return_tensors="pt")["pixel_values"]
        return torch.from_numpy(np.stack(arrays))

    def normalize(self, pixels):
        """`stack`'s ``uint8`` images ``(N, H, W, 3)`` -> ``pixel_values`` ``(N, 3, H, W)`` float32, on the tensor's
        own device (on an accelerator a gather costs microseconds); float tensors are returned as they are. Every
        value comes from one table of the processor's 256 results per channel, so the result is the processor's, on
        any device."""
        import numpy as np
        import torch

        if pixels.dtype != torch.uint8:
            return pixels
        if pixels.device.type != "cpu":
            return self._normalize_on_device(pixels)
        count, height, width, _ = pixels.shape
        batch = pixels.numpy()
        out = np.empty((count, 3, height, width), dtype=np.float32)
        for channel in range(3):
            np.take(self._table[channel], batch[..., channel], out=out[:, channel])
        return torch.from_numpy(out)

    def _normalize_on_device(self, pixels):
        """`normalize` with torch operations only (a gather from the table), for tensors on an accelerator."""
        import torch

        table = self._device_tables.get(pixels.device)
        if table is None:
            table = self._device_tables[pixels.device] = torch.from_numpy(self._table.reshape(-1)).to(pixels.device)
        offsets = torch.arange(0, 3 * 256, 256, device=pixels.device).view(1, 3, 1, 1)
        return table[pixels.permute(0, 3, 1, 2).long() + offsets]


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "REDUCED_DECODING_BOUND",
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
