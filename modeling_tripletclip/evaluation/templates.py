"""Prompt templates for zero-shot classification.

A template is a string with one ``{}`` where the class name goes. Each class is embedded with every template, the
normalised embeddings are averaged and renormalised (prompt ensembling, as CLIP does for ImageNet).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .errors import EvaluationInputError

OPENAI_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)
"""The 80 prompt templates OpenAI's CLIP uses for ImageNet zero-shot classification."""


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Check that there is at least one template and each has exactly one ``{}``; return them as a tuple."""
    templates = tuple(templates)
    if not templates:
        raise EvaluationInputError("No prompt templates given: give at least one, e.g. 'a photo of a {}.'.")
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if bad:
        raise EvaluationInputError(
            f"Each prompt template needs exactly one '{{}}' where the class name goes; these do not: {bad[:5]}"
        )
    return templates


def load_templates(path: str | Path) -> tuple[str, ...]:
    """Read templates from a JSON file (a list of strings) or a text file (one template per non-empty line)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"Prompt template file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        templates = json.loads(text)
        if not isinstance(templates, list):
            raise EvaluationInputError(
                f"{path} must hold a JSON list of template strings such as [\"a photo of a {{}}.\"]."
            )
    else:
        templates = [line.strip() for line in text.splitlines() if line.strip()]
    return validate_templates(templates)


def class_prompts(class_name: str, templates: Sequence[str]) -> list[str]:
    """The prompts of one class: each template filled with the class name."""
    return [t.replace("{}", class_name) for t in templates]
