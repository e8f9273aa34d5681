"""TripletData: the schema, Hub-layout reading and writing, the official WebDataset reader, the training collator,
and the procedural compositional world that the package trains and evaluates on by default.

Data flows one way: world or synthesis -> TripletData -> collator -> model. Nothing here imports the model package.
"""

from .hub_layout import (
    NotTripletDataError,
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

__all__ = [
    "CAPTION",
    "IMAGE",
    "NEGATIVE_CAPTION",
    "NEGATIVE_IMAGE",
    "NEGATIVE_KINDS",
    "REQUIRED_COLUMNS",
    "NotTripletDataError",
    "load_tripletdata",
    "triplet_features",
    "write_dataset",
    "write_dataset_card",
    "write_parquet_shard",
    "write_tripletdata",
]
