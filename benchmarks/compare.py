"""The paper's comparison in miniature, on this machine's CPU.

    python benchmarks/compare.py            # the full comparison (see benchmarks/README.md for its wall time)
    python benchmarks/compare.py --smoke    # a microscopic version of the same design, for a check in minutes

Trains CLIP, LaCLIP+HN, NegCLIP, TripletCLIP and the negative-images-only ablation (3 seeds each, same initial
weights per seed, same world, batch and optimizer steps), plus CLIP and NegCLIP with a doubled batch (matched images
seen), each through the shipped trainer; evaluates them on the world's held-out compositions; and writes
``comparison.json``, ``comparison.md``, ``comparison.png`` and ``similarity.png`` into ``--output-dir``.
Finished runs are kept in ``--work-dir`` and reused when the command is run again with the same settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="microscopic settings: checks the pipeline in minutes")
    parser.add_argument("--output-dir", default=None,
                        help="where the JSON, Markdown and PNG results go (default: benchmarks/results; "
                             "with --smoke: <work-dir>/results)")
    parser.add_argument("--work-dir", default=None,
                        help="world, initial models and runs (default: $TRIPLETCLIP_CACHE or ~/.cache/tripletclip, "
                             "sub-folder comparison-full or comparison-smoke)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="runs trained at once, one CPU thread each (0: one after another in this process)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the results of the runs already finished in --work-dir (e.g. "
                             "while a comparison is still running, or after an interrupted one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds (default 0 1 2)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from benchmarks.comparison import ComparisonSettings
    from benchmarks.comparison.report import write_outputs
    from benchmarks.comparison.runner import finished_runs, run_all

    settings = ComparisonSettings.smoke() if args.smoke else ComparisonSettings.full()
    if args.seeds:
        settings.seeds = tuple(args.seeds)
    try:
        settings.validate()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    from dataset_builders.utils.locations import cache_dir

    cache = cache_dir()
    work_dir = Path(args.work_dir) if args.work_dir else cache / f"comparison-{settings.name}"
    output_dir = Path(args.output_dir) if args.output_dir else (
        work_dir / "results" if args.smoke else REPO_ROOT / "benchmarks" / "results")

    started = time.time()
    if args.report_only:
        records = finished_runs(settings, work_dir)
        if not records:
            print(f"No finished run in {work_dir / 'runs'}: run the comparison first (without --report-only).",
                  file=sys.stderr)
            return 1
        print(f"{len(records)} of {len(settings.runs())} runs finished; reporting those.")
    else:
        records = run_all(settings, work_dir, jobs=args.jobs)
    wall = time.time() - started

    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "torch": torch.__version__, "jobs": args.jobs}
    table = write_outputs(settings, records, work_dir, output_dir, wall_seconds=wall, machine=machine)
    print(table)
    print(f"Results in {output_dir} (comparison.json, comparison.md, comparison.png, similarity.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
