"""The `tripletclip` command line: one entry, one subcommand per part of the release.

Each part keeps its command next to its code and registers it here through a ``register(subparsers)`` function;
the commands stay thin over library functions.

    tripletclip data ...            TripletData: the built-in world, official-shard conversion, inspection
    tripletclip synthesize ...      hard negatives with an LLM (or rules) and a text-to-image model
    tripletclip train ...           the trainer (same flags as `accelerate launch train_accelerate.py`)
    tripletclip evaluate ...        SugarCrepe, Winoground, TripletData, retrieval, zero-shot, similarity
    tripletclip push ...            publish a model, a dataset or the Space on the Hub
    tripletclip convert-clip ...    a CLIP checkpoint as a TripletCLIP checkpoint, same weights
    tripletclip convert-official .. the official TripletCLIP release as one checkpoint
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# (module, attribute): each registers one or more subcommands.
COMMAND_MODULES = (
    "dataset_builders.cli",
    "dataset_builders.synthesis.cli",
    "modeling_tripletclip.training.cli",
    "modeling_tripletclip.evaluation.cli",
    "modeling_tripletclip.hub.cli",
    "modeling_tripletclip.conversion",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tripletclip",
        allow_abbrev=False,
        description="TripletCLIP: CLIP with synthetic hard negatives. Data, training, evaluation and Hub release.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not name.startswith(error.name):  # a part not installed
                raise
            continue
        module.register(subparsers)
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """A mistyped flag must fail, never silently match a longer one (``--learning_rat``)."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
