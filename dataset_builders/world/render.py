"""Render a scene to an RGB image with Pillow: the procedural world's stand-in for a text-to-image model.

Objects are drawn at twice the requested resolution and downsampled (anti-aliasing); each has a darker outline so
its shape reads on any background. The background texture is a deterministic function of the scene, so a negative
image shares its positive's background pixel for pixel.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from . import vocabulary as V
from .scene import Scene, WorldObject

_SUPERSAMPLE = 2


def _heart(points: int = 28) -> tuple[tuple[float, float], ...]:
    out = []
    for i in range(points):
        t = 2 * math.pi * i / points
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        out.append((x / 15.0, -(y + 2.5) / 15.0))
    return tuple(out)


def _regular(n: int, radius: float, start_degrees: float) -> tuple[tuple[float, float], ...]:
    return tuple(
        (radius * math.cos(math.radians(start_degrees + 360 * i / n)),
         radius * math.sin(math.radians(start_degrees + 360 * i / n)))
        for i in range(n)
    )


def _star() -> tuple[tuple[float, float], ...]:
    return tuple(
        ((1.25 if i % 2 == 0 else 0.52) * math.cos(math.radians(-90 + 36 * i)),
         (1.25 if i % 2 == 0 else 0.52) * math.sin(math.radians(-90 + 36 * i)))
        for i in range(10)
    )


def _cross(arm: float = 0.38, length: float = 1.1) -> tuple[tuple[float, float], ...]:
    a, l = arm, length
    return ((-a, -l), (a, -l), (a, -a), (l, -a), (l, a), (a, a), (a, l), (-a, l), (-a, a), (-l, a), (-l, -a), (-a, -a))


#: Unit outlines (radius ~1) of the polygonal shapes; circle, ring and moon are drawn from ellipses.
_POLYGONS: dict[str, tuple[tuple[float, float], ...]] = {
    "square": _regular(4, 1.2, 45),
    "triangle": tuple((x, y + 0.15) for x, y in _regular(3, 1.32, -90)),
    "diamond": ((0.0, -1.25), (0.82, 0.0), (0.0, 1.25), (-0.82, 0.0)),
    "star": _star(),
    "cross": _cross(),
    "heart": _heart(),
}
assert set(_POLYGONS) | {"circle", "ring", "moon"} == set(V.SHAPES)


def _colour(obj: WorldObject) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    base = V.COLOURS[obj.colour]
    fill = tuple(int(min(255, max(0, c + s))) for c, s in zip(base, obj.shade))
    outline = tuple(int(c * 0.55) for c in fill)
    return fill, outline


def _draw_object(canvas: Image.Image, draw: ImageDraw.ImageDraw, obj: WorldObject, side: int) -> None:
    cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
    fill, outline = _colour(obj)
    width = max(1, round(side / 64))
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    elif obj.shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, round(0.45 * r)))
    elif obj.shape == "moon":
        mask = Image.new("L", canvas.size, 0)
        mask_draw = ImageDraw.Draw(mask)
        mask_draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        angle = math.radians(obj.rotation - 30)
        ox, oy = 0.5 * r * math.cos(angle), 0.5 * r * math.sin(angle)
        mask_draw.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r, cy + oy + 0.85 * r], fill=0)
        canvas.paste(fill, mask=mask)
    else:
        theta = math.radians(obj.rotation)
        cos, sin = math.cos(theta), math.sin(theta)
        points = [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in _POLYGONS[obj.shape]]
        draw.polygon(points, fill=fill, outline=outline, width=width)


@lru_cache(maxsize=8)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) / side
    return xs, ys


def render_background(scene: Scene, side: int) -> np.ndarray:
    """The background of a scene as a ``(side, side, 3)`` uint8 array: its colour plus a faint texture."""
    return _background(scene.background, scene.texture, scene.texture_seed, side)


@lru_cache(maxsize=4)  # a negative image reuses its positive's background
def _background(background: str, texture: str, texture_seed: int, side: int) -> np.ndarray:
    rng = np.random.default_rng(texture_seed)
    base = np.asarray(V.BACKGROUNDS[background], dtype=np.float32)
    xs, ys = _grid(side)
    if texture == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        shade = 14 * ((xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle))
    elif texture == "noise":
        shade = rng.normal(0, 4, (side, side)).astype(np.float32)
    elif texture == "stripes":
        angle = rng.choice([0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
        shade = 6 * np.sin(2 * np.pi * 8 * (xs * np.cos(angle) + ys * np.sin(angle)))
    elif texture == "dots":
        phase = rng.uniform(0, 1, 2)
        shade = -14 * ((np.sin(2 * np.pi * (8 * xs + phase[0])) > 0.8) & (np.sin(2 * np.pi * (8 * ys + phase[1])) > 0.8))
    else:
        shade = np.zeros((side, side), np.float32)
    array = np.clip(base[None, None, :] + shade[..., None], 0, 255).astype(np.uint8)
    array.setflags(write=False)
    return array


def render_scene(scene: Scene, image_size: int = 64) -> Image.Image:
    """Draw ``scene`` as an ``image_size`` x ``image_size`` RGB image (objects in order: later ones on top)."""
    side = image_size * _SUPERSAMPLE
    # The background is computed at the output size and enlarged without smoothing: the downsampling restores it.
    background = Image.fromarray(render_background(scene, image_size), "RGB")
    canvas = background.resize((side, side), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        _draw_object(canvas, draw, obj, side)
    return canvas.reduce(_SUPERSAMPLE)
