"""Where training data comes from: the built-in world, or any dataset value `dataset_builders.sources` resolves (a
Hub id such as the released ``TripletCLIP/TripletCLIP-High-Quality``, a local copy of it, WebDataset shards, a
TripletData folder).

Every source ends as a `datasets` dataset with the TripletData columns (map-style, or streaming and already split
for this process), plus the benchmarks to evaluate on when the source has them (the world does).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builders.sources import (
    WORLD,
    DatasetSource,
    dataset_columns,
    load_hub_dataset,
    load_tripletdata,
    resolve_dataset,
)
from dataset_builders.utils.errors import InputError
from dataset_builders.world import WorldLayout, generate_world

from .config import TrainingConfig

logger = logging.getLogger("tripletclip.train")

@dataclass
class TrainingData:
    dataset: object
    streaming: bool
    name: str
    description: str
    columns: list[str]
    benchmarks: dict[str, str] = field(default_factory=dict)

    def caption_corpus(self, limit: int = 200_000) -> Iterator[str]:
        """Captions (real and negative) to train a tokenizer on, for models started from a preset."""
        from dataset_builders.rows import text_or_none

        text_columns = [c for c in ("caption", "negative_caption") if c in self.columns]
        source = self.dataset.select_columns(text_columns)
        for row in itertools.islice(iter(source), limit):
            for column in text_columns:
                text = text_or_none(row[column])
                if text:
                    yield text

    def check_objective(self, config: TrainingConfig) -> None:
        """Fail before training when the data lacks what the objective needs."""
        missing = []
        if config.objective.needs_negative_captions and "negative_caption" not in self.columns:
            missing.append("negative_caption")
        if config.objective.needs_negative_images and "negative_image" not in self.columns:
            missing.append("negative_image")
        if missing:
            usable = ["clip"] + (["negclip"] if "negative_caption" in self.columns else [])
            raise ValueError(
                f"--loss_type {config.loss_type} needs the column(s) {', '.join(missing)}, which {self.name} does "
                f"not have (it has {', '.join(self.columns)}). Train with --loss_type {' or '.join(usable)}, or "
                f"generate the missing negatives with `tripletclip synthesize`."
            )


def default_world_dir(config: TrainingConfig) -> Path:
    """The cache folder of the built-in world for this run's size and seed ($TRIPLETCLIP_CACHE or ~/.cache)."""
    from dataset_builders.utils.locations import cache_dir

    cache = cache_dir()
    num_train, seed = config.world_settings
    return cache / f"world-n{num_train}-seed{seed}"


def check_sources(config: TrainingConfig) -> DatasetSource:
    """Resolve ``--dataset`` (the one time in a run) and check what can be checked about the data and the model
    without reading either: a world in ``--world_dir`` that is not the one the flags ask for, a dataset value of no
    known form, a model path that is not a CLIP-like checkpoint (its configuration only). Runs before any model is
    loaded or any data is read; returns the resolved source, which `load_training_data` reads."""
    source = resolve_dataset(config.dataset)  # raises, naming the forms it looked for, when the value is none of them
    if source.kind == WORLD and source.path is not None:
        raise InputError(f"--dataset {config.dataset} is a generated world: train on it with --dataset world "
                         f"--world_dir {config.dataset} (its benchmarks are then evaluated too).")
    if source.kind == WORLD and config.world_dir:
        layout = WorldLayout(config.world_dir)
        if layout.is_world():
            there = layout.load_manifest().get("config", {})
            for flag, wanted, key in (("--world_seed", config.world_seed, "seed"),
                                      ("--world_num_train", config.world_num_train, "num_train")):
                if wanted is not None and there.get(key) != wanted:
                    what = f"seed {there.get(key)}" if key == "seed" else f"{there.get(key)} training triplets"
                    raise InputError(
                        f"--world_dir {layout.root} holds the world of {what}, but {flag} {wanted} asks for another. "
                        f"Pass {flag} {there.get(key)} (or leave it out) to train on that world, or give another "
                        f"--world_dir for the new one."
                    )
    if config.eval_world_dir:
        if not WorldLayout(config.eval_world_dir).is_world():
            raise InputError(
                f"--eval_world_dir {config.eval_world_dir} is not a finished world (it has no world.json). Generate "
                f"one with `tripletclip data world --output_dir {config.eval_world_dir} --benchmark_split validation "
                f"--num_train 0`, or leave --eval_world_dir out to evaluate on the training world.")
    if config.model_name_or_path:
        from ..loading import check_clip_like_checkpoint

        check_clip_like_checkpoint(config.model_name_or_path)
    return source


def load_training_data(config: TrainingConfig, source: DatasetSource, rank: int, num_processes: int) -> TrainingData:
    """Read the resolved ``--dataset`` (`check_sources`); call it on the main process first: the built-in world is
    generated once and cached."""
    if source.kind == WORLD:
        return _world(config, source)
    return _dataset(config, source, rank, num_processes)


def _world(config: TrainingConfig, source: DatasetSource) -> TrainingData:
    world_folder = config.world_dir
    layout = WorldLayout(world_folder) if world_folder else None
    if layout is not None and layout.is_world():
        world_dir = layout.root  # a finished world the user points to: used as it is
    else:
        # Generated on first use; an identical world already there is reused, an unfinished one completed.
        world_dir = Path(world_folder) if world_folder else default_world_dir(config)
        num_train, seed = config.world_settings
        logger.info("Preparing the built-in world (%d training scenes, seed %d) in %s", num_train, seed, world_dir)
        generate_world(world_dir, num_train=num_train, seed=seed, overwrite=world_folder is None)
        layout = WorldLayout(world_dir)
    dataset = load_tripletdata(layout.train, split="train")
    return TrainingData(
        dataset=dataset,
        streaming=False,
        name="the built-in world",
        description=f"the built-in world ({len(dataset)} triplets, {world_dir})",
        columns=list(dataset.column_names),
        benchmarks=benchmark_paths(config, layout),
    )


def _dataset(config: TrainingConfig, source: DatasetSource, rank: int, num_processes: int) -> TrainingData:
    # Only real pairs are required to load; `check_objective` then says what the chosen loss additionally needs.
    required = ["image", "caption"]
    dataset = load_hub_dataset(source, required, split=config.dataset_split, streaming=config.streaming)
    columns = dataset_columns(dataset)
    if config.streaming:
        from datasets.distributed import split_dataset_by_node

        dataset = split_dataset_by_node(dataset, rank=rank, world_size=num_processes)
        description = f"{source.describe()} (streaming, process {rank} of {num_processes})"
    else:
        description = f"{source.describe()} ({len(dataset)} rows)"
    return TrainingData(dataset, config.streaming, config.dataset, description, columns,
                        benchmarks=benchmark_paths(config, None))


def benchmark_paths(config: TrainingConfig, training_world) -> dict[str, str]:
    """``{benchmark: path}`` to evaluate on: those of ``--eval_world_dir`` when given, else of the training world
    (none when training on another dataset without ``--eval_world_dir``)."""
    wanted = [b.strip() for b in config.eval_benchmarks.split(",") if b.strip()]
    layout = WorldLayout(config.eval_world_dir) if config.eval_world_dir else training_world
    if not wanted or layout is None:
        return {}
    return {name: str(path) for name, path in layout.benchmark_paths(wanted).items()}
