"""The procedural compositional world: TripletData and benchmarks rendered by code, deterministic from a seed.

Scenes of a few coloured shapes in spatial relations are told in varied phrasings; each gets a hard-negative
caption of one of SugarCrepe's seven kinds and a negative image rendered from the edited scene (the renderer plays
the text-to-image model of the paper's recipe). Some colour-shape combinations are held out of training, so the
benchmarks measure composition rather than memory.

    >>> from dataset_builders.world import generate_world
    >>> generate_world("world", num_train=10_000, seed=0)  # doctest: +SKIP
"""

from .generate import World, WorldConfig, generate_world, held_out_combinations, load_manifest, world_triplet_features
from .layout import WorldLayout
from .render import render_scene
from .scene import (
    Phrasing,
    Relation,
    Scene,
    WorldObject,
    caption_true_of,
    describe,
    make_negative,
    relation_holds,
    sample_phrasing,
    sample_scene,
)

__all__ = [
    "Phrasing",
    "Relation",
    "Scene",
    "World",
    "WorldConfig",
    "WorldLayout",
    "WorldObject",
    "caption_true_of",
    "describe",
    "generate_world",
    "held_out_combinations",
    "load_manifest",
    "make_negative",
    "relation_holds",
    "render_scene",
    "sample_phrasing",
    "sample_scene",
    "world_triplet_features",
]
