"""Every process a job started, found and killed: the harness's kill reaches what a real kill reaches.

A launcher (`accelerate launch`, `torchrun`) starts each worker in a session of its own, so a signal to the
launcher's process group misses them, and a worker whose launcher died is re-parented and no longer in the
launcher's tree. So each run of the harness carries a tag in its environment (inherited by every process it starts,
workers included): :func:`kill_all` ends the launcher, everything in its process tree (snapshotted before the first
signal) and everything carrying the tag; :func:`left` lists what of a run is still alive, wherever it was
re-parented.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import psutil

TAG = "TRIPLETCLIP_FAULT_RUN"


def tagged_env(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """``env`` with a new run tag; returns (env, tag)."""
    tag = uuid.uuid4().hex
    return {**env, TAG: tag}, tag


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def left(tag: str) -> list[psutil.Process]:
    """The live processes that carry ``tag`` (a run's launcher, its workers, their children)."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(TAG) == tag and _alive(process):
                found.append(process)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    return found


def describe(processes: list[psutil.Process]) -> str:
    parts = []
    for process in processes:
        try:
            command = " ".join(process.cmdline()[1:4])
        except psutil.Error:
            command = "?"
        parts.append(f"PID {process.pid} ({command})")
    return ", ".join(parts)


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and all its descendants, now."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def signal_all(processes: list[psutil.Process], sig: int) -> None:
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.Error:
            pass


def kill_all(process: subprocess.Popen, tag: str | None = None) -> None:
    """SIGKILL ``process``, its whole tree and every process tagged ``tag``; wait until they are gone (10 s)."""
    victims = tree(process.pid)  # snapshot first: killed parents' children are re-parented
    if tag:
        known = {p.pid for p in victims}
        victims += [p for p in left(tag) if p.pid not in known]
    signal_all(victims, signal.SIGKILL)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    psutil.wait_procs(victims, timeout=10)


def wait_until_gone(tag: str, timeout: float) -> tuple[list[psutil.Process], float]:
    """Wait up to ``timeout`` seconds for every process tagged ``tag`` to end; returns (those left, seconds)."""
    started = time.time()
    while True:
        remaining = left(tag)
        if not remaining or time.time() - started > timeout:
            return remaining, time.time() - started
        time.sleep(0.1)


def workers(process: subprocess.Popen) -> list[psutil.Process]:
    """The processes a launcher started (its descendants)."""
    return tree(process.pid)[1:]


__all__ = ["TAG", "describe", "kill_all", "left", "signal_all", "tagged_env", "tree", "wait_until_gone", "workers"]
