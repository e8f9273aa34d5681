"""Training TripletCLIP with Accelerate: configuration, data stream, optimizer, checkpoints, tracking, the loop.

`accelerate launch train_accelerate.py [flags]` and `tripletclip train [flags]` both call :func:`main`.
"""

from .config import TrainingConfig, parse_args
from .trainer import TrainingResult, train


def main(argv: list[str] | None = None) -> TrainingResult:
    """Parse flags (and an optional YAML file), validate them, and train."""
    return train(parse_args(argv))


__all__ = ["TrainingConfig", "TrainingResult", "main", "parse_args", "train"]
