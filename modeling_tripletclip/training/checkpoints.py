"""Resumable checkpoints: `accelerator.save_state` folders named by step, written atomically, the last K kept.

A checkpoint is written to a temporary folder beside ``checkpoint-<step>`` (`dataset_builders.utils.atomic`) and
renamed into place only once every process has finished writing and the trainer state (step, data positions, skip
counts) is in it, so a run killed at any moment leaves either a complete checkpoint or none; a leftover temporary
folder is ignored and cleaned up. The output folder itself belongs to one run configuration
(`dataset_builders.utils.output_folders.OutputFolder`): :func:`claim_output_dir`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from dataset_builders.utils import atomic
from dataset_builders.utils.errors import InputError
from dataset_builders.utils.output_folders import OutputFolder, release_folder

from .tracking import METRICS_FILE

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
CONFIG_FILE = "training_config.yaml"
TRAIN_JOB = "train_accelerate.py"


def output_folder(config, output_dir: str | Path) -> OutputFolder:
    """The run's claim on its output folder: what it trains (`TrainingConfig.run_identity`) and its checkpoints."""
    return OutputFolder(
        output_dir, config.run_identity(), TRAIN_JOB, refuse_foreign=False,
        other_message="{path} holds a run with another configuration ({differences}). Choose another --output_dir, "
                      "or replace it with {flag}.",
    )


def claim_output_dir(config, output_dir: str | Path) -> None:
    """Refuse to mix two runs in one folder; record this run's configuration (main process, before anything else).

    A folder holding this run is continued only with ``--resume_from_checkpoint``; one holding another run is
    replaced only with ``--overwrite_output_dir`` (its checkpoints and metrics are removed first). The folder stays
    held (one live run at a time) until :func:`release_output_dir` or the process's end.
    """
    output_dir = Path(output_dir)
    folder = output_folder(config, output_dir)
    folder.hold()  # another live run writing this folder is refused before anything is read or removed
    state = folder.state()
    if config.resume_from_checkpoint and state == "other":
        raise InputError(
            f"Cannot resume: the run in {output_dir} was made with other settings ({folder.describe_differences()}). "
            f"Resume with the same settings, or start a new run in another --output_dir."
        )
    if not config.resume_from_checkpoint and state == "same" and not config.overwrite_output_dir:
        raise InputError(
            f"{output_dir} already holds this run. Continue it with --resume_from_checkpoint latest, or start over "
            f"with --overwrite_output_dir."
        )
    if config.overwrite_output_dir and not config.resume_from_checkpoint and state in ("same", "other"):
        folder.reset([p.name for p in list_checkpoints(output_dir)] + [METRICS_FILE])
    folder.claim(overwrite=config.overwrite_output_dir)
    config.save(output_dir / CONFIG_FILE)


def release_output_dir(output_dir: str | Path) -> None:
    """Let other runs write ``output_dir`` again (the main process, once the run is done)."""
    release_folder(output_dir)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir() and (path / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def save_checkpoint(accelerator, output_dir: str | Path, step: int, rank_state: dict, shared_state: dict,
                    config=None, total_limit: int | None = None) -> Path:
    """Save the full training state of every process for ``step``; returns the checkpoint folder.

    ``rank_state`` is this process's own state (data position, skip counts); ``shared_state`` is written once.
    """
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = atomic.temporary_path(final, unique=False)  # one name all processes agree on
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        atomic.write_json(tmp / f"data_state_rank{accelerator.process_index}.json", rank_state)
    except OSError as error:
        if atomic.is_disk_full(error):  # free what was written: the previous checkpoint is the newest complete one
            shutil.rmtree(tmp, ignore_errors=True)
            raise atomic.DiskFullError(final, error) from error
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if config is not None:
            config.save(tmp / CONFIG_FILE)
        atomic.write_json(tmp / TRAINER_STATE, {"step": step, **shared_state})
        atomic.commit(tmp, final)
        if total_limit:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resolve_checkpoint(output_dir: str | Path, requested: str) -> list[Path]:
    """Candidates to resume from, best first: for 'latest' every complete checkpoint newest first (a corrupt one
    falls back to the one before), for a path that folder alone."""
    if requested == "latest":
        return list(reversed(list_checkpoints(output_dir)))
    path = Path(requested)
    if not path.is_dir():
        raise ValueError(
            f"--resume_from_checkpoint {requested}: no such folder. Give a checkpoint-<step> folder or 'latest'."
        )
    if not (path / TRAINER_STATE).is_file():
        raise ValueError(
            f"--resume_from_checkpoint {requested}: not a complete checkpoint (no {TRAINER_STATE}); it may have been "
            f"interrupted while saving. Use 'latest' to pick the newest complete one."
        )
    return [path]


def load_checkpoint(accelerator, path: Path) -> tuple[dict, dict]:
    """Restore model, optimizer, scheduler and RNG states; return (shared trainer state, this process's state)."""
    shared = json.loads((path / TRAINER_STATE).read_text())
    rank_file = path / f"data_state_rank{accelerator.process_index}.json"
    if not rank_file.is_file():
        raise ValueError(
            f"{path} was saved by a run with fewer processes (no {rank_file.name}); resume with the same number of "
            f"processes it was saved with."
        )
    rank_state = json.loads(rank_file.read_text())
    accelerator.load_state(str(path))
    return shared, rank_state


