"""A peer that dies: two training processes started as two machines would start them (no launcher watching both),
rank 1 killed mid-step; rank 0 must exit within the process-group timeout, with a message naming rank 1."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from .jobs import REPO, PYTHON, free_port


def kill_peer_trial(job, out: Path, cwd: Path, timeout: float) -> tuple[list[str], float]:
    """Start ``job``'s two processes, kill rank 1 after the first checkpoint; returns (problems, seconds rank 0 took
    to exit after its peer died)."""
    from modeling_tripletclip.training.checkpoints import list_checkpoints

    port = str(free_port())
    processes = []
    for rank in (0, 1):
        env = {**job.env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"}
        processes.append(subprocess.Popen([PYTHON, str(REPO / "train_accelerate.py"), *job.flags(out)], env=env,
                                          cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    problems = []
    deadline = time.time() + 600
    while time.time() < deadline and all(p.poll() is None for p in processes) and not list_checkpoints(out):
        time.sleep(0.05)
    if any(p.poll() is not None for p in processes):
        for process in processes:
            process.kill()
        return ["the run ended before rank 1 could be killed"], 0.0
    time.sleep(0.3)  # into the next steps
    processes[1].send_signal(signal.SIGKILL)
    died = time.time()
    try:
        _, stderr = processes[0].communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        processes[0].kill()
        _, stderr = processes[0].communicate()
        problems.append(f"rank 0 was still running {timeout + 30:.0f} s after its peer died")
    seconds = time.time() - died
    processes[1].wait()
    if processes[0].returncode == 0:
        problems.append("rank 0 exited with status 0 although its peer was lost")
    lowered = stderr.lower()
    if "rank 1" not in lowered or "lost" not in lowered:
        problems.append(f"rank 0's message does not name the lost process: {stderr.strip().splitlines()[-3:]}")
    return problems, seconds
