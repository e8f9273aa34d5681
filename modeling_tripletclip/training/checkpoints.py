"""Resumable checkpoints: `accelerator.save_state` folders named by step, written atomically, the last K kept.

A checkpoint is written to ``checkpoint-<step>.tmp`` and renamed to ``checkpoint-<step>`` only once every process has
finished writing and the trainer state (step, data positions, skip counts) is in it, so a run killed at any moment
leaves either a complete checkpoint or none; a leftover ``.tmp`` folder is ignored and cleaned up.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
CONFIG_FILE = "training_config.yaml"


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
    tmp = output_dir / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    (tmp / f"data_state_rank{accelerator.process_index}.json").write_text(json.dumps(rank_state))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if config is not None:
            config.save(tmp / CONFIG_FILE)
        _write_atomic(tmp / TRAINER_STATE, json.dumps({"step": step, **shared_state}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
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


def clean_partial_checkpoints(output_dir: str | Path) -> None:
    for path in Path(output_dir).glob("checkpoint-*.tmp"):
        shutil.rmtree(path, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
