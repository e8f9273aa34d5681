"""The `tripletclip` command line: one entry, one command per task, one convention for all of them.

Every command's options are one dataclass parsed by transformers' `HfArgumentParser`
(`dataset_builders.utils.options`): flags with underscores (``--output_dir``), ``--config FILE.yaml`` for settings
from YAML, ``--help`` for the list. Each part of the release keeps its commands next to its code (a ``COMMANDS`` list
in its ``cli`` module); the commands stay thin over library functions.

    tripletclip data world|convert-webdataset|inspect|coverage   TripletData: the built-in world, the released
                                                                  layout, inspection, concept coverage
    tripletclip synthesize                  hard negatives with an LLM (or rules) and a text-to-image model
    tripletclip train                       the trainer (same flags as `accelerate launch train_accelerate.py`)
    tripletclip evaluate                    SugarCrepe, Winoground, TripletData, retrieval, zero-shot, similarity
    tripletclip push model|dataset|space    publish on the Hub
    tripletclip convert-clip                a CLIP checkpoint as a TripletCLIP checkpoint, same weights
    tripletclip convert-official            the official TripletCLIP release as one checkpoint
"""

from __future__ import annotations

import importlib
import logging
import sys

from dataset_builders.utils.options import Command, run_command

COMMAND_MODULES = (
    "dataset_builders.cli",
    "dataset_builders.synthesis.cli",
    "modeling_tripletclip.training.cli",
    "modeling_tripletclip.evaluation.cli",
    "modeling_tripletclip.hub.cli",
)
PROG = "tripletclip"


def commands() -> dict[str, Command]:
    """Every command by its name (``"data world"``, ``"train"``, ...)."""
    found: dict[str, Command] = {}
    for name in COMMAND_MODULES:
        for command in importlib.import_module(name).COMMANDS:
            found[command.name] = command
    return found


def usage(available: dict[str, Command]) -> str:
    width = max(len(name) for name in available)
    lines = [f"usage: {PROG} COMMAND [options]   ({PROG} COMMAND --help for a command's options)", "",
             "TripletCLIP: CLIP with synthetic hard negatives. Data, training, evaluation and Hub release.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in available.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    available = commands()
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in available:
            return run_command(available[name], argv[words:], prog=f"{PROG} {name}")
    if argv and argv[0] not in ("-h", "--help"):
        groups = sorted({name.split()[0] for name in available})
        print(f"{PROG}: error: unknown command {' '.join(argv[:2])!r}; choose one of: "
              f"{', '.join(sorted(available))} (groups: {', '.join(groups)}).", file=sys.stderr)
        print(usage(available), file=sys.stderr)
        return 2
    print(usage(available))
    return 0 if argv else 2


if __name__ == "__main__":
    sys.exit(main())
