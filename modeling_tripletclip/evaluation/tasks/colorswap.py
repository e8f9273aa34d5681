"""ColorSwap (Burapacheep et al., 2024): 1,000 examples of two images and two captions with the same words, the colour
words swapped between objects, in the Winoground schema.

**Data**: ``stanfordnlp/colorswap`` (gated: accept its conditions on the Hub and log in) or a local copy, split
``test``; columns ``id``, ``image_1``, ``image_2``, ``caption_1``, ``caption_2``, ``image_source``,
``caption_source``.

**Scoring**: the paper's image-text-matching metrics follow Winoground's (ColorSwap, Section 4; the authors' evaluation
is the Colab notebook linked from ``Top34051/colorswap``'s README): text, image and group scores with strict
comparisons (a tie is wrong), computed by `metrics.winoground_metrics`, overall and per ``image_source``.
"""

from __future__ import annotations

from .winoground import WinogroundBenchmark

COLORSWAP_COLUMNS = ("image_1", "image_2", "caption_1", "caption_2")


class ColorSwapBenchmark(WinogroundBenchmark):
    """ColorSwap's Winoground-style text, image and group scores (``image_1`` / ``caption_1`` the first pair)."""

    name = "colorswap"
    card = ("Compositional image-text matching", "stanfordnlp/colorswap", "ColorSwap")
    world_card = None
    folder_names = ("colorswap", "ColorSwap")
    headline = "group"
    required = COLORSWAP_COLUMNS
    optional = ("image_source",)
    image_columns = ("image_1", "image_2")
    pair_columns = COLORSWAP_COLUMNS
    default_tag_column = "image_source"
