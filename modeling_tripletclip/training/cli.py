"""`tripletclip train`: the trainer from the package's command line (same flags as train_accelerate.py).

For several processes or mixed precision, launch through Accelerate instead:
`accelerate launch train_accelerate.py [flags]` (or `accelerate launch -m modeling_tripletclip.cli train [flags]`).
"""

from __future__ import annotations

import argparse

from .config import add_arguments, config_from_args


def _train_command(args: argparse.Namespace) -> int:
    from .trainer import train

    train(config_from_args(args))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train TripletCLIP or a baseline (defaults: tiny model on the built-in world)",
        description="Train TripletCLIP (or CLIP, NegCLIP, LaCLIP+HN) with Accelerate. With no flags: the tiny "
        "preset on the built-in compositional world. For several processes use `accelerate launch`.",
    )
    add_arguments(parser)
    parser.set_defaults(func=_train_command)
