"""Synthesis on datatrove: what the engine costs, and how it scales from 1 to 2 workers (CPU, tiny models).

``python -m benchmarks.perf.synthesis_scale [--rows N] [--repeats R] [--output_dir DIR]``

The job: rule-based negative captions, positive and negative images from a tiny Stable Diffusion pipeline (64 x 64,
2 steps), parquet shards of 32 rows; every process on one thread (``OMP_NUM_THREADS=1``).

- **overhead** (in this process, interleaved): `run_synthesis` on datatrove's local executor with one worker
  against the same stages called directly in a plain loop on the same rows (the same models loaded, the same
  seeds, the same parquet shards written: the two outputs are checked to be byte-identical). Goal: the pipeline
  takes at most 1/0.9 of the loop's time, i.e. its throughput is at least 0.9 of the loop's.
- **scaling** (whole commands, interleaved): ``tripletclip synthesize --workers 2`` against ``--workers 1`` on the
  same input, start-up included. Goal: at least 1.7 times faster on 2 cores.

Writes ``synthesis_scale.json`` and ``synthesis_scale.md`` to ``benchmarks/results/`` (or ``--output_dir``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dataset_builders import schema
from dataset_builders.hub_layout import write_parquet_shard
from dataset_builders.synthesis.plan import SynthesisConfig, plan_input, shard_path
from dataset_builders.synthesis.rules import generate_negative
from dataset_builders.synthesis.runner import row_seed, run_synthesis
from dataset_builders.synthesis.t2i import ImageGenerator
from dataset_builders.utils import atomic
from dataset_builders.utils.options import parse_options

from .timing import Goal, Ratio, environment, interleaved, ratio_figure

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
THROUGHPUT_GOAL = Goal(">=", 0.9)
SCALING_GOAL = Goal(">=", 1.7)
ROWS_PER_SHARD = 32
IMAGE_SIZE = 64
STEPS = 2


@dataclass
class Options:
    rows: int = field(default=512, metadata={"help": "input captions (the scaling runs use four times as many)"})
    repeats: int = field(default=3, metadata={"help": "interleaved rounds of each comparison"})
    output_dir: str = field(default=str(RESULTS), metadata={"help": "where the JSON and Markdown results go"})


def _captions(count: int) -> list[str]:
    colours, animals = ("red", "blue", "green", "black", "white"), ("dog", "cat", "horse", "bird")
    places = ("on a small table", "next to a large tree", "under a wooden chair", "in front of a house")
    return [f"A {colours[i % 5]} {animals[(i // 5) % 4]} {places[(i // 20) % 4]}." for i in range(count)]


def _inputs(work: Path, rows: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "tests"))  # the tiny pipeline the tests build (tests/ is not a package)
    from test_synthesis_tiny_models import build_sd_pipeline

    work.mkdir(parents=True, exist_ok=True)
    data = work / f"captions-{rows}.jsonl"
    data.write_text("".join(json.dumps({"caption": c}) + "\n" for c in _captions(rows)))
    sd = work / "sd"
    if not (sd / "model_index.json").is_file():
        build_sd_pipeline(sd)
    return data, sd


def _config(data: Path, sd: Path, out: Path):
    return SynthesisConfig(dataset=str(data), caption_column="caption", output_dir=str(out), rules=True, t2i=str(sd),
                           image_size=IMAGE_SIZE, num_inference_steps=STEPS, rows_per_shard=ROWS_PER_SHARD, seed=1,
                           progress=False, device="cpu")


def plain_loop(config) -> None:
    """The stages called directly, shard by shard, as a script without an engine would."""
    plan = plan_input(config)
    images = ImageGenerator.from_pretrained(config.t2i, device="cpu", num_inference_steps=STEPS, guidance_scale=0.0,
                                            height=IMAGE_SIZE, width=IMAGE_SIZE, batch_size=config.t2i_batch_size)
    for index in range(plan.num_shards):
        rows = list(plan.shard_rows(index))
        captions = [plan.captions[r] for r in rows]
        negatives = [generate_negative(c, seed=row_seed(config.seed, r, "rules")) for c, r in zip(captions, rows)]
        keep = [i for i, n in enumerate(negatives) if n is not None]
        positives = images.generate([captions[i] for i in keep],
                                    [row_seed(config.seed, rows[i], "image") for i in keep])
        negative_images = images.generate([negatives[i].text for i in keep],
                                          [row_seed(config.seed, rows[i], "negative_image") for i in keep])
        records = [{schema.IMAGE: positives[j], schema.CAPTION: captions[i], schema.NEGATIVE_IMAGE: negative_images[j],
                    schema.NEGATIVE_CAPTION: negatives[i].text, schema.ID: str(rows[i]),
                    schema.NEGATIVE_KIND: negatives[i].kind,
                    "negative_image_seed": row_seed(config.seed, rows[i], "negative_image"),
                    "image_seed": row_seed(config.seed, rows[i], "image")} for j, i in enumerate(keep)]
        write_parquet_shard(records, shard_path(plan, index), plan.features)


def _same_shards(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in (a / "data").glob("*.parquet"))
    return bool(names) and all((a / "data" / n).read_bytes() == (b / "data" / n).read_bytes() for n in names)


def overhead(work: Path, data: Path, sd: Path, repeats: int):
    torch.set_num_threads(1)
    outs = {"pipeline": work / "pipeline", "loop": work / "loop"}

    def fresh(name: str) -> Path:
        shutil.rmtree(outs[name], ignore_errors=True)
        return outs[name]

    timings = interleaved({"pipeline": lambda: run_synthesis(_config(data, sd, fresh("pipeline"))),
                           "loop": lambda: plain_loop(_config(data, sd, fresh("loop")))}, repeats=repeats, warmup=1)
    ratio = Ratio.of(timings, "loop", "pipeline")  # throughput of the pipeline relative to the loop's
    same = _same_shards(outs["pipeline"], outs["loop"])
    return ratio_figure("synthesis_overhead", "Synthesis", "pipeline throughput / plain loop's (1 worker)", ratio,
                        THROUGHPUT_GOAL, same_bytes=same, times="plain loop / pipeline")


def scaling(work: Path, data: Path, sd: Path, repeats: int):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}

    def command(workers: int):
        def run() -> None:
            out = work / f"workers-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            flags = ["--dataset", str(data), "--caption_column", "caption", "--rules", "--t2i", str(sd),
                     "--image_size", str(IMAGE_SIZE), "--num_inference_steps", str(STEPS), "--rows_per_shard",
                     str(ROWS_PER_SHARD), "--seed", "1", "--no_progress", "--device", "cpu", "--workers",
                     str(workers), "--output_dir", str(out)]
            done = subprocess.run([sys.executable, "-m", "dataset_builders.synthesis.cli", "synthesize", *flags],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
        return run

    timings = interleaved({"1": command(1), "2": command(2)}, repeats=repeats, warmup=0)
    ratio = Ratio(timings.wall["1"], timings.wall["2"])  # speed-up: time with 1 worker / time with 2
    same = _same_shards(work / "workers-1", work / "workers-2")
    return ratio_figure("synthesis_scaling", "Synthesis", "speed-up from 1 to 2 workers (whole command)", ratio,
                        SCALING_GOAL, same_bytes=same, cores=os.cpu_count(), times="1 worker / 2 workers")


def _markdown(figures, env: dict, options: Options) -> str:
    lines = ["# Synthesis on datatrove (CPU, tiny models)", "",
             f"{options.rows} rows for the overhead, {4 * options.rows} for the scaling; {ROWS_PER_SHARD} rows per "
             f"shard, {IMAGE_SIZE} px, {STEPS} steps, one thread per process; {env.get('processor') or 'CPU'}, "
             f"{os.cpu_count()} cores. Command: `python -m benchmarks.perf.synthesis_scale`.", "",
             "| figure | value (median) | inter-quartile range | goal | met | median times (s) | outputs byte-equal |",
             "|---|---|---|---|---|---|---|"]
    for f in figures:
        d = f.detail
        lines.append(f"| {f.label} | {f.value:.3f} | {f.spread[0]:.3f}–{f.spread[1]:.3f} | {f.goal} | "
                     f"{'yes' if f.met else 'no'} | {d['times']}: {d['candidate_median_s']:.1f} / "
                     f"{d['baseline_median_s']:.1f} | "
                     f"{'yes' if d['same_bytes'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    options = parse_options(Options, argv, prog="python -m benchmarks.perf.synthesis_scale")
    work = Path(os.environ.get("TRIPLETCLIP_CACHE", Path.home() / ".cache" / "tripletclip")) / "bench-synthesis"
    started = time.time()
    data, sd = _inputs(work, options.rows)
    figures = [overhead(work, data, sd, options.repeats)]
    print(f"{figures[0].label}: {figures[0].value:.3f} (goal {figures[0].goal})", flush=True)
    big, _ = _inputs(work, 4 * options.rows)
    figures.append(scaling(work, big, sd, options.repeats))
    print(f"{figures[1].label}: {figures[1].value:.3f} (goal {figures[1].goal})", flush=True)
    env = environment("cpu")
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "synthesis_scale.json", {"figures": [f.to_dict() for f in figures], "environment": env,
                                                     "options": vars(options), "seconds": time.time() - started},
                      indent=2)
    atomic.write_text(out / "synthesis_scale.md", _markdown(figures, env, options))
    print(_markdown(figures, env, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
