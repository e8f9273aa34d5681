"""Output folders that belong to one job configuration, with a ledger of finished units: how long jobs resume.

Every long job (training, synthesis, WebDataset conversion, world generation) writes into an output folder it
*claims*: the job's **identity** (every setting that changes what is written, plus a fingerprint of its input) is
stored in the folder, and each finished unit of work (a shard, a part of the world) is recorded in the folder's
**ledger** as one small JSON file, written atomically *after* the unit's own files. So:

- a rerun of the same command finds its identity, skips every unit with a record, and redoes the rest: after a crash
  or a SIGKILL there are no duplicates and no holes;
- a rerun with other settings, or a folder some other tool filled, is refused before any work, with the settings that
  differ listed, unless the user asks to overwrite;
- a unit without a record is redone even if some of its files exist (they may be half the story);
- one live run writes a folder at a time: :meth:`OutputFolder.hold` (called by :meth:`~OutputFolder.claim`) takes an
  exclusive lock (`FolderLock`: ``flock`` on ``.tripletclip-lock`` in the folder, which names the holder's host, PID
  and start time). A second run is refused at once, naming the holder; the operating system drops the lock when its
  holder dies, so a killed run never leaves a lock to clean up. In a multi-process run the main process holds it for
  all of them.

    folder = OutputFolder(out, identity={"shards": shards, "split": "train"}, job="tripletclip data convert-webdataset")
    folder.claim(overwrite=False)                # refuse another configuration, clean what a killed run left
    for index, shard in enumerate(shards):
        if folder.is_done(index):
            continue
        ...write the unit's files atomically...
        folder.record(index, {"rows": n})        # the unit is done once this exists
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import atomic
from .errors import InputError


class FolderConflictError(InputError, FileExistsError):
    """The output folder holds another configuration's work (or something no job of ours wrote)."""


class FolderInUseError(InputError):
    """Another live run is writing the output folder."""


LOCK_FILE = ".tripletclip-lock"


class FolderLock:
    """One live writer per folder: an exclusive ``flock`` on ``<folder>/.tripletclip-lock``, with the holder's host,
    PID, start time and command written in the file for the refusal to name.

    The lock belongs to this process's open file: the operating system releases it when the process ends, however
    it ends (a SIGKILL included), so a stale lock file is never in the way: the next run takes it over. Taking a lock
    this process already holds (another job step on the same folder) succeeds and leaves the first holder in charge.
    A clean release deletes the file.
    """

    _held: dict[str, "FolderLock"] = {}  # this process's locks, by folder

    def __init__(self, folder: str | os.PathLike, job: str, *, name: str = LOCK_FILE):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.job = job
        self._fd: int | None = None

    @property
    def _key(self) -> str:
        return str(self.path.resolve())

    def holder(self) -> dict[str, Any] | None:
        """What the lock file says about its holder (None: no file, or not written yet)."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def acquire(self) -> bool:
        """Take the lock; False when this process holds it already.

        Raises:
            FolderInUseError: another live process holds it (the message names it and how to wait or stop it).
        """
        import fcntl

        if self._key in self._held:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise FolderInUseError(self.refusal()) from None
            try:  # the file may have been deleted by a holder's release in between: lock the one at the path
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        record = {"job": self.job, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                  "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])[:500]}
        if os.environ.get("TORCHELASTIC_RUN_ID") and os.getppid() > 1:
            record["launcher_pid"] = os.getppid()
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        self._fd = fd
        self._held[self._key] = self
        return True

    def refusal(self) -> str:
        info = self.holder() or {}
        pid, host = info.get("pid"), info.get("host")
        if pid is None:
            who = "another live process (it is starting; its details are not written yet)"
            stop = "stop that run"
        else:
            launcher = info.get("launcher_pid")
            here = host in (None, socket.gethostname())
            who = (f"`{info.get('job', 'another run')}` (PID {pid} on {host or 'this host'}, started "
                   f"{info.get('started_utc', '?')}" + (f", launched by PID {launcher}" if launcher else "") + ")")
            target = launcher or pid
            stop = (f"stop it (`kill {target}`" + ("" if here else f" on {host}") + ")")
        return (f"{self.folder} is being written by {who}. Wait for it to finish, or {stop}; then run this command "
                f"again (it resumes what the other run completed). A run that was killed holds nothing: its lock "
                f"goes with it.")

    def release(self) -> None:
        """Give the lock up (and delete the file); a no-op unless this object took it."""
        if self._fd is None:
            return
        if self._held.get(self._key) is self:
            del self._held[self._key]
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def hold_folder(folder: str | os.PathLike, job: str) -> FolderLock:
    """Take ``folder``'s lock for ``job`` (raises `FolderInUseError` when another live run holds it); use as a
    context manager, or call ``release()`` when done."""
    lock = FolderLock(folder, job)
    lock.acquire()
    return lock


def release_folder(folder: str | os.PathLike) -> bool:
    """Release this process's lock on ``folder`` (whoever took it here); returns whether one was held."""
    held = FolderLock._held.get(str((Path(folder) / LOCK_FILE).resolve()))
    if held is None:
        return False
    held.release()
    return True


OTHER_MESSAGE = ("{path} holds the work of `{job}` with a different configuration ({differences}). Rerun with the same "
                 "settings to resume it, choose another --output_dir, or pass {flag} to replace it.")
FOREIGN_MESSAGE = ("{path} is not empty and was not written by `{job}`. Choose a new or empty --output_dir, or pass "
                   "{flag} to replace what is there.")


def differences(found: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"key: X there, Y now"`` for every setting (nested mappings flattened as ``a.b``) that differs."""
    lines = []
    for key in sorted(set(found) | set(wanted), key=str):
        mine, theirs = wanted.get(key), found.get(key)
        name = f"{prefix}{key}"
        if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
            lines += differences(theirs, mine, prefix=f"{name}.")
        elif mine != theirs:
            lines.append(f"{name}: {theirs!r} there, {mine!r} now")
    return lines


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _dump(path: Path, value: Any) -> None:
    if path.suffix in (".yaml", ".yml"):
        import yaml

        atomic.write_text(path, yaml.safe_dump(value, sort_keys=False, allow_unicode=True))
    else:
        atomic.write_json(path, value, sort_keys=True, default=str)


class OutputFolder:
    """One job's claim on a folder: its identity file and its ledger of finished units.

    Args:
        path: the output folder.
        identity: the settings and input fingerprint that define what the job writes (JSON-able).
        job: the command, for messages (e.g. ``"tripletclip synthesize"``).
        identity_file: where the identity is kept, relative to ``path`` (``.json`` or ``.yaml``).
        ledger_dir: the folder of unit records, relative to ``path``.
        foreign_ok: names in a new folder that do not count as someone else's files (e.g. a cache); hidden names
            never count.
        other_message, foreign_message: the job's wording of the two refusals (placeholders ``{path}``, ``{job}``,
            ``{differences}``, ``{flag}``).
        refuse_foreign: refuse a non-empty folder that no job claimed (False: treat it as new, for jobs that write
            next to a user's files, like the trainer's output folder).
    """

    def __init__(self, path: str | os.PathLike, identity: Mapping[str, Any], job: str, *,
                 identity_file: str = ".tripletclip/identity.json", ledger_dir: str = ".tripletclip/ledger",
                 foreign_ok: Iterable[str] = (), other_message: str = OTHER_MESSAGE,
                 foreign_message: str = FOREIGN_MESSAGE, refuse_foreign: bool = True):
        self.path = Path(path)
        self.identity = dict(identity)
        self.job = job
        self.identity_path = self.path / identity_file
        self.ledger_path = self.path / ledger_dir
        self.foreign_ok = set(foreign_ok)
        self.other_message, self.foreign_message = other_message, foreign_message
        self.refuse_foreign = refuse_foreign
        self.lock = FolderLock(self.path, job)

    # ------------------------------------------------------------------ one live writer

    def hold(self) -> bool:
        """Take the folder's lock for this run (see `FolderLock`); False when this process holds it already.

        Raises:
            FolderInUseError: another live run is writing the folder.
        """
        return self.lock.acquire()

    def release(self) -> None:
        """Give up the lock this object took (the job is done); the process's end releases it in any case."""
        self.lock.release()

    # ------------------------------------------------------------------ identity

    def stored_identity(self) -> dict[str, Any] | None:
        """The identity recorded in the folder, or None (a new folder, or an unreadable record: not ours)."""
        try:
            value = _load(self.identity_path)
        except (FileNotFoundError, ValueError):
            return None
        except Exception:  # a YAML error is not a ValueError
            return None
        return value if isinstance(value, dict) else None

    def state(self) -> str:
        """``"new"`` (absent or empty), ``"same"`` (this job's identity), ``"other"`` (another identity) or
        ``"foreign"`` (files that no job of ours claimed)."""
        stored = self.stored_identity()
        if stored is not None:
            return "same" if _normal(stored) == _normal(self.identity) else "other"
        if not self.path.exists():
            return "new"
        if not self.path.is_dir():
            return "foreign"
        # Hidden entries (a staging marker, .DS_Store, a temporary) are nobody's data.
        present = [p for p in self.path.iterdir() if p.name not in self.foreign_ok and not p.name.startswith(".")]
        return "new" if not present or not self.refuse_foreign else "foreign"

    def describe_differences(self) -> str:
        """The settings that differ from the stored identity, as one line."""
        found = differences(self.stored_identity() or {}, self.identity)
        return "; ".join(found[:6]) + (" ..." if len(found) > 6 else "")

    def check(self, *, overwrite: bool = False, overwrite_flag: str = "--overwrite_output_dir") -> str:
        """Say whether the job may write here, without writing anything; returns :meth:`state`.

        Raises:
            FolderConflictError: the folder holds another configuration or foreign files, and ``overwrite`` is off.
        """
        state = self.state()
        if overwrite or state in ("new", "same"):
            return state
        shown = self.describe_differences() if state == "other" else ""
        template = self.other_message if state == "other" else self.foreign_message
        raise FolderConflictError(template.format(path=self.path, job=self.job, differences=shown, flag=overwrite_flag))

    def claim(self, *, overwrite: bool = False, overwrite_flag: str = "--overwrite_output_dir",
              clear: Iterable[str] = ()) -> str:
        """:meth:`check`, then take the folder: a folder of another configuration (with ``overwrite``) is emptied
        (``clear`` names what to delete, default: everything); a resumed one loses only the temporaries a killed run
        left. Returns the state found (``"same"`` means resume). The folder is held first (:meth:`hold`): a folder
        another live run is writing is refused before anything is looked at or cleaned."""
        took = self.hold()
        try:
            state = self.check(overwrite=overwrite, overwrite_flag=overwrite_flag)
        except BaseException:
            if took:
                self.release()
            raise
        if state in ("other", "foreign"):
            self.reset(clear)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.clean_temporaries(self.path, recursive=True)
        if state != "same":
            _dump(self.identity_path, self.identity)
        return state

    def reset(self, names: Iterable[str] = ()) -> None:
        """Delete the identity, the ledger and ``names`` (default: everything in the folder)."""
        names = list(names)
        targets = [self.path / n for n in names] if names else list(self.path.iterdir()) if self.path.is_dir() else []
        for target in [*targets, self.identity_path, self.ledger_path]:
            if target == self.lock.path:  # the live run's own lock stays
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)

    # ------------------------------------------------------------------ ledger

    def _record_path(self, unit: str | int) -> Path:
        name = f"{unit:05d}" if isinstance(unit, int) else str(unit)
        return self.ledger_path / f"{name}.json"

    def record(self, unit: str | int, value: Mapping[str, Any]) -> Path:
        """Record ``unit`` as finished (write its files first: the record is what makes it count)."""
        path = self._record_path(unit)
        atomic.write_json(path, dict(value), sort_keys=True, default=str)
        return path

    def record_for(self, unit: str | int) -> dict[str, Any] | None:
        """The record of ``unit``, or None when it has none (or an unreadable one: it is then redone)."""
        try:
            value = json.loads(self._record_path(unit).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def is_done(self, unit: str | int) -> bool:
        return self.record_for(unit) is not None

    def forget(self, unit: str | int) -> None:
        self._record_path(unit).unlink(missing_ok=True)

    def records(self) -> dict[str, dict[str, Any]]:
        """Every unit's record, by unit name."""
        if not self.ledger_path.is_dir():
            return {}
        found = {}
        for path in sorted(self.ledger_path.glob("*.json")):
            record = self.record_for(path.stem)
            if record is not None:
                found[path.stem] = record
        return found


def _normal(value: Any) -> Any:
    """Identities compare as JSON would store them (tuples are lists, keys are strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


__all__ = ["FolderConflictError", "FolderInUseError", "FolderLock", "LOCK_FILE", "OutputFolder", "differences",
           "hold_folder", "release_folder"]
