"""A picture of a few rows of a dataset: images side by side with their captions, for cards and for inspection."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .rows import text_or_none
from .utils import atomic
from .utils.images import decode_image

_BACKGROUND = (255, 255, 255)
_HEADER = (60, 60, 60)
# Positive text in green, negative in red: the colours say which caption belongs to which image.
_TEXT_COLOURS = {"caption": (0, 110, 40), "negative_caption": (180, 20, 20), "caption_0": (0, 110, 40), "caption_1": (30, 60, 180)}
_DEFAULT_TEXT = (30, 30, 30)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def render_sample_grid(
    rows: Iterable[Mapping[str, Any]],
    image_columns: Sequence[str],
    text_columns: Sequence[str],
    cell_size: int = 128,
    text_width_chars: int = 60,
    max_rows: int = 8,
) -> Image.Image:
    """Render up to ``max_rows`` rows as a grid: one line per row, its images left, its texts right.

    Args:
        rows: dataset rows (dicts); image values may be PIL images, ``{"bytes", "path"}`` dicts or encoded bytes.
        image_columns: the image columns to show, in order (e.g. ``("image", "negative_image")``).
        text_columns: the text columns to print beside them; a list value is printed one item per line.
        cell_size: side of each image cell in pixels (small images are enlarged without smoothing).
        text_width_chars: wrap width of the text panel.
        max_rows: how many rows to draw at most.

    Returns:
        An RGB `PIL.Image.Image`. An image that cannot be decoded is drawn as a grey cell with a cross.
    """
    rows = [row for _, row in zip(range(max_rows), rows)]
    font = _font(14)
    header_font = _font(15)
    line_height = 18
    pad = 8
    text_panel = int(text_width_chars * 7.5) + 2 * pad

    wrapped_rows = []
    for row in rows:
        lines: list[tuple[str, tuple[int, int, int]]] = []
        for column in text_columns:
            value = row.get(column)
            values = value if isinstance(value, (list, tuple)) else [value]
            colour = _TEXT_COLOURS.get(column, _DEFAULT_TEXT)
            for i, item in enumerate(values):
                prefix = f"{column}: " if i == 0 else "  "
                readable = text_or_none(item) if isinstance(item, (bytes, bytearray)) else item
                text = prefix + ("<missing>" if readable is None else str(readable))
                for j, line in enumerate(textwrap.wrap(text, text_width_chars) or [""]):
                    lines.append(("    " + line if j else line, colour))
        wrapped_rows.append(lines)

    heights = [max(cell_size, len(lines) * line_height + pad) + pad for lines in wrapped_rows]
    header = line_height + pad
    width = pad + len(image_columns) * (cell_size + pad) + text_panel
    grid = Image.new("RGB", (width, header + sum(heights) + pad), _BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for k, column in enumerate(image_columns):
        draw.text((pad + k * (cell_size + pad), pad // 2), column, fill=_HEADER, font=header_font)
    draw.text((pad + len(image_columns) * (cell_size + pad), pad // 2), "text", fill=_HEADER, font=header_font)

    y = header
    for row, lines, height in zip(rows, wrapped_rows, heights):
        for k, column in enumerate(image_columns):
            x = pad + k * (cell_size + pad)
            image, _ = decode_image(row.get(column))
            if image is None:
                draw.rectangle([x, y, x + cell_size, y + cell_size], fill=(200, 200, 200))
                draw.line([x, y, x + cell_size, y + cell_size], fill=(120, 120, 120), width=2)
                draw.line([x, y + cell_size, x + cell_size, y], fill=(120, 120, 120), width=2)
                continue
            scale = cell_size / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BICUBIC
            grid.paste(image.resize(size, resample), (x, y))
        tx = pad + len(image_columns) * (cell_size + pad)
        for i, (line, colour) in enumerate(lines):
            draw.text((tx, y + i * line_height), line, fill=colour, font=font)
        y += height
        draw.line([pad, y - pad // 2, width - pad, y - pad // 2], fill=(225, 225, 225))
    return grid


def save_sample_grid(image: Image.Image, path: str | Path) -> Path:
    """Save a grid as PNG atomically (a temporary file renamed into place)."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
