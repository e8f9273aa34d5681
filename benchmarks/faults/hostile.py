"""Hostile files: every kind of bad or unusual image and caption a crawl produces, generated here, nothing downloaded.

:func:`image_cases` and :func:`caption_cases` describe each case with what a reader must do with it: use it (and how
the picture must look) or skip the row and count it under a reason of `dataset_builders.rows.SKIP_REASONS`. The
readers themselves are exercised by :mod:`.readers`; the tests and the fault harness share both.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

#: The colour of every picture in the corpus, so that a reader's result can be checked (RGB).
COLOUR = (200, 60, 30)
SIZE = (48, 36)  # width, height: not square, so that a lost rotation shows
USED = "used"


@dataclass(frozen=True)
class Case:
    """One hostile value: ``name``, the stored ``value`` (encoded bytes, text, or None), the file name it is stored
    under, and the outcome a reader must produce: ``USED`` (then ``size`` and ``colour``, when given, are what the
    decoded picture must show) or the skip reason. ``tolerance``: the largest colour difference allowed (JPEG loss)."""

    name: str
    value: object
    file_name: str = "image.png"
    outcome: str = USED
    size: tuple[int, int] | None = None
    colour: tuple[int, int, int] | None = None
    tolerance: int = 12
    notes: dict = field(default_factory=dict)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _picture(size=SIZE, colour=COLOUR) -> Image.Image:
    return Image.new("RGB", size, colour)


def _ycck_jpeg() -> bytes:
    """A YCCK JPEG (Adobe transform 2, as Photoshop writes CMYK photos) showing ``COLOUR``."""
    cmyk = np.asarray(_picture().convert("CMYK")).astype(float)
    ycc = np.asarray(Image.fromarray(cmyk[..., :3].astype(np.uint8)).convert("YCbCr")).astype(float)
    stored = np.concatenate([ycc, 255 - cmyk[..., 3:4]], axis=-1)
    # Pillow writes CMYK JPEGs inverted: hand it the inverse so that the stored channels are `stored`.
    data = bytearray(_encode(Image.fromarray((255 - stored).clip(0, 255).astype(np.uint8), mode="CMYK"), "JPEG",
                             quality=95))
    marker = data.find(b"Adobe")
    data[marker + 11] = 2  # the APP14 segment's colour transform: YCCK
    return bytes(data)


def _exif_rotated_jpeg() -> bytes:
    """A photo stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view): the stored pixels are
    36x48 with the colour on the left half; a viewer shows 48x36 with the colour on the top half."""
    stored = Image.new("RGB", (SIZE[1], SIZE[0]), (255, 255, 255))
    stored.paste(COLOUR, (0, 0, SIZE[1] // 2, SIZE[0]))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(stored, "JPEG", quality=95, exif=exif)


def _animated_gif() -> bytes:
    frames = [_picture(), _picture(colour=(0, 0, 255)), _picture(colour=(0, 255, 0))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_with_transparency() -> bytes:
    """A palette PNG whose left half is transparent: composited on white, as a viewer shows it."""
    image = Image.new("P", SIZE, 1)
    image.putpalette([0, 0, 0, *COLOUR] + [0, 0, 0] * 254)
    for x in range(SIZE[0] // 2):
        for y in range(SIZE[1]):
            image.putpixel((x, y), 0)
    return _encode(image, "PNG", transparency=0)


def _sixteen_bit_grey() -> bytes:
    return _encode(Image.fromarray(np.full((SIZE[1], SIZE[0]), 50000, dtype=np.uint16)), "PNG")  # I;16


def _grey_with_alpha() -> bytes:
    return _encode(Image.new("LA", SIZE, (100, 255)), "PNG")


def _bomb() -> bytes:
    """A 1-bit PNG of 20,000 x 20,000 pixels (400 megapixels) that compresses to a few kilobytes."""
    return _encode(Image.new("1", (20_000, 20_000)), "PNG", optimize=True)


def image_cases() -> list[Case]:
    jpeg = _encode(_picture(), "JPEG", quality=95)
    png = _encode(_picture(), "PNG")
    grey = round(50000 / 65535 * 255)
    return [
        Case("valid JPEG", jpeg, "photo.jpg", size=SIZE, colour=COLOUR),
        Case("truncated JPEG", jpeg[: len(jpeg) // 2], "photo.jpg", "undecodable image"),
        Case("truncated PNG", png[: len(png) // 2], "photo.png", "undecodable image"),
        Case("zero-byte file", b"", "empty.jpg", "undecodable image"),
        Case("PNG under a .jpg name", png, "mislabelled.jpg", size=SIZE, colour=COLOUR),
        Case("CMYK JPEG", _encode(_picture().convert("CMYK"), "JPEG", quality=95), "cmyk.jpg", size=SIZE,
             colour=COLOUR),
        Case("YCCK JPEG", _ycck_jpeg(), "ycck.jpg", size=SIZE, colour=COLOUR),
        Case("16-bit grey PNG (I;16)", _sixteen_bit_grey(), "deep.png", size=SIZE, colour=(grey, grey, grey),
             tolerance=1),
        Case("palette PNG with transparency", _palette_with_transparency(), "palette.png", size=SIZE,
             colour=COLOUR, tolerance=0, notes={"left half": (255, 255, 255)}),
        Case("grey PNG with alpha (LA)", _grey_with_alpha(), "la.png", size=SIZE, colour=(100, 100, 100),
             tolerance=0),
        Case("EXIF-rotated photo", _exif_rotated_jpeg(), "rotated.jpg", size=SIZE, colour=COLOUR,
             notes={"bottom half": (255, 255, 255)}),
        Case("animated GIF", _animated_gif(), "animated.gif", size=SIZE, colour=COLOUR, tolerance=0),
        Case("decompression bomb (400 megapixels)", _bomb(), "bomb.png", "image too large"),
        Case("SVG under an image name", b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>',
             "vector.png", "undecodable image"),
        Case("HTML under an image name", b"<!DOCTYPE html><html><body>Not found</body></html>", "page.jpg",
             "undecodable image"),
        Case("no image (None)", None, "none.png", "missing image"),
    ]


LONG_CAPTION = "a red circle to the left of a blue square " * 2400  # about 100,000 characters


def caption_cases() -> list[Case]:
    return [
        Case("valid caption", "a red circle to the left of a blue square"),
        Case("caption that is not UTF-8", b"a red \xff\xfe circle", outcome="undecodable caption"),
        Case("100,000-character caption", LONG_CAPTION, notes={"truncated": True}),
        Case("control characters", "a red\x00 circle\x07 to the\x1b left", notes={"cleaned": "a red  circle  to the  left"}),
        Case("no caption (None)", None, outcome="empty caption"),
        Case("only white space", " \t\n ", outcome="empty caption"),
    ]


def check_picture(case: Case, image: Image.Image) -> str | None:
    """Why ``image`` is not what a viewer shows for ``case`` (None when it is)."""
    if image.mode != "RGB":
        return f"mode {image.mode}, not RGB"
    if case.size and image.size != case.size:
        return f"size {image.size}, expected {case.size}"
    pixels = np.asarray(image).astype(int)
    width, height = image.size
    if case.name == "EXIF-rotated photo":
        regions = {"top half": pixels[: height // 2 - 2], "bottom half": pixels[height // 2 + 2:]}
        expected = {"top half": case.colour, "bottom half": case.notes["bottom half"]}
    elif case.name == "palette PNG with transparency":
        regions = {"left half": pixels[:, : width // 2], "right half": pixels[:, width // 2:]}
        expected = {"left half": case.notes["left half"], "right half": case.colour}
    else:
        regions, expected = {"picture": pixels}, {"picture": case.colour}
    for region, values in regions.items():
        difference = np.abs(values.reshape(-1, 3).mean(axis=0) - np.array(expected[region])).max()
        if difference > case.tolerance:
            return f"{region} shows {values.reshape(-1, 3).mean(axis=0).round().tolist()}, expected {expected[region]}"
    return None
