"""Generate the procedural compositional world: a training split and three benchmarks, all from one seed.

The layout of the output folder is described once, in :mod:`.layout` (`WorldLayout`): ``world.json`` (the manifest,
written last), ``train/`` and ``test/`` (TripletData), ``sugarcrepe/``, ``winoground/`` and ``retrieval/``.
Training scenes never show a held-out (colour, shape) combination, nor do their negatives; every scene of the test
split and of the benchmarks shows at least one.

Every row comes from its own random generator seeded by (world seed, part, row index), so any row can be
regenerated alone, the output does not depend on the number of worker processes, and the same seed gives the same
bytes. Generation resumes by part: the folder is claimed for one configuration (`OutputFolder`), each finished part is
recorded in its ledger, and a rerun after an interruption redoes only the parts without a record.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import multiprocessing
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import datasets

from .. import schema
from ..hub_layout import write_dataset
from ..synthesis.rules import NEGATIVE_KINDS
from ..utils import atomic
from ..utils.output_folders import OutputFolder
from .layout import PARTS, WorldLayout
from . import vocabulary as V
from .render import render_scene
from .scene import Phrasing, Scene, describe, make_negative, sample_phrasing, sample_scene

logger = logging.getLogger(__name__)

SCENE = "scene"
NEGATIVE_SCENE = "negative_scene"
#: Parts of the world; each has its own stream of seeds.
_STREAMS = {"train": 0, "test": 1, "sugarcrepe": 2, "winoground": 3, "retrieval": 4}
#: ``benchmark_split``: the held-out parts of a "validation" world come from streams of their own, so its benchmarks
#: share the world's rules (vocabulary, held-out combinations) but none of its test scenes.
BENCHMARK_SPLITS = {"test": 0, "validation": 10}


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines a world's content. Two worlds with equal configs are byte-identical."""

    seed: int = 0
    image_size: int = 64
    num_train: int = 10_000
    num_test: int = 700
    sugarcrepe_per_kind: int = 200
    num_winoground: int = 350
    num_retrieval: int = 300
    captions_per_image: int = 5
    held_out_per_shape: int = 2
    #: "test", or "validation": the same rules and held-out combinations, other held-out scenes (for choosing
    #: settings without looking at the test benchmarks); the training part is the same in both.
    benchmark_split: str = "test"

    def __post_init__(self):
        if self.benchmark_split not in BENCHMARK_SPLITS:
            raise ValueError(f"benchmark_split must be one of {', '.join(BENCHMARK_SPLITS)}, "
                             f"got {self.benchmark_split!r}.")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels to draw the shapes, got {self.image_size}.")
        if not 0 <= self.held_out_per_shape < len(V.COLOUR_NAMES) // 2:
            raise ValueError(
                f"held_out_per_shape must be in [0, {len(V.COLOUR_NAMES) // 2 - 1}] so that every shape keeps "
                f"most colours in training, got {self.held_out_per_shape}."
            )
        for name in ("num_train", "num_test", "sugarcrepe_per_kind", "num_winoground", "num_retrieval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.captions_per_image < 1:
            raise ValueError(f"captions_per_image must be >= 1, got {self.captions_per_image}.")


def held_out_combinations(seed: int, per_shape: int = 2) -> frozenset[tuple[str, str]]:
    """The (colour, shape) pairs kept out of training: ``per_shape`` colours for each shape.

    Colours are dealt round-robin over a seeded permutation, so each colour is held out for at most
    ``ceil(per_shape * shapes / colours)`` shapes and stays in training with all the others.
    """
    rng = random.Random(f"held-out-{seed}")
    colours = list(V.COLOUR_NAMES)
    rng.shuffle(colours)
    held = set()
    for i, shape in enumerate(V.SHAPES):
        for j in range(per_shape):
            held.add((colours[(per_shape * i + j) % len(colours)], shape))
    return frozenset(held)


class World:
    """The rules of one world: which combinations are held out, and how each row of each part is drawn."""

    def __init__(self, config: WorldConfig):
        self.config = config
        self.held_out = held_out_combinations(config.seed, config.held_out_per_shape)

    def seen(self, colour: str, shape: str) -> bool:
        """Whether a combination may appear in training (it is not held out)."""
        return (colour, shape) not in self.held_out

    def unseen(self, colour: str, shape: str) -> bool:
        return (colour, shape) in self.held_out

    def rng(self, part: str, index: int) -> random.Random:
        stream = _STREAMS[part] + (0 if part == "train" else BENCHMARK_SPLITS[self.config.benchmark_split])
        return random.Random((self.config.seed * 1_000_003 + stream) * 1_000_000_007 + index)

    # Each draw returns plain data; images are rendered by the row builders below.
    def draw_triplet(self, part: str, index: int) -> tuple[Scene, Phrasing, Scene, Phrasing, str]:
        """Scene, phrasing, negative scene, negative phrasing and negative kind of triplet ``index`` of a part."""
        rng = self.rng(part, index)
        train = part == "train"
        allowed = self.seen if train else (lambda colour, shape: True)
        while True:
            scene = sample_scene(rng, self.seen if train else allowed, require=None if train else self.unseen)
            phrasing = sample_phrasing(rng)
            kinds = list(NEGATIVE_KINDS)
            rng.shuffle(kinds)
            for kind in kinds:
                negative = make_negative(scene, phrasing, kind, rng, allowed)
                if negative is not None:
                    return scene, phrasing, negative[0], negative[1], kind

    def draw_pair_of_kind(self, part: str, index: int, kind: str) -> tuple[Scene, Phrasing, Scene, Phrasing]:
        """A held-out scene and its negative of the given kind."""
        rng = self.rng(part, index)
        while True:
            scene = sample_scene(rng, lambda c, s: True, require=self.unseen)
            phrasing = sample_phrasing(rng)
            negative = make_negative(scene, phrasing, kind, rng, lambda c, s: True)
            if negative is not None:
                return scene, phrasing, negative[0], negative[1]

    def draw_retrieval(self, index: int) -> tuple[Scene, list[str]]:
        """A held-out scene and ``captions_per_image`` distinct captions of it."""
        rng = self.rng("retrieval", index)
        scene = sample_scene(rng, lambda c, s: True, require=self.unseen)
        captions: list[str] = []
        for _ in range(50 * self.config.captions_per_image):
            caption = describe(scene, sample_phrasing(rng))
            if caption not in captions:
                captions.append(caption)
            if len(captions) == self.config.captions_per_image:
                break
        return scene, captions


def _png(scene: Scene, image_size: int) -> dict[str, Any]:
    buffer = io.BytesIO()
    render_scene(scene, image_size).save(buffer, format="PNG", compress_level=1)
    return {"bytes": buffer.getvalue(), "path": None}


def world_triplet_features() -> datasets.Features:
    """TripletData features of the world's splits: the schema's columns, id, kind, and both scenes as JSON."""
    return schema.triplet_features(
        {
            schema.ID: datasets.Value("string"),
            schema.NEGATIVE_KIND: datasets.Value("string"),
            SCENE: datasets.Value("string"),
            NEGATIVE_SCENE: datasets.Value("string"),
        }
    )


def _triplet_row(index: int, world: World, part: str) -> dict[str, Any]:
    scene, phrasing, negative, negative_phrasing, kind = world.draw_triplet(part, index)
    size = world.config.image_size
    return {
        schema.IMAGE: _png(scene, size),
        schema.CAPTION: describe(scene, phrasing),
        schema.NEGATIVE_IMAGE: _png(negative, size),
        schema.NEGATIVE_CAPTION: describe(negative, negative_phrasing),
        schema.ID: f"{part}-{index:07d}",
        schema.NEGATIVE_KIND: kind,
        SCENE: scene.to_json(),
        NEGATIVE_SCENE: negative.to_json(),
    }


def _winoground_row(index: int, world: World) -> dict[str, Any]:
    kind = NEGATIVE_KINDS[index % len(NEGATIVE_KINDS)]
    scene, phrasing, negative, negative_phrasing = world.draw_pair_of_kind("winoground", index, kind)
    size = world.config.image_size
    return {
        schema.ID: f"winoground-{index:06d}",
        schema.IMAGE_0: _png(scene, size),
        schema.IMAGE_1: _png(negative, size),
        schema.CAPTION_0: describe(scene, phrasing),
        schema.CAPTION_1: describe(negative, negative_phrasing),
        schema.TAG: kind,
    }


def _retrieval_row(index: int, world: World) -> dict[str, Any]:
    scene, captions = world.draw_retrieval(index)
    return {schema.ID: f"retrieval-{index:06d}", schema.IMAGE: _png(scene, world.config.image_size),
            schema.CAPTIONS: captions}


def _rows(function, count: int, num_proc: int) -> Iterator[dict[str, Any]]:
    """Rows ``function(0..count-1)`` in order, computed by ``num_proc`` processes (1: in this process)."""
    if num_proc <= 1 or count < 1000:  # starting workers costs more than a small part takes
        for index in range(count):
            yield function(index)
        return
    with multiprocessing.get_context("spawn").Pool(num_proc) as pool:
        yield from pool.imap(function, range(count), chunksize=32)


def write_sugarcrepe(world: World, out_dir: Path) -> dict[str, int]:
    """SugarCrepe's seven JSON files (``{key: {filename, caption, negative_caption}}``) and their images.

    Like the real benchmark, one image serves several subsets: each held-out scene gets a negative of every kind
    that is possible for it until each subset has ``sugarcrepe_per_kind`` items.
    """
    per_kind = world.config.sugarcrepe_per_kind
    items: dict[str, dict[str, dict[str, str]]] = {kind: {} for kind in NEGATIVE_KINDS}
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    index = 0
    while any(len(v) < per_kind for v in items.values()):
        if index > 100 * max(per_kind, 1):
            raise RuntimeError("The world cannot produce enough SugarCrepe items; this is a bug in the world rules.")
        rng = world.rng("sugarcrepe", index)
        scene = sample_scene(rng, lambda c, s: True, require=world.unseen)
        phrasing = sample_phrasing(rng)
        filename = f"{index:012d}.png"
        used = False
        for kind in NEGATIVE_KINDS:
            if len(items[kind]) >= per_kind:
                continue
            negative = make_negative(scene, phrasing, kind, rng, lambda c, s: True)
            if negative is None:
                continue
            items[kind][str(len(items[kind]))] = {
                "filename": filename,
                "caption": describe(scene, phrasing),
                "negative_caption": describe(*negative),
            }
            used = True
        if used:
            with atomic.atomic_path(images / filename) as tmp:
                render_scene(scene, world.config.image_size).save(tmp, format="PNG")
        index += 1
    for kind, kind_items in items.items():
        atomic.write_json(out_dir / f"{kind}.json", kind_items, indent=1)
    return {kind: len(v) for kind, v in items.items()}


def _config_dict(config: WorldConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


WORLD_JOB = "tripletclip data world"


def generate_world(
    out_dir: str | Path,
    num_train: int = 10_000,
    seed: int = 0,
    image_size: int = 64,
    num_proc: int = 1,
    overwrite: bool = False,
    rows_per_shard: int = 2_000,
    progress: bool = True,
    **config_overrides: Any,
) -> Path:
    """Generate the procedural world into ``out_dir`` (see :mod:`.layout`); returns it.

    A folder that already holds a complete world with the same configuration is reused as it is (the world is a
    cache: generating it again would give the same bytes), and an interrupted one is completed part by part. A folder
    holding a different world, or files of something else, is regenerated only with ``overwrite=True``.

    Args:
        out_dir: the output folder.
        num_train: training triplets.
        seed: the world's seed (scenes, phrasings, negatives, held-out combinations).
        image_size: side of the square images in pixels.
        num_proc: worker processes for rendering (the output does not depend on it).
        overwrite: replace a different world (or other files) in ``out_dir``.
        rows_per_shard: rows per parquet shard.
        progress: show progress bars.
        **config_overrides: other `WorldConfig` fields (``num_test``, ``sugarcrepe_per_kind``, ``num_winoground``,
            ``num_retrieval``, ``captions_per_image``, ``held_out_per_shape``).
    """
    unknown = set(config_overrides) - {f.name for f in dataclasses.fields(WorldConfig)}
    if unknown:
        raise TypeError(f"Unknown world option(s) {sorted(unknown)}; valid: {[f.name for f in dataclasses.fields(WorldConfig)]}.")
    config = WorldConfig(seed=seed, image_size=image_size, num_train=num_train, **config_overrides)
    layout = WorldLayout(out_dir)
    if layout.is_world() and layout.load_manifest().get("config") == _config_dict(config):
        logger.info("Reusing the world already in %s (same configuration).", layout.root)
        return layout.root
    folder = OutputFolder(
        layout.root, {"config": _config_dict(config)}, WORLD_JOB,
        other_message="{path} holds a world with a different configuration ({differences}). Choose another "
                      "--output_dir, or pass overwrite=True ({flag}) to replace it.",
        foreign_message="{path} is not empty and holds no world of this package. Choose an empty folder, or pass "
                        "overwrite=True ({flag}) to generate the world there.",
    )
    folder.claim(overwrite=overwrite)
    try:
        layout.manifest.unlink(missing_ok=True)  # the world is unfinished until the manifest is written again
        world = World(config)
        common = dict(rows_per_shard=rows_per_shard, progress=progress, license="apache-2.0",
                      tags=("tripletclip", "compositionality", "hard-negatives", "synthetic", "procedural-world"))
        details = _card_details(world)
        writers = {
            "train": (config.num_train, lambda: write_dataset(
                _rows(partial(_triplet_row, world=world, part="train"), config.num_train, num_proc), layout.train,
                world_triplet_features(), pretty_name="TripletData procedural world (train)", details=details, **common)),
            "test": (config.num_test, lambda: write_dataset(
                _rows(partial(_triplet_row, world=world, part="test"), config.num_test, num_proc), layout.test,
                world_triplet_features(), split="test", pretty_name="TripletData procedural world (held-out test)",
                details=details, **common)),
            "sugarcrepe": (7 * config.sugarcrepe_per_kind, lambda: write_sugarcrepe(world, layout.sugarcrepe)),
            "winoground": (config.num_winoground, lambda: write_dataset(
                _rows(partial(_winoground_row, world=world), config.num_winoground, num_proc), layout.winoground,
                schema.winoground_features(), split="test", pretty_name="Procedural world, Winoground-style",
                description="Pairs of held-out scenes of the procedural world: `caption_0` describes `image_0`, "
                            "`caption_1` describes `image_1`, and they differ by one hard-negative edit named in `tag`.",
                **common)),
            "retrieval": (config.num_retrieval, lambda: write_dataset(
                _rows(partial(_retrieval_row, world=world), config.num_retrieval, num_proc), layout.retrieval,
                schema.retrieval_features(), split="test", pretty_name="Procedural world, retrieval",
                description="Held-out scenes of the procedural world, each with several captions in different phrasings.",
                **common)),
        }
        records = {}
        for part in PARTS:
            record = folder.record_for(part)
            if record is None:
                count, write = writers[part]
                start = time.perf_counter()
                result = write()
                seconds = time.perf_counter() - start
                record = {"rows": count, "seconds": round(seconds, 3),
                          "rows_per_second": round(count / seconds, 1) if seconds > 0 else None}
                if part == "sugarcrepe":
                    record["counts"] = result
                folder.record(part, record)
            records[part] = record

        manifest = {
            "config": _config_dict(config),
            "held_out": sorted([list(pair) for pair in world.held_out]),
            "vocabulary": {"shapes": list(V.SHAPES), "colours": list(V.COLOUR_NAMES), "sizes": list(V.SIZE_NAMES),
                           "relations": list(V.RELATIONS), "backgrounds": list(V.BACKGROUND_NAMES)},
            "sugarcrepe": records["sugarcrepe"]["counts"],
            "timings": {part: {k: v for k, v in record.items() if k != "counts"} for part, record in records.items()},
        }
        atomic.write_json(layout.manifest, manifest)
        return layout.root
    finally:
        folder.release()  # other runs may write the folder again


def load_manifest(world_dir: str | Path) -> dict[str, Any]:
    """The manifest of a generated world (configuration, held-out combinations, counts, timings)."""
    return WorldLayout(world_dir).load_manifest()


def _card_details(world: World) -> str:
    held = ", ".join(f"{c} {s}" for c, s in sorted(world.held_out))
    c = world.config
    return (
        "Generated by `tripletclip data world` (package `tripletclip`), deterministic from seed "
        f"{c.seed}, images {c.image_size}x{c.image_size} px rendered with Pillow.\n\n"
        f"Each scene has 2-4 objects drawn from {len(V.SHAPES)} shapes ({', '.join(V.SHAPES)}), "
        f"{len(V.COLOUR_NAMES)} colours ({', '.join(V.COLOUR_NAMES)}) and 2 sizes, on one of "
        f"{len(V.BACKGROUND_NAMES)} light backgrounds with a faint texture; the caption asserts spatial relations "
        "(left of, right of, above, below) that hold with a clear margin, in one of many phrasings. Each negative "
        "caption is one of SugarCrepe's seven edits of the caption (replace / swap / add an object or an attribute, "
        "replace a relation), checked to be false of the image, and the negative image is rendered from the edited "
        "scene, keeping every object that the edit does not move in place.\n\n"
        f"Held out of training (neither images nor negatives of `train` show them): {held}. "
        "Every scene of the test split and of the benchmarks shows at least one of them."
        + (" This is the world's *validation* copy: its held-out scenes are drawn from streams of their own, apart "
           "from the test benchmarks of the same seed, for choosing settings." if c.benchmark_split == "validation"
           else "")
    )
