"""One comparison run in its own process (one thread): ``python -m benchmarks.comparison.worker '<json>'``.

Started by :func:`benchmarks.comparison.runner.run_all`; the JSON carries the settings, the run, the world folder,
the initial model and the run folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    torch.set_num_threads(1)
    from .design import ComparisonSettings, RunSpec
    from .runner import run_one

    payload = json.loads((argv if argv is not None else sys.argv[1:])[0])
    settings = ComparisonSettings.from_dict(payload["settings"])
    evaluation = payload.get("eval_world_dir")
    run_one(settings, RunSpec(**payload["run"]), Path(payload["world_dir"]), Path(payload["initial_model"]),
            Path(payload["run_dir"]), Path(evaluation) if evaluation else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
