"""The paper's comparison in miniature, on this machine's CPU.

    python -m benchmarks.comparison --select_settings     # fine-tuning: build the base, choose on validation (CLIP only)
    python -m benchmarks.comparison                       # every objective fine-tuned from one CLIP-pretrained base
    python -m benchmarks.comparison --protocol scratch    # every objective from the same random weights, as long
    python -m benchmarks.comparison --smoke               # a microscopic version of the same design, in minutes

Trains CLIP, LaCLIP+HN, NegCLIP, TripletCLIP and the negative-images-only ablation (``ComparisonSettings.methods``
adds CyCLIP and CyCLIP + TripletCLIP), the same seeds each, same starting weights per seed, same world, batch and optimizer steps,
plus CLIP and NegCLIP with a doubled batch (matched images seen), each through the shipped trainer; evaluates them on
the world's held-out compositions; and writes ``comparison.json``, ``comparison.md``, ``comparison.png`` and
``similarity.png`` into ``--output_dir``. Finished runs (and the fine-tuning base) are kept in ``--work_dir`` and
reused when the command is run again with the same settings; an unfinished run continues from its last checkpoint:
an interrupted comparison resumes. Each finished run's record (and the fine-tuning base) is also kept in
``--output_dir`` (``runs/``, ``finetune-base/``): committed with the results, they let the comparison continue on
another machine, where the runs and the base found there are adopted instead of trained again.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class CompareOptions:
    """Options of ``python -m benchmarks.comparison``."""

    protocol: str = field(default="finetune", metadata={
        "help": "finetune (primary): every objective fine-tuned from one shared base pretrained with the CLIP loss "
                "(the paper's Table 7); scratch: every objective from the same random weights (the paper's "
                "pretraining)"})
    smoke: bool = field(default=False, metadata={"help": "microscopic settings: checks the pipeline in minutes"})
    output_dir: str | None = field(default=None, metadata={
        "help": "where the JSON, Markdown and PNG results go, with every finished run (runs/) and the fine-tuning "
                "base (finetune-base/), which a later invocation adopts instead of training them again (default: "
                "benchmarks/results for the fine-tuning protocol, benchmarks/results/scratch "
                "from scratch; with --smoke: <work_dir>/results)"})
    work_dir: str | None = field(default=None, metadata={
        "help": "world, starting models and runs (default: $TRIPLETCLIP_CACHE or ~/.cache/tripletclip, sub-folder "
                "comparison-<settings>-<protocol>)"})
    jobs: int = field(default=2, metadata={
        "help": "runs trained at once, one CPU thread each (0: one after another in this process)"})
    report_only: bool = field(default=False, metadata={
        "help": "train nothing: write the results of the runs already finished in --work_dir or kept in "
                "--output_dir (e.g. while a comparison is still running, or after an interrupted one)"})
    seeds: str | None = field(default=None, metadata={
        "help": "override the seeds (default 0 1 2; fine-tuning 0 1 2 3 4)", "nargs": "+"})
    select_settings: bool = field(default=False, metadata={
        "help": "fine-tuning only: build the base, choose the fine-tuning learning rate on the validation world with "
                "the CLIP baseline alone, print the base and the choice, and stop (no objective is compared)"})

    def validate(self) -> None:
        from benchmarks.comparison.design import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}.")
        if self.select_settings and self.protocol != "finetune":
            raise ValueError("--select_settings chooses the fine-tuning settings: use it with --protocol finetune.")
        if self.select_settings and self.report_only:
            raise ValueError("--select_settings trains the selection runs; it cannot be combined with --report_only.")
        if self.jobs < 0:
            raise ValueError(f"--jobs cannot be negative (got {self.jobs}); 0 runs everything in this process.")
        if self.seeds is not None:
            try:
                self.seed_list
            except ValueError:
                raise ValueError(f"--seeds takes integers (got {self.seeds!r}).") from None

    @property
    def seed_list(self) -> tuple[int, ...] | None:
        return None if self.seeds is None else tuple(int(s) for s in self.seeds.replace(",", " ").split())


def parse_args(argv=None) -> CompareOptions:
    from dataset_builders.utils.options import parse_options

    return parse_options(CompareOptions, argv, prog="python -m benchmarks.comparison", description=__doc__)


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except ValueError as error:
        print(f"python -m benchmarks.comparison: error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from benchmarks.comparison import ComparisonSettings
    from benchmarks.comparison.report import write_outputs
    from benchmarks.comparison.runner import adopt_saved, finished_runs, run_all

    if args.smoke:
        settings = ComparisonSettings.smoke(args.protocol)
    else:
        settings = ComparisonSettings.full(args.protocol)
    if args.seed_list:
        settings.seeds = args.seed_list
    try:
        settings.validate()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    from dataset_builders.utils.locations import cache_dir

    cache = cache_dir()
    folder = f"comparison-{settings.name}-{settings.protocol}"
    work_dir = Path(args.work_dir) if args.work_dir else cache / folder
    results = REPO_ROOT / "benchmarks" / "results"
    if args.output_dir:
        output_dir = Path(args.output_dir)
    elif args.smoke:
        output_dir = work_dir / "results"
    else:
        output_dir = results / "scratch" if settings.protocol == "scratch" else results

    started = time.time()
    if args.report_only:
        adopt_saved(settings, work_dir, output_dir)
        records = finished_runs(settings, work_dir)
        if not records:
            print(f"No finished run in {work_dir / 'runs'} nor kept in {output_dir / 'runs'}: run the comparison "
                  "first (without --report_only).",
                  file=sys.stderr)
            return 1
        print(f"{len(records)} of {len(settings.runs())} runs finished; reporting those.")
    elif args.select_settings:
        from benchmarks.comparison.report import selection_markdown
        from benchmarks.comparison.runner import load_base_record, load_selection_record

        run_all(settings, work_dir, jobs=args.jobs, select_only=True, results_dir=output_dir)
        print(selection_markdown(settings, load_base_record(work_dir), load_selection_record(work_dir)))
        print(f"Base and selection in {work_dir} (base/base.json, selection/selection.json).")
        return 0
    else:
        try:
            records = run_all(settings, work_dir, jobs=args.jobs, results_dir=output_dir)
        except ValueError as error:
            print(f"python -m benchmarks.comparison: error: {error}", file=sys.stderr)
            return 2
    wall = time.time() - started

    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "torch": torch.__version__, "jobs": args.jobs}
    table = write_outputs(settings, records, work_dir, output_dir, wall_seconds=wall, machine=machine)
    print(table)
    print(f"Results in {output_dir} (comparison.json, comparison.md, comparison.png, similarity.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
