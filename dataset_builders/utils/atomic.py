"""Atomic writes: a file or a folder appears under its name complete, or not at all.

Every file and folder the package commits (parquet shards, cards, manifests, ledger records, reports, checkpoints,
staged Hub folders) is first written under a temporary name beside its final one and then renamed into place
(``os.replace`` is atomic on one file system). A process killed at any moment therefore leaves the previous version or
none, never half a file under a name a reader trusts; the temporaries it leaves start with a dot and end in ``.tmp``,
so no data-file pattern matches them, and :func:`clean_temporaries` removes them on the next run.

A full disk is reported as a :class:`DiskFullError` that names the file and says what to do, and the temporary is
removed, so the previous version stays valid and a rerun after freeing space resumes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMPORARY_SUFFIX = ".tmp"
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFullError(OSError):
    """The disk (or the quota) is full. Nothing half-written was left; the previous version of the file is intact."""

    def __init__(self, path: str | os.PathLike, error: OSError, advice: str | None = None):
        path = Path(path)
        advice = advice or (f"Free space on the disk that holds {path.parent} and rerun the same command: it resumes "
                            f"from what was completely written.")
        super().__init__(error.errno, f"The disk is full: {path} could not be written ({error.strerror or error}). "
                                      f"{advice}")
        self.path = path
        self.error = error
        self.advice = advice

    def __reduce__(self):  # rebuilt from its own arguments (a process pool sends it back to the main process)
        return type(self), (self.path, self.error, self.advice)


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _DISK_FULL


def temporary_path(path: str | os.PathLike, *, unique: bool = True) -> Path:
    """A hidden name beside ``path`` for writing it: ``.<name>.<random>.tmp`` (``.<name>.tmp`` when not ``unique``,
    for a name several processes must agree on)."""
    path = Path(path)
    middle = f".{secrets.token_hex(4)}" if unique else ""
    return path.with_name(f".{path.name}{middle}{TEMPORARY_SUFFIX}")


def is_temporary(path: str | os.PathLike) -> bool:
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the finished ``tmp`` (file or folder) to ``path``, replacing what is there.

    A folder that already exists is first renamed aside and deleted after the new one is in place, so a reader sees the
    old folder or the new one.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        if tmp.is_dir() and path.is_dir():
            old = temporary_path(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(path, error) from error
        raise
    return path


def _discard(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False, unique: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write into; on success it replaces ``path``, on any error it is deleted.

    With ``folder=True`` the temporary is an empty folder (created); otherwise nothing is created and the body writes a
    file there. Files get the permissions of a normal new file (they are meant to be shared).

    Raises:
        DiskFullError: the disk filled up while writing or committing (the temporary is gone, ``path`` unchanged).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path, unique=unique)
    _discard(tmp)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        if not folder and tmp.exists():
            os.chmod(tmp, 0o666 & ~_UMASK)
        commit(tmp, path)
    except BaseException as error:
        _discard(tmp)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path, error) from error
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any, **dumps: Any) -> Path:
    """Write ``value`` as JSON to ``path`` atomically (``indent=2`` and a final newline unless told otherwise)."""
    dumps.setdefault("indent", 2)
    return write_text(path, json.dumps(value, **dumps) + "\n")


def save_figure(figure, path: str | os.PathLike, **savefig: Any) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            figure.savefig(handle, format="png", **savefig)
    return path


def clean_temporaries(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporaries a killed run left in ``folder`` (and below it, with ``recursive``); returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in (folder.rglob("*") if recursive else folder.iterdir()) if is_temporary(p)]
    for path in sorted(found, key=lambda p: len(p.parts), reverse=True):
        _discard(path)
    return found


__all__ = [
    "DiskFullError",
    "atomic_path",
    "clean_temporaries",
    "commit",
    "is_disk_full",
    "is_temporary",
    "save_figure",
    "temporary_path",
    "write_bytes",
    "write_json",
    "write_text",
]
