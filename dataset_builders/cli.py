"""``tripletclip data``: generate the procedural world, convert the released TripletData, inspect a dataset.

    tripletclip data world --output_dir DIR [--num_train N] [--seed S] [--image_size 64] [--num_proc P]
    tripletclip data convert-webdataset --dataset SHARDS_OR_FOLDER_OR_HUB_ID --output_dir DIR [--overwrite_output_dir]
    tripletclip data inspect --dataset DATASET [--split S] [--output_dir DIR] [--rows 8]
    tripletclip data coverage --dataset DATASET [--output_dir DIR] [--parts_of_speech noun] [--max_rows N]
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

    output_dir: str = field(metadata={"help": "the world's folder"})
    num_train: int = field(default=10_000, metadata={"help": "training triplets"})
    seed: int = field(default=0, metadata={"help": "world seed"})
    image_size: int = field(default=64, metadata={"help": "image side in pixels"})
    num_test: int | None = field(default=None, metadata={"help": "held-out TripletData test triplets"})
    sugarcrepe_per_kind: int | None = field(default=None, metadata={"help": "SugarCrepe items per subset"})
    num_winoground: int | None = field(default=None, metadata={"help": "Winoground-style rows"})
    num_retrieval: int | None = field(default=None, metadata={"help": "retrieval images"})
    captions_per_image: int | None = field(default=None, metadata={"help": "captions per retrieval image"})
    benchmark_split: str = field(default="test", metadata={
        "help": "test, or validation: the same world (rules, held-out combinations, training part) with held-out "
                "scenes of its own, for choosing settings without looking at the test benchmarks",
        "choices": ["test", "validation"]})
    num_proc: int = field(default=1, metadata={"help": "worker processes (the output does not depend on it)"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace a different world (or other files) in --output_dir"})

    def validate(self) -> None:
        problems = []
        if self.num_train < (0 if self.benchmark_split == "validation" else 1):
            problems.append(f"--num_train must be at least 1 (got {self.num_train}); only a validation world "
                            f"(--benchmark_split validation) may have no training part")
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
                         overwrite=options.overwrite_output_dir, benchmark_split=options.benchmark_split, **overrides)
    print(summarize_world(out))
    return 0


@dataclass
class ConvertWebDatasetOptions:
    """Options of ``tripletclip data convert-webdataset``."""

    dataset: str = field(metadata={"help": "the released TripletData: " + DATASET_HELP, "nargs": "+"})
    output_dir: str = field(metadata={"help": "the TripletData folder to write (Hub layout)"})
    split: str = field(default="train", metadata={"help": "split name"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "discard a conversion of other shards in --output_dir"})


def _convert(options: ConvertWebDatasetOptions) -> int:
    from .released_shards import convert_official_shards

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


@dataclass
class CoverageOptions:
    """Options of ``tripletclip data coverage``."""

    dataset: str = field(metadata={
        "help": "a dataset (" + DATASET_HELP + "), a generated world folder, or SugarCrepe's folder of JSON files "
                "(or one of them); TripletData or plain captions", "nargs": "+"})
    output_dir: str = field(default=".", metadata={"help": "where coverage.json, coverage.md and coverage.png go"})
    split: str = field(default="train", metadata={"help": "split to read"})
    parts_of_speech: str = field(default="noun", metadata={
        "help": "comma-separated parts of speech to count: noun (the paper's), verb, adjective, adverb"})
    max_rows: int | None = field(default=None, metadata={"help": "read at most this many rows (a sample of a large "
                                                                 "dataset: the first rows, streamed)"})

    def validate(self) -> None:
        from .coverage import PARTS_OF_SPEECH

        unknown = [p for p in self.pos_list if p not in PARTS_OF_SPEECH]
        if unknown or not self.pos_list:
            raise ValueError(f"--parts_of_speech {self.parts_of_speech!r}: choose from {', '.join(PARTS_OF_SPEECH)} "
                             "(comma-separated).")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"--max_rows must be at least 1 (got {self.max_rows}).")

    @property
    def pos_list(self) -> list[str]:
        return [part.strip() for part in self.parts_of_speech.split(",") if part.strip()]


def caption_rows(value: str, split: str = "train"):
    """The caption rows of a dataset value, a world or a SugarCrepe folder, as dicts with ``caption`` and, where the
    dataset has them, ``negative_caption`` and ``negative_kind`` (streamed; images are never decoded)."""
    from . import schema
    from .sources import dataset_columns, load_dataset
    from .sugarcrepe import is_sugarcrepe, read_sugarcrepe_subset, sugarcrepe_subsets
    from .utils.errors import InputError
    from .world import WorldLayout

    if "," not in value and is_sugarcrepe(value):
        folder, subsets = sugarcrepe_subsets(value)
        return ({"caption": item["caption"], "negative_caption": item["negative_caption"], "negative_kind": subset}
                for subset in subsets for item in read_sugarcrepe_subset(folder / f"{subset}.json").values())
    layout = WorldLayout(value)
    if "," not in value and layout.is_world():
        value = str(layout.train)
    dataset = load_dataset(value, split=split, streaming=True)
    columns = dataset_columns(dataset)
    if schema.CAPTION not in columns:
        raise InputError(f"{value} has no {schema.CAPTION!r} column (it has {', '.join(columns)}); the coverage "
                         f"analysis reads captions (and {schema.NEGATIVE_CAPTION!r} where present).")
    wanted = [c for c in (schema.CAPTION, schema.NEGATIVE_CAPTION, schema.NEGATIVE_KIND) if c in columns]
    return iter(dataset.select_columns(wanted))


def _coverage(options: CoverageOptions) -> int:
    from tqdm.auto import tqdm

    from .coverage import ConceptFinder, count_concepts, coverage_table, format_table, plot_added
    from .utils import atomic
    from .wordnet import load_wordnet

    rows = caption_rows(options.dataset, options.split)  # a bad dataset fails here, before WordNet loads
    finder = ConceptFinder(load_wordnet(), options.pos_list)
    with tqdm(desc="captions", unit=" rows", total=options.max_rows) as progress:
        counts = count_concepts(rows, finder, max_rows=options.max_rows, progress=progress)
    title = Path(options.dataset.split(",")[0].rstrip("/")).name or options.dataset
    table = coverage_table(counts)
    table.update(dataset=options.dataset, parts_of_speech=options.pos_list, max_rows=options.max_rows)
    text = format_table(table, title)
    out = Path(options.output_dir)
    atomic.write_json(out / "coverage.json", table, indent=2)
    atomic.write_text(out / "coverage.md", text)
    plot_added(table, out / "coverage.png", title)
    print(text + f"\nWrote {out / 'coverage.json'}, {out / 'coverage.md'} and {out / 'coverage.png'}.")
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
                        "the same command after an interruption."),
    Command("data inspect", InspectOptions, _inspect,
            help="row counts, schema and a sample-grid PNG of a dataset or world",
            description="Summarise a dataset (any form --dataset takes) or a generated world."),
    Command("data coverage", CoverageOptions, _coverage,
            help="WordNet concepts in the captions and negative captions, and what the negatives add",
            description="Count the WordNet synsets (nouns by default) of a dataset's captions and negative "
                        "captions, as the paper's concept-coverage table: unique synsets and occurrences, their "
                        "intersection, the synsets the negatives add, per negative kind. Needs WordNet (nltk's, or a "
                        "system WordNet 3.0 database)."),
]
