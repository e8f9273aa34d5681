"""`tripletclip train`: the trainer from the package's command line (same flags as train_accelerate.py).

For several processes or mixed precision, launch through Accelerate instead:
`accelerate launch train_accelerate.py [flags]` (or `accelerate launch -m modeling_tripletclip.cli train [flags]`).
"""

from __future__ import annotations

from dataset_builders.utils.options import Command

from .config import DESCRIPTION, TrainingConfig


def _train(config: TrainingConfig) -> int:
    from .trainer import train

    train(config)
    return 0


COMMANDS = [
    Command("train", TrainingConfig, _train,
            help="train TripletCLIP or a baseline (defaults: tiny model on the built-in world)",
            description=DESCRIPTION + " For several processes use `accelerate launch train_accelerate.py`."),
]
