"""The processes of a multi-process run never outlive it: each one stops, with a message, once its launcher is gone.

`accelerate launch` (and `torchrun`) start every worker in a session of its own, so a signal to the launcher's
process group does not reach them: a launcher killed with SIGKILL would leave its workers running, unseen, still
writing the output folder. :func:`watch_run` starts a small watchdog thread in each process of a multi-process run
(``WORLD_SIZE`` > 1); it ends the process, within a second, when

- its launcher is gone (the process was started by a launcher and its parent changed: it was re-parented after the
  launcher died), or
- the launcher sends SIGTERM, which it does to every other process when one process of the run fails or is killed.

Either way the process writes one ``error: ...`` line saying what happened and exits at once (``os._exit``: no
clean-up that could wait on a peer that is gone). Everything the jobs commit is written atomically, so what was
complete (the newest checkpoint, every finished shard) stays intact and the job's usual resume command continues.
A process whose peer dies without a launcher (processes started by hand, one per machine) learns it from its next
collective, which fails at once (`modeling_tripletclip.training.peers`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

#: How often the watchdog looks at its parent (seconds).
POLL_SECONDS = 0.5
#: Exit status of a process that stopped because its launcher was gone.
LAUNCHER_GONE_STATUS = 1
#: Set by the launcher in every process it starts (torchrun, accelerate launch).
LAUNCHER_VARIABLE = "TORCHELASTIC_RUN_ID"

RESUME_HINT = ("What was completely written (the newest complete checkpoint, every finished shard) is intact; run "
               "the same command again to continue (training: with --resume_from_checkpoint latest).")

_state: dict = {"watching": False}
_leaving = threading.Lock()


def world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def process_name() -> str:
    """``"process R of N"`` from the launcher's variables."""
    return f"process {os.environ.get('RANK', '?')} of {world_size()}"


def leave(message: str, status: int = LAUNCHER_GONE_STATUS) -> None:
    """Write ``message`` as one ``error:`` line (giving up after 2 s if nobody reads it) and end this process now."""
    if not _leaving.acquire(blocking=False):  # another thread is already leaving
        threading.Event().wait()
    who = f"{process_name()}, " if "RANK" in os.environ else ""
    line = f"{os.path.basename(sys.argv[0]) or 'python'} ({who}PID {os.getpid()}): error: {message}\n"

    def write() -> None:
        try:
            os.write(2, line.encode("utf-8", "replace"))
        except OSError:
            pass

    # A launcher that was killed may have left a pipe nobody reads: the write must not keep the process alive.
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(2.0)
    os._exit(status)


def _launcher_gone(launcher: int | None) -> str:
    which = f" (PID {launcher})" if launcher else ""
    return (f"the launcher of this run{which} is gone (killed or crashed), so this process stops instead of running "
            f"on unseen. {RESUME_HINT}")


def _stopped(launcher: int | None) -> str:
    if launcher is not None and os.getppid() != launcher:
        return _launcher_gone(launcher)
    return ("stopped by SIGTERM: the launcher stops every process of the run when one of them fails or is killed "
            f"(its message names which), or the run was stopped. {RESUME_HINT}")


def _watch(launcher: int | None, wakeup: int | None) -> None:
    import select

    while True:
        if launcher is not None and os.getppid() != launcher:
            leave(_launcher_gone(launcher))
        if wakeup is None:
            threading.Event().wait(POLL_SECONDS)
            continue
        ready, _, _ = select.select([wakeup], [], [], POLL_SECONDS)
        if ready:
            try:
                received = os.read(wakeup, 512)
            except OSError:
                received = b""
            if signal.SIGTERM in received:
                leave(_stopped(launcher), 128 + signal.SIGTERM)


def watch_run() -> bool:
    """In a process of a multi-process run, start the watchdog (once per process); returns whether it runs.

    Call it first thing in a job's entry (every command line does, through `options.run_command`).
    """
    if _state["watching"] or world_size() <= 1:
        return False
    _state["watching"] = True
    parent = os.getppid()
    launched = bool(os.environ.get(LAUNCHER_VARIABLE))
    if launched and parent == 1:  # the launcher died before this process got here: it was re-parented to init
        leave(_launcher_gone(None))
    launcher = parent if launched else None
    wakeup = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM: the Python handler runs when the main thread is free; the wake-up byte reaches the watchdog even
        # when the main thread is busy in a long native call.
        signal.signal(signal.SIGTERM, lambda *_: leave(_stopped(launcher), 128 + signal.SIGTERM))
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        try:
            previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            if previous == -1:
                wakeup = read_end
            else:  # someone else's wake-up descriptor: give it back, keep the handler alone
                signal.set_wakeup_fd(previous)
        except (ValueError, OSError):
            wakeup = None
        if wakeup is None:
            os.close(read_end)
            os.close(write_end)
    threading.Thread(target=_watch, args=(launcher, wakeup), daemon=True, name="tripletclip-run-watchdog").start()
    return True


def watch_parent() -> bool:
    """In a worker process that a pool started (datatrove's local executor), start the watchdog on its parent: when
    the run's main process is gone (SIGKILLed, crashed), the pool's parent goes with it and the worker, re-parented,
    stops within a second with one ``error:`` line. Returns whether a watchdog started (once per process; not in
    the main process of a run)."""
    import multiprocessing

    try:  # datatrove's pools come from `multiprocess` (multiprocessing with dill)
        import multiprocess
    except ImportError:
        multiprocess = multiprocessing
    if _state["watching"] or (multiprocessing.parent_process() is None and multiprocess.parent_process() is None):
        return False
    _state["watching"] = True
    parent = os.getppid()
    if parent == 1:
        leave(_launcher_gone(None))
    threading.Thread(target=_watch, args=(parent, None), daemon=True, name="tripletclip-run-watchdog").start()
    return True


def _watch_after_fork() -> None:
    _state["watching"] = True
    threading.Thread(target=_watch, args=(os.getppid(), None), daemon=True, name="tripletclip-run-watchdog").start()


def watch_forks() -> None:
    """Every process this one forks from now on (a pool's helper, such as datatrove's task-queue manager) stops when
    this process is gone, as `watch_parent` does for pool workers. Call once, in the process that starts the run."""
    if not _state.get("forks"):
        _state["forks"] = True
        os.register_at_fork(after_in_child=_watch_after_fork)


__all__ = ["POLL_SECONDS", "leave", "process_name", "watch_forks", "watch_parent", "watch_run", "world_size"]
