"""``tripletclip data``: generate the procedural world, convert official WebDataset shards, inspect a dataset.

    tripletclip data world --out DIR [--num-train N] [--seed S] [--image-size 64] [--num-proc P]
    tripletclip data convert-webdataset SHARD [SHARD ...] --out DIR [--overwrite]
    tripletclip data inspect DIR [--split S] [--grid PNG]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``data`` command and its subcommands to a `tripletclip` argparse subparsers object."""
    data = subparsers.add_parser("data", help="TripletData: built-in world, official-shard conversion, inspection",
                                 description="Create, convert and inspect TripletData datasets.")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    world = commands.add_parser(
        "world", help="generate the procedural compositional world (train split + benchmarks)",
        description="Generate the procedural world: DIR/train (TripletData), DIR/test, DIR/sugarcrepe, "
                    "DIR/winoground, DIR/retrieval, deterministic from the seed.")
    world.add_argument("--out", required=True, type=Path, help="output folder")
    world.add_argument("--num-train", type=int, default=10_000, help="training triplets (default 10000)")
    world.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    world.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    world.add_argument("--num-test", type=int, default=None, help="held-out TripletData test triplets")
    world.add_argument("--sugarcrepe-per-kind", type=int, default=None, help="SugarCrepe items per subset")
    world.add_argument("--num-winoground", type=int, default=None, help="Winoground-style rows")
    world.add_argument("--num-retrieval", type=int, default=None, help="retrieval images")
    world.add_argument("--captions-per-image", type=int, default=None, help="captions per retrieval image")
    world.add_argument("--num-proc", type=int, default=1, help="worker processes (output does not depend on it)")
    world.add_argument("--overwrite", action="store_true", help="replace a different or unfinished world in --out")
    world.set_defaults(func=_world)

    convert = commands.add_parser(
        "convert-webdataset", help="convert official TripletCLIP WebDataset shards to the Hub layout",
        description="Convert WebDataset .tar shards with .image/.neg_image/.caption/.neg_caption samples to "
                    "TripletData parquet shards + card. Resumable: rerun the same command after an interruption.")
    convert.add_argument("shards", nargs="+", help=".tar shards (shell globs are expanded by your shell)")
    convert.add_argument("--out", required=True, type=Path, help="output folder")
    convert.add_argument("--split", default="train", help="split name (default train)")
    convert.add_argument("--overwrite", action="store_true", help="discard a conversion of other shards in --out")
    convert.set_defaults(func=_convert)

    inspect = commands.add_parser("inspect", help="row counts, schema and a sample-grid PNG of a dataset or world",
                                  description="Summarise a Hub-layout dataset folder, a Hub id or a generated world.")
    inspect.add_argument("path", help="dataset folder, world folder, or Hub dataset id")
    inspect.add_argument("--split", default=None, help="split to sample (default: train, else the first)")
    inspect.add_argument("--grid", type=Path, default=None,
                         help="where to save the sample-grid PNG (default: <name>_sample_grid.png here)")
    inspect.add_argument("--rows", type=int, default=8, help="rows in the sample grid (default 8)")
    inspect.set_defaults(func=_inspect)


def _fail(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2


def _world(args: argparse.Namespace) -> int:
    from .world import generate_world
    from .inspection import summarize_world

    overrides = {name: getattr(args, name) for name in
                 ("num_test", "sugarcrepe_per_kind", "num_winoground", "num_retrieval", "captions_per_image")
                 if getattr(args, name) is not None}
    try:
        out = generate_world(args.out, num_train=args.num_train, seed=args.seed, image_size=args.image_size,
                             num_proc=args.num_proc, overwrite=args.overwrite, **overrides)
    except (ValueError, FileExistsError) as error:
        return _fail(error)
    print(summarize_world(out))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .webdataset import convert_official_shards

    try:
        report = convert_official_shards(args.shards, args.out, split=args.split, overwrite=args.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        return _fail(error)
    print(report.summary())
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from .hub_layout import NotTripletDataError
    from .inspection import summarize_dataset, summarize_world
    from .world.generate import MANIFEST

    path = Path(args.path)
    if (path / MANIFEST).is_file():
        print(summarize_world(path))
        if args.grid is None:
            return 0
        path = path / "train"
    grid = args.grid or Path(f"{path.name or 'dataset'}_sample_grid.png")
    try:
        summary = summarize_dataset(args.path if not path.exists() else path, split=args.split, grid_path=grid,
                                    rows=args.rows)
    except (NotTripletDataError, ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(summary.to_text())
    return 0
