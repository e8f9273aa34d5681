"""The command-line convention of every command: one options dataclass, parsed by transformers' `HfArgumentParser`.

- Each command's options are the fields of one dataclass; a field's ``metadata["help"]`` is its help text. Flags use
  the field names, with underscores as in Hugging Face's examples (``--output_dir``); `HfArgumentParser` also accepts
  the hyphenated spelling. Abbreviations are refused (``--learning_rat`` never means ``--learning_rate``).
- ``--config FILE.yaml`` reads settings from YAML (keys are the field names); flags given on the command line win.
- A string field with ``metadata["nargs"] = "+"`` takes several values (what a shell makes of ``shard-{0..9}.tar``),
  joined with commas; a list field without defaults collects repeated flags (``--model A --model B``).
- After parsing, the dataclass's ``validate()`` (when it has one) runs before any work starts; its `ValueError` is
  printed as ``error: ...`` with exit status 2 by :func:`run_command`.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FLAG = "--config"


@dataclass(frozen=True)
class Command:
    """One command: its name (``"data world"``), its options dataclass and the function that runs it (returns the
    exit status)."""

    name: str
    options: type
    run: Callable[[Any], int | None]
    help: str
    description: str | None = None


def _fields(options: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(options) if f.init]


def build_parser(options: type, prog: str, description: str | None = None):
    """The `HfArgumentParser` of ``options`` (plus ``--config``)."""
    import argparse

    from transformers import HfArgumentParser

    class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    parser = HfArgumentParser(options, prog=prog, description=description, allow_abbrev=False,
                              formatter_class=_Formatter)
    parser.add_argument(CONFIG_FLAG, default=None, metavar="FILE.yaml",
                        help="read settings from a YAML file (keys are the flag names); flags given here win")
    hints = typing.get_type_hints(options)
    for action in parser._actions:
        field = next((f for f in _fields(options) if f.name == action.dest), None)
        if field is None:
            continue
        if field.metadata.get("nargs") == "+":
            action.nargs = "+"
        kind = typing.get_origin(hints.get(field.name)) or hints.get(field.name)
        if kind is list and field.default_factory is not dataclasses.MISSING and not field.default_factory():
            action.__class__ = argparse._ExtendAction  # repeated flags collect: --model A --model B
    return parser


def _read_config(path: str, options: type) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{CONFIG_FLAG} {file}: no such file.")
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{CONFIG_FLAG} {file} is not valid YAML ({error}).") from error
    if not isinstance(loaded, dict):
        raise ValueError(f"{CONFIG_FLAG} {file}: expected a mapping of setting names to values.")
    known = {f.name for f in _fields(options)}
    unknown = sorted(set(map(str, loaded)) - known)
    if unknown:
        raise ValueError(
            f"{CONFIG_FLAG} {file}: unknown settings {', '.join(unknown)}. Known settings are the flags of this "
            f"command (see --help): {', '.join(sorted(known))}."
        )
    return loaded


def parse_options(options: type, argv: Sequence[str] | None = None, *, prog: str, description: str | None = None):
    """Parse ``argv`` (default: ``sys.argv[1:]``) into an instance of the dataclass ``options`` and validate it.

    Raises:
        SystemExit: unknown or malformed flags (argparse's usage message, exit status 2).
        ValueError: a bad ``--config`` file or settings that ``validate()`` refuses.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(options, prog, description)
    config_path = None
    for index, token in enumerate(argv):
        if token == CONFIG_FLAG and index + 1 < len(argv):
            config_path = argv[index + 1]
        elif token.startswith(CONFIG_FLAG + "="):
            config_path = token.split("=", 1)[1]
    if config_path:
        values = _read_config(config_path, options)
        for action in parser._actions:
            if action.dest in values:
                action.default = values[action.dest]
                action.required = False
    namespace = parser.parse_args(argv)
    values = {}
    for f in _fields(options):
        value = getattr(namespace, f.name)
        if f.metadata.get("nargs") == "+" and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        values[f.name] = value
    parsed = options(**values)
    validate = getattr(parsed, "validate", None)
    if callable(validate):
        validate()
    return parsed


def run_command(command: Command, argv: Sequence[str] | None, prog: str,
                errors: tuple[type[BaseException], ...] = (ValueError, OSError)) -> int:
    """Parse, validate and run ``command``; a known error is printed as ``error: ...`` with exit status 2.

    In a process of a multi-process run, a watchdog first makes sure the process ends with its launcher
    (`processes.watch_run`)."""
    from .processes import watch_run

    watch_run()
    try:
        options = parse_options(command.options, argv, prog=prog, description=command.description or command.help)
        return int(command.run(options) or 0)
    except errors as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2


__all__ = ["CONFIG_FLAG", "Command", "build_parser", "parse_options", "run_command"]
