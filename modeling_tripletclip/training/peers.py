"""When a process of a multi-process run is lost: find which, say so, and stop instead of waiting forever.

A process that dies (killed, out of memory, its machine gone) makes the next collective of every other process fail
at once (its connections close) or, when nothing closes them, time out after ``--ddp_timeout`` seconds. The trainer
turns that failure into a :class:`PeerLostError` naming the lost ranks: every surviving process marks itself alive
in the run's rendezvous store and, after a short grace period, the ranks that did not are the lost ones.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)

ALIVE_KEY = "tripletclip/alive/{rank}"


_FAILURE_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "connection refused", "broken pipe",
                  "timed out", "timeout", "processgroup", "socket")


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process is gone (or did not answer)."""
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    return isinstance(error, RuntimeError) and any(word in str(error).lower() for word in _FAILURE_WORDS)


def lost_peers(accelerator, grace: float = 3.0) -> list[int] | None:
    """The ranks that are gone, seen from this process (None when it cannot tell: the store is gone too, which
    happens when rank 0, which holds it, was lost)."""
    import torch.distributed as dist

    rank, world = accelerator.process_index, accelerator.num_processes
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(ALIVE_KEY.format(rank=rank), "1")
        deadline = time.time() + grace
        alive = {rank}
        while time.time() < deadline and len(alive) < world:
            alive |= {r for r in range(world) if store.check([ALIVE_KEY.format(rank=r)])}
            time.sleep(0.1)
        return [r for r in range(world) if r not in alive]
    except Exception:  # the store itself is unreachable
        return [0] if rank != 0 else None


class PeerLostError(RuntimeError):
    """A process of the run was lost; this one stops. The newest complete checkpoint stays valid."""

    def __init__(self, accelerator, lost: list[int] | None, output_dir: str | Path, error: BaseException):
        from .checkpoints import list_checkpoints

        rank, world = accelerator.process_index, accelerator.num_processes
        if lost:
            who = ", ".join(f"rank {r}" for r in lost)
            what = f"lost {who} of the {world} processes"
        else:
            others = ", ".join(f"rank {r}" for r in range(world) if r != rank)
            what = f"lost contact with the other processes ({others}); which one stopped first is unknown"
        checkpoints = list_checkpoints(output_dir)
        kept = (f"The newest complete checkpoint, {checkpoints[-1]}, is intact" if checkpoints else
                "No checkpoint had been written yet")
        cause = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        super().__init__(
            f"Process {rank} {what} during training ({cause}). {kept}. Start all {world} processes again with "
            f"--resume_from_checkpoint latest (raise --ddp_timeout if a slow process, not a dead one, caused this)."
        )
        self.lost = lost
        self.rank = rank


__all__ = ["PeerLostError", "is_peer_failure", "lost_peers"]
