"""The words and values of the procedural world: shapes, colours, sizes, relations, backgrounds, and their phrasings.

Colours are far apart in RGB and all backgrounds are light, so every object stands out; the two sizes differ by a
factor of 1.65 in radius so that "small" and "large" are unambiguous at 64 pixels.
"""

from __future__ import annotations

#: Object categories (the "objects" of SugarCrepe's replace/swap/add object), with their caption words.
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disk"),
    "square": ("square",),
    "triangle": ("triangle",),
    "diamond": ("diamond",),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
    "heart": ("heart",),
    "ring": ("ring", "donut"),
    "moon": ("crescent", "moon"),
}
SHAPES: tuple[str, ...] = tuple(SHAPE_WORDS)

#: Object colours (RGB), the first attribute.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (235, 205, 20),
    "green": (35, 150, 50),
    "blue": (35, 75, 215),
    "purple": (125, 45, 165),
    "pink": (240, 110, 185),
    "brown": (120, 75, 35),
    "black": (25, 25, 25),
    "cyan": (20, 195, 210),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

#: Object sizes as radius / image side, the second attribute, with their caption words.
SIZES: dict[str, float] = {"small": 0.10, "large": 0.165}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "large": ("large", "big")}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)

#: Spatial relations "subject REL reference", their inverses, and their phrasings.
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("to the left of", "left of", "on the left side of"),
    "right": ("to the right of", "right of", "on the right side of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "beneath"),
}
RELATIONS: tuple[str, ...] = tuple(RELATION_WORDS)
INVERSE_RELATION: dict[str, str] = {"left": "right", "right": "left", "above": "below", "below": "above"}
#: Unit direction (dx, dy) from the reference to the subject, image coordinates (y grows downwards).
RELATION_DIRECTION: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "above": (0, -1), "below": (0, 1)}

#: Light background colours (never mistaken for an object colour), with their caption words.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (246, 246, 246),
    "gray": (208, 208, 208),
    "beige": (234, 222, 192),
    "pale blue": (198, 216, 240),
    "pale green": (206, 232, 200),
    "lavender": (224, 212, 242),
}
BACKGROUND_NAMES: tuple[str, ...] = tuple(BACKGROUNDS)
#: Faint background textures; they vary the pixels, never the meaning.
TEXTURES: tuple[str, ...] = ("plain", "gradient", "noise", "stripes", "dots")

#: Sentence templates for the main relation; {a} is the subject, {b} the reference, {rel} the relation phrase.
#: Templates marked inverse describe the same fact from the reference's side ("b right of a").
MAIN_TEMPLATES: tuple[tuple[str, bool], ...] = (
    ("{a} {rel} {b}", False),
    ("there is {a} {rel} {b}", False),
    ("{a} is {rel} {b}", False),
    ("{b} with {a} {rel} it", False),
    ("an image of {a} {rel} {b}", False),
    ("{b} {rel} {a}", True),
    ("{b} is {rel} {a}", True),
)
#: Clauses for an extra object related to an earlier one; {c} the object, {ref} "the <shape>".
RELATION_CLAUSES: tuple[str, ...] = (", and {c} {rel} {ref}", "; {c} is {rel} {ref}", " with {c} {rel} {ref}")
#: Clauses for an extra object whose place is not described.
EXISTENCE_CLAUSES: tuple[str, ...] = (", and {c}", ", plus {c}", " and also {c}")
#: Where the background is mentioned, when it is.
BACKGROUND_TEMPLATES: tuple[str, ...] = ("{s} on a {bg} background", "on a {bg} background, {s}", "{s}, {bg} background")
