"""TripletData: the schema, Hub-layout reading and writing, the official WebDataset reader, the training collator,
and the procedural compositional world that the package trains and evaluates on by default.

Data flows one way: world or synthesis -> TripletData -> collator -> model. Nothing here imports the model package's
upper layers (training, evaluation, Hub).

    from dataset_builders import load_tripletdata, TripletCollator
    dataset = load_tripletdata("org/tripletdata", streaming=True)

Importing the package is cheap: each name below is imported from its module on first use, so that, e.g., the
rule-based negatives (`dataset_builders.synthesis.rules`) need only the standard library.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TripletCollator": "batches",
    "NotTripletDataError": "schema",
    "load_hub_dataset": "sources",
    "defer_image_decoding": "batches",
    "load_tripletdata": "sources",
    "write_dataset": "hub_layout",
    "write_dataset_card": "hub_layout",
    "write_parquet_shard": "hub_layout",
    "write_tripletdata": "hub_layout",
    "resolve_dataset": "sources",
    "CAPTION": "schema",
    "IMAGE": "schema",
    "NEGATIVE_CAPTION": "schema",
    "NEGATIVE_IMAGE": "schema",
    "NEGATIVE_KINDS": "synthesis.rules",
    "REQUIRED_COLUMNS": "schema",
    "triplet_features": "schema",
    "convert_official_shards": "released_shards",
    "read_official_shards": "released_shards",
    "generate_world": "world",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dataset_builders' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
