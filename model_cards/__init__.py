"""Card templates: Jinja Markdown rendered through huggingface_hub's `ModelCard`, `DatasetCard` and `SpaceCard`.

- ``model_card.md``: a TripletCLIP checkpoint (metadata, usage, training configuration, results, limitations).
- ``dataset_card.md``: a TripletData dataset (schema, provenance, sample grid).
- ``space_card.md``: the Gradio Space.

Shipped as package data, so an installed copy of tripletclip finds them as well as a checkout does.
"""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent


def template_path(name: str) -> Path:
    """Path of the card template ``name`` (e.g. ``"model_card.md"``)."""
    path = TEMPLATES_DIR / name
    if not path.is_file():
        available = sorted(p.name for p in TEMPLATES_DIR.glob("*.md"))
        raise FileNotFoundError(f"No card template {name!r} in {TEMPLATES_DIR}; available: {', '.join(available)}.")
    return path
