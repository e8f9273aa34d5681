"""Where each job's disk fills up in the harness: the write that commits a checkpoint, a shard, a report or a staged
file fails with ``ENOSPC`` (injected by ``inject/sitecustomize.py`` in every process of the job).

Each :class:`DiskPoint` names the edge and the call that fails, what that write is, and the part of the path the
job's message must name (the message must also say that the disk is full).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INJECT = Path(__file__).resolve().parent / "inject"


@dataclass(frozen=True)
class DiskPoint:
    edge: str
    after: int
    match: str
    what: str
    where: str

    def env(self) -> dict[str, str]:
        return {"TRIPLETCLIP_FAULT_DISK": f"{self.edge}:{self.after}:{self.match}"}


_SHARD = DiskPoint("parquet", 2, "parquet", "the second parquet shard", "-of-")
DISK_FAULTS: dict[str, list[DiskPoint]] = {
    "train-1p": [DiskPoint("torch.save", 2, "optimizer", "the optimizer state of the second checkpoint",
                           "checkpoint-6")],
    "train-2p": [DiskPoint("torch.save", 2, "optimizer", "the optimizer state of the second checkpoint",
                           "checkpoint-6")],
    "synthesis-1p": [_SHARD],
    "synthesis-2p": [DiskPoint("parquet", 1, "parquet", "each process's first parquet shard", "-of-")],
    "convert": [_SHARD],
    "world": [DiskPoint("parquet", 2, "parquet", "the second parquet shard", "train/data")],
    "report": [DiskPoint("replace", 1, "report.json", "the report's commit", "report.json")],
    "push": [DiskPoint("safetensors", 1, "disk-", "the staged weights", "disk-")],
}


def with_injection(env: dict[str, str], point: DiskPoint | None = None, forbid: bool = False) -> dict[str, str]:
    """``env`` with the injection module on the path and the fault (or the loading guard) switched on."""
    extra = dict(point.env()) if point else {}
    if forbid:
        extra["TRIPLETCLIP_FAULT_FORBID"] = "1"
    return {**env, **extra, "PYTHONPATH": f"{INJECT}:{env.get('PYTHONPATH', '')}"}
