"""`tripletclip train`: the trainer from the package's command line (same flags as train_accelerate.py).

For several processes or mixed precision, launch through Accelerate instead:
`accelerate launch train_accelerate.py [flags]` (or `accelerate launch -m modeling_tripletclip.cli train [flags]`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from dataset_builders.utils.options import Command

from .config import DESCRIPTION, TrainingConfig


def _train(config: TrainingConfig) -> int:
    from .trainer import train

    with leave_cleanly_on_error():
        train(config)
    return 0


@contextlib.contextmanager
def leave_cleanly_on_error():
    """In a multi-process run, an error ends this process at once, after its message: interpreter teardown would
    destroy a process group whose peers are gone or still waiting in a collective, which can block forever."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    try:
        yield
    except BaseException as error:  # noqa: BLE001 - every error ends the process; the message says what happened
        from dataset_builders.utils.errors import InputError

        status = 2 if isinstance(error, (InputError, ValueError)) else 1
        rank = os.environ.get("RANK", "?")
        logging.getLogger("tripletclip.train").error("train_accelerate.py (rank %s): error: %s", rank, error)
        print(f"train_accelerate.py (rank {rank}): error: {error}", file=sys.stderr, flush=True)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(status)


def cli_main(argv: list[str] | None = None) -> int:
    """`train_accelerate.py`: parse, validate and train; bad settings and known errors exit with a message."""
    from dataset_builders.utils.options import run_command

    return run_command(COMMANDS[0], argv, prog="train_accelerate.py")


COMMANDS = [
    Command("train", TrainingConfig, _train,
            help="train TripletCLIP or a baseline (defaults: tiny model on the built-in world)",
            description=DESCRIPTION + " For several processes use `accelerate launch train_accelerate.py`."),
]
