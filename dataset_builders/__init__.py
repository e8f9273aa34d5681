"""TripletData: the schema, Hub-layout reading and writing, the official WebDataset reader, the training collator,
and the procedural compositional world that the package trains and evaluates on by default.

Data flows one way: world or synthesis -> TripletData -> collator -> model. Nothing here imports the model package.

    from dataset_builders import load_tripletdata, TripletCollator
    dataset = load_tripletdata("org/tripletdata", streaming=True)
"""

from .collator import TripletCollator, defer_image_decoding
from .hub_layout import (
    NotTripletDataError,
    load_hub_dataset,
    load_tripletdata,
    write_dataset,
    write_dataset_card,
    write_parquet_shard,
    write_tripletdata,
)
from .schema import (
    CAPTION,
    IMAGE,
    NEGATIVE_CAPTION,
    NEGATIVE_IMAGE,
    NEGATIVE_KINDS,
    REQUIRED_COLUMNS,
    triplet_features,
)
from .webdataset import convert_official_shards, read_official_shards
from .world import generate_world

__all__ = [
    "CAPTION",
    "IMAGE",
    "NEGATIVE_CAPTION",
    "NEGATIVE_IMAGE",
    "NEGATIVE_KINDS",
    "REQUIRED_COLUMNS",
    "NotTripletDataError",
    "TripletCollator",
    "convert_official_shards",
    "defer_image_decoding",
    "generate_world",
    "load_hub_dataset",
    "load_tripletdata",
    "read_official_shards",
    "triplet_features",
    "write_dataset",
    "write_dataset_card",
    "write_parquet_shard",
    "write_tripletdata",
]
