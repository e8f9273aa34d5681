"""Where training data comes from: the built-in world, a TripletData folder or Hub id, or official WebDataset shards.

Every source ends as a `datasets` dataset with the TripletData columns (map-style, or streaming and already split
for this process), plus the benchmarks to evaluate on when the source has them (the world does).
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
        text_columns = [c for c in ("caption", "negative_caption") if c in self.columns]
        source = self.dataset.select_columns(text_columns)
        for row in itertools.islice(iter(source), limit):
            for column in text_columns:
                if row[column]:
                    yield row[column]

    def check_objective(self, config: TrainingConfig) -> None:
        """Fail before training when the data lacks what the objective needs."""
        missing = []
        if config.needs_negative_captions and "negative_caption" not in self.columns:
            missing.append("negative_caption")
        if config.needs_negative_images and "negative_image" not in self.columns:
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
    cache = Path(os.environ.get("TRIPLETCLIP_CACHE", Path.home() / ".cache" / "tripletclip"))
    return cache / f"world-n{config.world_num_train}-seed{config.seed}"


def load_training_data(config: TrainingConfig, rank: int, num_processes: int) -> TrainingData:
    """Resolve ``config.dataset`` (call it on the main process first: the world is generated once and cached)."""
    if config.is_world:
        return _world(config)
    shards = _webdataset_shards(config.dataset)
    if shards:
        return _webdataset(config, shards, rank, num_processes)
    return _hub_layout(config, rank, num_processes)


def _world(config: TrainingConfig) -> TrainingData:
    from dataset_builders.hub_layout import load_tripletdata
    from dataset_builders.world import generate_world
    from dataset_builders.world.generate import MANIFEST

    if config.world_dir and (Path(config.world_dir) / MANIFEST).is_file():
        world_dir = Path(config.world_dir)  # a finished world the user points to: used as it is
    else:
        # Generated on first use; an identical world already there is reused, an unfinished one redone.
        world_dir = Path(config.world_dir) if config.world_dir else default_world_dir(config)
        logger.info("Preparing the built-in world (%d training scenes) in %s", config.world_num_train, world_dir)
        generate_world(world_dir, num_train=config.world_num_train, seed=config.seed,
                       overwrite=config.world_dir is None)
    from ..evaluation import world_benchmarks

    dataset = load_tripletdata(world_dir / "train", split="train")
    wanted = [b.strip() for b in config.eval_benchmarks.split(",") if b.strip()]
    benchmarks = {name: str(path) for name, path in world_benchmarks(world_dir, wanted).items()} if wanted else {}
    return TrainingData(
        dataset=dataset,
        streaming=False,
        name="the built-in world",
        description=f"the built-in world ({len(dataset)} triplets, {world_dir})",
        columns=list(dataset.column_names),
        benchmarks=benchmarks,
    )


def _hub_layout(config: TrainingConfig, rank: int, num_processes: int) -> TrainingData:
    from dataset_builders.hub_layout import load_hub_dataset

    # Only real pairs are required to load; `check_objective` then says what the chosen loss additionally needs.
    required = ["image", "caption"]
    dataset = load_hub_dataset(config.dataset, required, split=config.dataset_split, streaming=config.streaming)
    columns = list(dataset.column_names or dataset.features or required)
    if config.streaming:
        from datasets.distributed import split_dataset_by_node

        dataset = split_dataset_by_node(dataset, rank=rank, world_size=num_processes)
        description = f"{config.dataset} (streaming, process {rank} of {num_processes})"
    else:
        description = f"{config.dataset} ({len(dataset)} rows)"
    return TrainingData(dataset, config.streaming, config.dataset, description, columns)


def _webdataset_shards(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts or not all(p.endswith(".tar") or "*" in p or "{" in p for p in parts):
        return []
    shards: list[str] = []
    for part in parts:
        matches = sorted(glob.glob(part)) if "*" in part else [part]
        shards.extend(matches)
    return shards


def _webdataset(config: TrainingConfig, shards: list[str], rank: int, num_processes: int) -> TrainingData:
    from datasets.distributed import split_dataset_by_node

    from dataset_builders.webdataset import read_official_shards

    missing = [s for s in shards if not Path(s).exists()]
    if missing:
        raise ValueError(f"--dataset: shard(s) not found: {', '.join(missing[:5])}")
    dataset = read_official_shards(shards)
    dataset = split_dataset_by_node(dataset, rank=rank, world_size=num_processes)
    columns = ["image", "caption", "negative_image", "negative_caption"]
    return TrainingData(dataset, True, f"{len(shards)} WebDataset shard(s)",
                        f"{len(shards)} official WebDataset shard(s), streaming", columns)
