"""Output folders that belong to one job configuration, with a ledger of finished units: how long jobs resume.

Every long job (training, synthesis, WebDataset conversion, world generation) writes into an output folder it
*claims*: the job's **identity** (every setting that changes what is written, plus a fingerprint of its input) is
stored in the folder, and each finished unit of work (a shard, a part of the world) is recorded in the folder's
**ledger** as one small JSON file, written atomically *after* the unit's own files. So:

- a rerun of the same command finds its identity, skips every unit with a record, and redoes the rest: after a crash
  or a SIGKILL there are no duplicates and no holes;
- a rerun with other settings, or a folder some other tool filled, is refused before any work, with the settings that
  differ listed, unless the user asks to overwrite;
- a unit without a record is redone even if some of its files exist (they may be half the story).

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import atomic
from .errors import InputError


class FolderConflictError(InputError, FileExistsError):
    """The output folder holds another configuration's work (or something no job of ours wrote)."""


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
        left. Returns the state found (``"same"`` means resume)."""
        state = self.check(overwrite=overwrite, overwrite_flag=overwrite_flag)
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


__all__ = ["FolderConflictError", "OutputFolder", "differences"]
