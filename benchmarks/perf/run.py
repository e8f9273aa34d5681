"""Run the performance suite: ``python -m benchmarks.perf [--quick] [--device cuda] [--output_dir DIR]``.

Prints one line per figure as it is measured, then the tables; writes ``perf.json``, ``perf.md`` and ``perf.png``
(``perf-quick.*`` with ``--quick``) to ``benchmarks/results/``, a profile for every figure that misses its goal, and
(full runs) the results table of the "Performance suite" section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
MEASUREMENTS = ("train_step", "data", "scores", "wait", "eval", "memory")


@dataclass
class Plan:
    """The settings of one mode (full, quick, or GPU)."""

    train_steps: list
    data_sources: list  # (DataSource, repeats)
    wait_steps: int
    wait_batch_size: int | None
    eval_preset: str
    eval_items_per_subset: int | None
    eval_repeats: int
    memory: list  # (MemorySetting, with_clip)


def _data_sources(quick: bool) -> list:
    from .data_pipeline import DataSource

    if quick:
        return [(DataSource("world-tiny", "world", "tiny", triplets=64, batch_size=16), 2),
                (DataSource("jpeg-500x375", "jpeg", "vit-b-32", triplets=32, batch_size=16, size=(500, 375)), 2)]
    return [
        (DataSource("world-tiny", "world", "tiny", triplets=1024, batch_size=64), 5),
        (DataSource("world-vit-b-32", "world", "vit-b-32", triplets=512, batch_size=64), 5),
        (DataSource("jpeg-500x375", "jpeg", "vit-b-32", triplets=512, batch_size=32, size=(500, 375)), 5),
        (DataSource("jpeg-1024x768", "jpeg", "vit-b-32", triplets=256, batch_size=32, size=(1024, 768)), 5),
    ]


def make_plan(quick: bool, device: str, vit_batch_size: int | None) -> Plan:
    from .memory import MemorySetting
    from .train_step import StepSetting

    if device.startswith("cuda"):
        vit = vit_batch_size or 256
        return Plan(
            train_steps=[
                StepSetting("vit-b-32", vit, False, repeats=10, warmup=2, device=device, precision="bf16",
                            max_seconds=120),
                StepSetting("vit-b-32", vit, True, repeats=10, warmup=2, device=device, precision="bf16",
                            max_seconds=120),
                StepSetting("tiny", 64, False, repeats=20, warmup=2, device=device, max_seconds=30),
            ],
            data_sources=_data_sources(quick=False),
            wait_steps=30,
            wait_batch_size=None,
            eval_preset="vit-b-32",
            eval_items_per_subset=None,
            eval_repeats=3,
            memory=[],  # measured on the GPU inside the training-step measurement
        )
    if quick:
        return Plan(
            train_steps=[StepSetting("tiny", 16, False, repeats=2), StepSetting("tiny", 16, True, repeats=2)],
            data_sources=_data_sources(quick=True),
            wait_steps=4,
            wait_batch_size=16,
            eval_preset="tiny",
            eval_items_per_subset=30,
            eval_repeats=2,
            memory=[(MemorySetting("tiny", 16, False), True)],
        )
    vit = vit_batch_size or 4
    return Plan(
        train_steps=[
            StepSetting("tiny", 64, False, repeats=10, max_seconds=55),
            StepSetting("tiny", 64, True, repeats=10, max_seconds=55),
            StepSetting("vit-b-32", vit, False, repeats=3, max_seconds=75),
            StepSetting("vit-b-32", vit, True, repeats=3, max_seconds=75),
        ],
        data_sources=_data_sources(quick=False),
        wait_steps=10,
        wait_batch_size=None,
        eval_preset="tiny",
        eval_items_per_subset=None,
        eval_repeats=2,
        memory=[
            (MemorySetting("tiny", 64, False), True),
            (MemorySetting("tiny", 64, True), True),
            (MemorySetting("vit-b-32", vit, False), True),
            (MemorySetting("vit-b-32", vit, True), False),
        ],
    )


@dataclass
class PerfOptions:
    """Options of ``python -m benchmarks.perf``."""

    quick: bool = field(default=False, metadata={"help": "small settings, about a minute: a smoke check"})
    device: str = field(default="cpu", metadata={"help": "cpu, or cuda[:N] (ViT-B/32, bf16, B=256)"})
    only: str = field(default=",".join(MEASUREMENTS),
                      metadata={"help": f"comma-separated subset of: {', '.join(MEASUREMENTS)}"})
    output_dir: str = field(default=str(RESULTS), metadata={"help": "where results go"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "where the benchmark worlds, photo-like JPEGs and the trained model are cached (default: "
                "$TRIPLETCLIP_CACHE or ~/.cache/tripletclip)"})
    sugarcrepe: str | None = field(default=None, metadata={
        "help": "folder of the seven official SugarCrepe JSON files (default: tests/data/sugarcrepe)"})
    threads: int | None = field(default=None, metadata={
        "help": "torch threads (default: 1 on CPU, where other jobs share the cores; torch's own on GPU)"})
    vit_batch_size: int | None = field(default=None, metadata={
        "help": "ViT-B/32 triplets per step (default: 4 on CPU, 256 on GPU)"})
    no_readme: bool = field(default=False, metadata={"help": "do not update benchmarks/README.md"})
    report_only: bool = field(default=False, metadata={
        "help": "measure nothing: redraw the tables, plot and README section from the last results JSON"})

    @property
    def measurements(self) -> list[str]:
        return [m.strip() for m in self.only.split(",") if m.strip()]

    def validate(self) -> None:
        unknown = sorted(set(self.measurements) - set(MEASUREMENTS))
        if unknown:
            raise ValueError(f"--only: unknown measurement(s) {', '.join(unknown)}; choose from "
                             f"{', '.join(MEASUREMENTS)}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"--device {self.device!r}: use cpu or cuda (cuda:N)")
        if self.threads is not None and self.threads < 1:
            raise ValueError("--threads must be at least 1")


def parse_args(argv=None) -> PerfOptions:
    from dataset_builders.utils.options import parse_options

    return parse_options(PerfOptions, argv, prog="python -m benchmarks.perf",
                         description="TripletCLIP performance suite: training step, data pipeline, evaluation and "
                                     "memory, each as a ratio against a baseline timed in the same process.")


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except ValueError as error:
        print(f"python -m benchmarks.perf: error: {error}", file=sys.stderr)
        return 2
    if args.report_only:
        return _report_only(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is visible to torch here. Run on a GPU machine, or use --device cpu.",
              file=sys.stderr)
        return 2
    import warnings

    # The trainer enables checkpointing with this (deprecated) name; the suite does the same, quietly.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing_enable.*", category=FutureWarning)
    threads = args.threads or (1 if args.device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()

    from tqdm.auto import tqdm

    from . import fixtures, report
    from .timing import environment, load_average

    started = time.time()
    load_start = load_average()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "perf-quick" if args.quick else "perf"
    for old in out_dir.glob("perf_profile_*.txt") if not args.quick else []:
        old.unlink()  # profiles belong to the figures of the latest full run
    profile_dir = out_dir if not args.quick else out_dir / "perf-quick-profiles"
    profile_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(args.cache_dir) if args.cache_dir else fixtures.default_cache_dir()
    plan = make_plan(args.quick, args.device, args.vit_batch_size)
    figures, loads = [], {}

    tasks = _tasks(args, plan)
    bar = tqdm(total=len(tasks), desc="performance suite", unit="measurement")
    context: dict = {}

    def log(figure):
        goal = f" (goal {figure.goal}: {'met' if figure.met else 'MISSED'})" if figure.goal else ""
        value = "n/a" if figure.value is None else f"{figure.value:.3f}"
        tqdm.write(f"  {figure.id}: {value} {figure.unit}{goal}")

    for name, function in tasks:
        bar.set_postfix_str(f"{name} | load {load_average()[:1]}")
        before, task_started = load_average(), time.time()
        new = function(args, plan, context, cache_dir, profile_dir, threads)
        loads[name] = {"before": before, "after": load_average(), "seconds": round(time.time() - task_started, 1)}
        for figure in new:
            figure.detail.setdefault("load_average_before", before)
            figure.detail.setdefault("load_average_after", loads[name]["after"])
            log(figure)
        figures.extend(new)
        bar.update(1)
    bar.close()

    for figure in figures:  # profiles are named relative to the results folder, so the JSON can move with it
        if figure.profile:
            figure.profile = os.path.relpath(figure.profile, out_dir)
    results = {
        "suite": "tripletclip performance",
        "mode": ("quick" if args.quick else "full") + ("" if args.device == "cpu" else f", {args.device}"),
        "device": args.device,
        "command": "python -m benchmarks.perf " + " ".join(argv if argv is not None else sys.argv[1:]),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_time_s": time.time() - started,
        "environment": environment(args.device),
        "load_average": {"start": load_start, "end": load_average(), "per_measurement": loads},
        "gpu_measured": args.device.startswith("cuda"),
        "gpu_note": None if args.device.startswith("cuda") else
        "GPU figures (ViT-B/32, bf16, B=256) were not measured: this run had no GPU. Run with --device cuda.",
        "figures": [f.to_dict() for f in figures],
    }
    report.write_json(results, out_dir / f"{stem}.json")
    _write_reports(args, results, out_dir, stem)
    return 0


def _write_reports(args, results: dict, out_dir: Path, stem: str) -> None:
    from . import report

    png = report.plot(results, out_dir / f"{stem}.png")
    results = {**results, "plot": str(png) if png else None}
    text = report.markdown(results, base=out_dir, json_dir=out_dir)
    if png:
        text += f"\n![ratios and memory]({png.name})\n"
    (out_dir / f"{stem}.md").write_text(text, encoding="utf-8")
    if not args.quick and not args.no_readme and out_dir.resolve() == RESULTS.resolve():
        report.update_readme(REPO / "benchmarks" / "README.md", results, json_dir=out_dir)
    print()
    print(report.markdown(results, base=out_dir, link_profiles=False, json_dir=out_dir))
    print(f"Results: {out_dir / (stem + '.json')}, {out_dir / (stem + '.md')}" + (f", {png}" if png else ""))


def _report_only(args) -> int:
    import json

    out_dir = Path(args.output_dir)
    stem = "perf-quick" if args.quick else "perf"
    path = out_dir / f"{stem}.json"
    if not path.is_file():
        print(f"--report-only: {path} does not exist; run the suite first (python -m benchmarks.perf).",
              file=sys.stderr)
        return 2
    _write_reports(args, json.loads(path.read_text(encoding="utf-8")), out_dir, stem)
    return 0


# ------------------------------------------------------------------------------------------------ the tasks


def _world(context, cache_dir, args):
    from . import fixtures

    if "world" not in context:
        world = fixtures.benchmark_world(cache_dir, quick=args.quick)
        context["world"] = world
        context["rows"] = fixtures.load_world_rows(world, 256)
    return context["rows"]


def _tokenizer(context, preset, corpus):
    from . import fixtures

    key = f"tokenizer-{preset}"
    if key not in context:
        context[key] = fixtures.tokenizer_for(corpus, preset)
    return context[key]


def _tasks(args, plan: Plan):
    tasks = []
    if "train_step" in args.measurements:
        for setting in plan.train_steps:
            tasks.append((f"train step {setting.title}", _train_step_task(setting)))
    if "data" in args.measurements:
        for source, repeats in plan.data_sources:
            tasks.append((f"data rates {source.name}", _data_task(source, repeats)))
    if "scores" in args.measurements:
        tasks.append(("scores with reduced decoding", _scores_task))
    if "wait" in args.measurements:
        tasks.append(("data wait in training", _wait_task))
    if "eval" in args.measurements:
        tasks.append(("evaluation", _eval_task))
    if "memory" in args.measurements:
        for setting, with_clip in plan.memory:
            tasks.append((f"memory {setting.title}", _memory_task(setting, with_clip)))
    return tasks


def _train_step_task(setting):
    def run(args, plan, context, cache_dir, profile_dir, threads):
        from . import train_step

        rows = _world(context, cache_dir, args)
        tokenizer = _tokenizer(context, setting.preset, rows.corpus)
        return train_step.measure(setting, tokenizer, rows.rows, profile_dir=profile_dir)

    return run


def _data_task(source, repeats):
    def run(args, plan, context, cache_dir, profile_dir, threads):
        from modeling_tripletclip.presets import PRESETS, build_processor

        from . import data_pipeline, fixtures

        world = _world(context, cache_dir, args)
        tokenizer = _tokenizer(context, source.preset, world.corpus)
        processor = build_processor(tokenizer, PRESETS[source.preset]["vision_config"]["image_size"])
        if source.is_photo:
            folder = fixtures.photo_triplets(cache_dir, source.size, max(source.triplets, 2 * source.batch_size),
                                             world.corpus)
            rows = fixtures.load_rows(folder, source.triplets)
        else:
            rows = world
        return data_pipeline.measure_source(source, processor, rows.dataset, rows.rows, repeats,
                                            profile_dir=profile_dir, max_seconds=240)

    return run


def _scores_task(args, plan, context, cache_dir, profile_dir, threads):
    from . import reduced_decoding

    return reduced_decoding.measure(cache_dir, quick=args.quick)


def _wait_task(args, plan, context, cache_dir, profile_dir, threads):
    from . import data_pipeline

    _world(context, cache_dir, args)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return [data_pipeline.measure_wait(context["world"], plan.wait_steps, plan.wait_batch_size)]


def _eval_task(args, plan, context, cache_dir, profile_dir, threads):
    from . import evaluation_speed

    annotations = Path(args.sugarcrepe) if args.sugarcrepe else evaluation_speed.default_annotations()
    annotations, images = evaluation_speed.prepare(annotations, cache_dir / "perf-sugarcrepe",
                                                   plan.eval_items_per_subset)
    device = args.device if args.device.startswith("cuda") else "cpu"
    return [evaluation_speed.measure(plan.eval_preset, annotations, images, plan.eval_repeats, device=device,
                                     profile_dir=profile_dir),
            evaluation_speed.measure_suite(plan.eval_preset, annotations, images, plan.eval_repeats, device=device)]


def _memory_task(setting, with_clip):
    def run(args, plan, context, cache_dir, profile_dir, threads):
        from . import memory

        return memory.measure(setting, threads, with_clip=with_clip, profile_dir=profile_dir)

    return run


if __name__ == "__main__":
    sys.exit(main())
