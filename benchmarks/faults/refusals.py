"""Run many ``tripletclip`` command lines in one Python process and record what each did:
``python -m benchmarks.faults.refusals REQUEST.json RESULT.json``.

REQUEST is a JSON list of argument lists; RESULT gets, per command line, its exit status and everything it printed.
The harness starts this module with the loading guard of ``inject/sitecustomize.py`` switched on, so a command that
loads a model, reads a dataset or opens an image before refusing its configuration says ``FORBIDDEN``. One process
for all of them keeps the check of every invalid configuration within a few seconds of start-up.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def run_all(commands: list[list[str]]) -> list[dict]:
    from modeling_tripletclip.cli import main

    results = []
    for argv in commands:
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                status = main(list(argv))
            except SystemExit as stop:  # argparse refuses by exiting
                status = stop.code if isinstance(stop.code, int) else 2
            except Exception as error:  # noqa: BLE001 - a crash is a result here, reported as such
                status = 1
                print(f"CRASH: {type(error).__name__}: {error}", file=output)
        results.append({"argv": argv, "returncode": status, "output": output.getvalue()})
    return results


def main() -> int:
    request, result = sys.argv[1:3]
    with open(request, encoding="utf-8") as handle:
        commands = json.load(handle)
    with open(result, "w", encoding="utf-8") as handle:
        json.dump(run_all(commands), handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
