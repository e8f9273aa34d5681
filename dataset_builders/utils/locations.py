"""Is this a local path or a Hub id? One rule for every command.

A value names a **local path** when it exists on disk, or when it cannot be a Hub id: it starts with ``.``, ``/`` or
``~``, contains a backslash, has more than one ``/``, or holds a glob or brace pattern (``*``, ``?``, ``[``, ``{``).
Anything else is a **Hub id**: ``namespace/name``, or a bare ``name`` for the Hub's canonical repositories. A bare name
that is neither on disk nor on the Hub is reported with both possibilities in the message, by whoever tries to load it.
"""

from __future__ import annotations

import os
from pathlib import Path

_PATTERN_CHARACTERS = ("*", "?", "[", "{")


def cache_dir() -> Path:
    """Where the package caches what it makes or installs (the built-in world, WordNet, benchmark runs):
    ``$TRIPLETCLIP_CACHE``, else ``~/.cache/tripletclip``."""
    return Path(os.environ.get("TRIPLETCLIP_CACHE", Path.home() / ".cache" / "tripletclip"))


def is_pattern(value: str) -> bool:
    """Whether ``value`` is a shell-style glob or a brace range (``shard-{0..9}.tar``)."""
    return any(character in value for character in _PATTERN_CHARACTERS)


def is_local(value: str | os.PathLike) -> bool:
    """Whether ``value`` names a local file or folder (existing or not) rather than a Hub id."""
    if isinstance(value, Path):
        return True
    text = os.fspath(value)
    if Path(text).expanduser().exists():
        return True
    return (
        text.startswith((".", "/", "~"))
        or "\\" in text
        or text.count("/") > 1
        or is_pattern(text)
        or not is_hub_id(text)
    )


def is_hub_id(value: str) -> bool:
    """Whether ``value`` is shaped like a Hub repository id (``name`` or ``namespace/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(value, str) or not value or value.strip() != value or value.count("/") > 1:
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def local_path(value: str | os.PathLike) -> Path | None:
    """``value`` as an absolute-able local `Path` (``~`` expanded) when it names one, else None (a Hub id)."""
    return Path(os.fspath(value)).expanduser() if is_local(value) else None


__all__ = ["cache_dir", "is_hub_id", "is_local", "is_pattern", "local_path"]
