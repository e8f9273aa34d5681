"""``tripletclip data``: generate the procedural world, convert the released TripletData, inspect a dataset.

    tripletclip data world --output_dir DIR [--num_train N] [--seed S] [--image_size 64] [--num_proc P]
    tripletclip data convert-webdataset --dataset SHARDS_OR_FOLDER_OR_HUB_ID --output_dir DIR [--overwrite_output_dir]
    tripletclip data inspect --dataset DATASET [--split S] [--output_dir DIR] [--rows 8]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .utils.options import Command

DATASET_HELP = ("a Hub dataset id, a folder (Hub layout, or holding WebDataset .tar shards) or shards (paths, globs, "
                "brace ranges)")


@dataclass
class WorldOptions:
    """Options of ``tripletclip data world``."""

    output_dir: str = field(metadata={"help": "the world's folder", "aliases": ["--out"]})
    num_train: int = field(default=10_000, metadata={"help": "training triplets"})
    seed: int = field(default=0, metadata={"help": "world seed"})
    image_size: int = field(default=64, metadata={"help": "image side in pixels"})
    num_test: int | None = field(default=None, metadata={"help": "held-out TripletData test triplets"})
    sugarcrepe_per_kind: int | None = field(default=None, metadata={"help": "SugarCrepe items per subset"})
    num_winoground: int | None = field(default=None, metadata={"help": "Winoground-style rows"})
    num_retrieval: int | None = field(default=None, metadata={"help": "retrieval images"})
    captions_per_image: int | None = field(default=None, metadata={"help": "captions per retrieval image"})
    num_proc: int = field(default=1, metadata={"help": "worker processes (the output does not depend on it)"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace a different world (or other files) in --output_dir",
                                 "aliases": ["--overwrite"]})

    def validate(self) -> None:
        problems = []
        if self.num_train < 1:
            problems.append(f"--num_train must be at least 1 (got {self.num_train})")
        if self.image_size < MIN_WORLD_IMAGE_SIZE:
            problems.append(f"--image_size must be at least {MIN_WORLD_IMAGE_SIZE} pixels (got {self.image_size}): "
                            f"smaller scenes cannot show their objects")
        if self.num_proc < 1:
            problems.append(f"--num_proc must be at least 1 (got {self.num_proc})")
        for name in ("num_test", "sugarcrepe_per_kind", "num_winoground", "num_retrieval"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"--{name} cannot be negative (got {value})")
        if self.captions_per_image is not None and self.captions_per_image < 1:
            problems.append(f"--captions_per_image must be at least 1 (got {self.captions_per_image})")
        if problems:
            raise ValueError("Invalid world settings:\n  - " + "\n  - ".join(problems))


#: The smallest image side a world renders (its smallest objects are a few pixels at this size).
MIN_WORLD_IMAGE_SIZE = 16


def _world(options: WorldOptions) -> int:
    from .inspection import summarize_world
    from .world import generate_world

    overrides = {name: getattr(options, name) for name in
                 ("num_test", "sugarcrepe_per_kind", "num_winoground", "num_retrieval", "captions_per_image")
                 if getattr(options, name) is not None}
    out = generate_world(options.output_dir, num_train=options.num_train, seed=options.seed,
                         image_size=options.image_size, num_proc=options.num_proc,
                         overwrite=options.overwrite_output_dir, **overrides)
    print(summarize_world(out))
    return 0


@dataclass
class ConvertWebDatasetOptions:
    """Options of ``tripletclip data convert-webdataset``."""

    dataset: str = field(metadata={"help": "the released TripletData: " + DATASET_HELP, "nargs": "+"})
    output_dir: str = field(metadata={"help": "the TripletData folder to write (Hub layout)", "aliases": ["--out"]})
    split: str = field(default="train", metadata={"help": "split name"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "discard a conversion of other shards in --output_dir",
                                 "aliases": ["--overwrite"]})


def _convert(options: ConvertWebDatasetOptions) -> int:
    from .webdataset import convert_official_shards

    report = convert_official_shards(options.dataset, options.output_dir, split=options.split,
                                     overwrite=options.overwrite_output_dir)
    print(report.summary())
    return 0


@dataclass
class InspectOptions:
    """Options of ``tripletclip data inspect``."""

    dataset: str = field(metadata={"help": "a dataset (" + DATASET_HELP + ") or a generated world folder",
                                   "nargs": "+"})
    split: str | None = field(default=None, metadata={"help": "split to sample (default: train, else the first)"})
    output_dir: str = field(default=".", metadata={"help": "where the sample-grid PNG goes"})
    grid: str | None = field(default=None, metadata={
        "help": "the sample-grid PNG's path (default: <output_dir>/<name>_sample_grid.png)"})
    rows: int = field(default=8, metadata={"help": "rows in the sample grid"})

    def validate(self) -> None:
        if self.rows < 1:
            raise ValueError(f"--rows must be at least 1 (got {self.rows}): the sample grid shows that many rows.")


def _inspect(options: InspectOptions) -> int:
    from .inspection import summarize_dataset, summarize_world
    from .world import WorldLayout

    layout = WorldLayout(options.dataset)
    value = options.dataset
    if "," not in value and layout.is_world():
        print(summarize_world(layout.root))
        if options.grid is None:
            return 0
        value = str(layout.train)
    name = Path(value.split(",")[0].rstrip("/")).name.split(".")[0] or "dataset"
    grid = Path(options.grid) if options.grid else Path(options.output_dir) / f"{name}_sample_grid.png"
    summary = summarize_dataset(value, split=options.split, grid_path=grid, rows=options.rows)
    print(summary.to_text())
    return 0


COMMANDS = [
    Command("data world", WorldOptions, _world,
            help="generate the procedural compositional world (train split + benchmarks)",
            description="Generate the procedural world: DIR/train (TripletData), DIR/test, DIR/sugarcrepe, "
                        "DIR/winoground, DIR/retrieval, deterministic from the seed. Resumable."),
    Command("data convert-webdataset", ConvertWebDatasetOptions, _convert,
            help="convert the released TripletData (Hub id, local copy or shards) to the Hub layout",
            description="Convert WebDataset shards with .image/.neg_image/.caption/.neg_caption samples (by Hub id, "
                        "a local copy or explicit shards) to TripletData parquet shards + card. Resumable: rerun "
                        "the same command after an interruption.", positional="dataset"),
    Command("data inspect", InspectOptions, _inspect,
            help="row counts, schema and a sample-grid PNG of a dataset or world",
            description="Summarise a dataset (any form --dataset takes) or a generated world.", positional="dataset"),
]
