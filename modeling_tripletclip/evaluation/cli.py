"""``tripletclip evaluate``: score one or more CLIP-like checkpoints on one or more benchmarks.

    tripletclip evaluate --model M [--model M2 ...] --benchmark NAME --data PATH [--benchmark NAME --data PATH ...]
        [--images DIR] --output_dir DIR
    tripletclip evaluate --model M [--model M2 ...] --world DIR --output_dir DIR

--data is given once per --benchmark, in the same order, or as NAME=PATH (then --benchmark may be left out); it may be a
Hub id, a folder or a file in any of the formats the tasks (`modeling_tripletclip.evaluation.tasks`) recognise
(SugarCrepe's JSON files or its HuggingFaceM4/SugarCrepe_<subset> mirrors, CLIP_benchmark's WebDataset exports,
facebook/winoground, Karpathy splits, TripletData in any form, ...).
--world DIR takes the data of the built-in world written by `tripletclip data world --output_dir DIR`: every benchmark
it has, or those named by --benchmark; --data NAME=PATH still overrides one. --images is the image folder of data that
names image files (SugarCrepe, Karpathy-split JSON), for all of them, or NAME=DIR for one.

Scoring follows each benchmark's official rule; a tie always counts against the model (SugarCrepe and Winoground
compare strictly; for retrieval recall@k and top-k accuracy a correct candidate tied with a wrong one ranks after it,
which can differ from CLIP_benchmark's `topk` on exact ties, where index order decides).

Writes, in --output_dir: the report (report.json: results, counts of items scored and skipped, notes), a Markdown table
(report.md), and for the similarity analysis a histogram PNG and its numbers (report_similarity.png / .json). A run
that had to skip items (an undecodable image, an unreadable caption) says so and exits with status 1, unless
--allow_skipped is given; bad input exits with status 2 before any model runs.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builders.utils.options import Command

from .tasks import (
    BENCHMARKS,
    COMPOSITIONAL,
    COMPOSITIONAL_AVERAGE_DEFINITION,
    compositional_average,
    find_compositional,
)
from .errors import EvaluationInputError

BENCHMARK_NAMES = tuple(BENCHMARKS)
#: The ``--benchmark`` value that runs every compositional benchmark found under ``--data_root``.
SUITE = "compositional"

logger = logging.getLogger(__name__)


@dataclass
class EvaluateOptions:
    """Options of ``tripletclip evaluate``."""

    model: list[str] = field(default_factory=list, metadata={
        "help": "checkpoint folder or Hub id (TripletCLIP or CLIP); repeat to compare models"})
    benchmark: list[str] = field(default_factory=list, metadata={
        "help": f"benchmark to run, one of {', '.join(BENCHMARK_NAMES)}; repeat for several; '{SUITE}' runs every "
                f"compositional benchmark found under --data_root", "choices": (*BENCHMARK_NAMES, SUITE)})
    data_root: str | None = field(default=None, metadata={
        "help": f"with --benchmark {SUITE}: the folder holding the benchmarks' download folders, each under its name "
                f"({', '.join(COMPOSITIONAL)}; e.g. DIR/BiVLC, DIR/MMVP_VLM) and the COCO 2017 images in DIR/val2017 or "
                f"DIR/coco/val2017"})
    data: list[str] = field(default_factory=list, metadata={
        "help": "the benchmark's data (Hub id, folder or file), once per --benchmark in the same order, or NAME=PATH"})
    world: str | None = field(default=None, metadata={
        "help": "evaluate on the built-in world in DIR (sugarcrepe, winoground, retrieval; tripletdata and similarity "
                "on its held-out test triplets)"})
    images: list[str] = field(default_factory=list, metadata={
        "help": "image folder for SugarCrepe / Karpathy-split JSON (default for SugarCrepe: <data>/images); NAME=DIR "
                "for one benchmark"})
    output_dir: str = field(default=".", metadata={"help": "where the report files go"})
    report_name: str = field(default="report", metadata={"help": "file name stem of the report files"})
    split: str | None = field(default=None, metadata={"help": "dataset split (default: test, else validation, else "
                                                              "train)"})
    streaming: bool = field(default=False, metadata={"help": "stream datasets instead of preparing them on disk"})
    max_items: int | None = field(default=None, metadata={"help": "score only the first N rows/items"})
    templates: str | None = field(default=None, metadata={
        "help": "zero-shot prompt templates: JSON list or one per line, each with one '{}' (default: the dataset's "
                "own, else OpenAI's 80 ImageNet templates)"})
    batch_size: int = field(default=64, metadata={"help": "images or captions per forward pass"})
    num_workers: int | None = field(default=None, metadata={"help": "threads decoding images"})
    reduced_image_decoding: bool = field(default=False, metadata={
        "help": "decode large JPEGs at a reduced scale and resize only the centre crop, as training does by default "
                "(faster; off: exactly the processor's pixels)"})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, cuda:1, ... (default: cuda when "
                                                               "available)"})
    dtype: str = field(default="auto", metadata={"help": "model dtype (default: the checkpoint's; float16 on GPUs "
                                                         "only)", "choices": ("auto", "float32", "bfloat16", "float16")})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow code shipped with a checkpoint to run (not needed for TripletCLIP or CLIP)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
    allow_skipped: bool = field(default=False, metadata={
        "help": "exit with status 0 even when items were skipped (their counts are in the report either way)"})

    def validate(self) -> None:
        if SUITE in self.benchmark and not self.data_root:
            raise EvaluationInputError(f"--benchmark {SUITE} needs --data_root DIR, the folder holding the benchmarks' "
                                       f"download folders ({', '.join(COMPOSITIONAL)}).")
        if not self.model:
            raise EvaluationInputError("Give at least one --model (a checkpoint folder or a Hub id).")
        if len(set(self.model)) != len(self.model):
            raise EvaluationInputError("A --model is given twice; give each model once.")
        if self.batch_size < 1:
            raise EvaluationInputError(f"--batch_size must be at least 1, got {self.batch_size}.")
        if self.max_items is not None and self.max_items < 1:
            raise EvaluationInputError(f"--max_items must be at least 1, got {self.max_items}.")


def pair_benchmarks_with_data(benchmarks: list[str], data: list[str], world: str | Path | None = None) -> dict[str, str]:
    """Match ``--data`` values to benchmarks: ``NAME=PATH`` entries by name, the others in ``--benchmark`` order;
    with ``world``, benchmarks without ``NAME=PATH`` data take the world's (all of the world's when none is named).

    Raises:
        EvaluationInputError: a benchmark without data, data without a benchmark, or a benchmark given twice.
    """
    keyed, positional = {}, []
    for entry in data:
        name, sep, path = entry.partition("=")
        if sep and name in BENCHMARK_NAMES:
            if name in keyed:
                raise EvaluationInputError(f"--data gives {name} twice.")
            keyed[name] = path
        else:
            positional.append(entry)
    if world is not None:
        from dataset_builders.world import WorldLayout

        layout = WorldLayout(world)
        if positional:
            raise EvaluationInputError("With --world, give other data only as --data NAME=PATH.")
        if benchmarks:
            needing = [b for b in benchmarks if b not in keyed]
            from_world = layout.benchmark_paths(needing) if needing else {}
        else:
            from_world = {k: v for k, v in layout.benchmark_paths().items() if k not in keyed}
        keyed = {**{k: str(v) for k, v in from_world.items()}, **keyed}
        benchmarks = list(benchmarks) or list(keyed)
    order = list(benchmarks) + [name for name in keyed if name not in benchmarks]
    duplicates = sorted({b for b in order if order.count(b) > 1})
    if duplicates:
        raise EvaluationInputError(f"--benchmark {' '.join(duplicates)} is given more than once.")
    if not order:
        raise EvaluationInputError(
            f"Name at least one benchmark with --benchmark NAME (one of {', '.join(BENCHMARK_NAMES)}) "
            "or --data NAME=PATH."
        )
    unmatched = [b for b in order if b not in keyed]
    if len(positional) != len(unmatched):
        raise EvaluationInputError(
            f"Got {len(positional)} --data path(s) for {len(unmatched)} benchmark(s) without one "
            f"({', '.join(unmatched) or 'none'}): give --data once per --benchmark, in the same order, "
            "or as NAME=PATH."
        )
    keyed.update(zip(unmatched, positional))
    return {name: keyed[name] for name in order}


def parse_images(values: list[str], benchmarks: list[str]):
    """``--images``: one folder for all benchmarks, or ``NAME=DIR`` entries; returns a path, a dict or ``None``."""
    if not values:
        return None
    keyed = {}
    plain = []
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in BENCHMARK_NAMES:
            keyed[name] = path
        else:
            plain.append(value)
    if len(plain) > 1:
        raise EvaluationInputError("Give --images once (for every benchmark that reads image files) or as NAME=DIR.")
    if plain:
        return {name: keyed.get(name, plain[0]) for name in benchmarks}
    return keyed


def evaluate_command(options: EvaluateOptions) -> int:
    """Run ``tripletclip evaluate``; returns the exit status (1 when items were skipped and not allowed).

    The output folder is held while the report is made: another live evaluation writing there is refused at once."""
    from dataset_builders.utils.output_folders import hold_folder

    with hold_folder(options.output_dir, "tripletclip evaluate"):
        return _evaluate(options)


def _evaluate(options: EvaluateOptions) -> int:
    import json

    import numpy as np

    from dataset_builders.utils import atomic

    from ..encoding import CLIPEncoder
    from ..loading import check_clip_like_checkpoint, load_model_and_processor
    from .suite import prepare_benchmarks, run_benchmarks
    from .report import EvaluationReport, plot_similarity, similarity_histograms
    from .templates import load_templates

    names, data, image_values = list(options.benchmark), list(options.data), list(options.images)
    if SUITE in names:
        found, absent = find_compositional(options.data_root)
        if not found:
            looked = "; ".join(f"{n}: {' or '.join(BENCHMARKS[n].folder_names)}" for n in COMPOSITIONAL)
            raise EvaluationInputError(f"No compositional benchmark under {options.data_root}. Looked for these "
                                       f"folders: {looked}.")
        named = {entry.partition("=")[0] for entry in data}
        names = [n for n in names if n != SUITE] + [n for n in found if n not in names]
        data += [f"{n}={path}" for n, path in found.items() if n not in named]
        coco = next((p for p in (Path(options.data_root) / "val2017", Path(options.data_root) / "coco" / "val2017")
                     if p.is_dir()), None)
        if coco is not None and not image_values:
            image_values = [f"{n}={coco}" for n in ("sugarcrepe", "sugarcrepe_pp", "whatsup") if n in found]
        print(f"Compositional benchmarks found under {options.data_root}: {', '.join(found)}; absent: "
              f"{', '.join(absent) or 'none'}.")
    benchmarks = pair_benchmarks_with_data(names, data, world=options.world)
    images = parse_images(image_values, list(benchmarks))
    templates = load_templates(options.templates) if options.templates else None

    # Every input is checked before any model runs: each model's configuration (cheap), then the data.
    for model_name in options.model:
        check_clip_like_checkpoint(model_name, trust_remote_code=options.trust_remote_code)
    prepared = prepare_benchmarks(
        benchmarks, images=images, split=options.split, streaming=options.streaming, max_items=options.max_items,
        templates=templates,
    )

    report, similarity = EvaluationReport(), {}
    for model_name in options.model:
        logger.info("Evaluating %s on %s", model_name, ", ".join(benchmarks))
        model, processor = load_model_and_processor(
            model_name, device=options.device, dtype=options.dtype, trust_remote_code=options.trust_remote_code
        )
        encoder = CLIPEncoder(model, processor, batch_size=options.batch_size, num_workers=options.num_workers,
                              progress=options.progress, reduced_image_decoding=options.reduced_image_decoding)
        results = run_benchmarks(encoder, prepared)
        metrics = {name: r.metrics for name, r in results.items()}
        notes = [note for r in results.values() for note in r.notes]
        average, note = compositional_average(metrics)
        if SUITE in options.benchmark and average:
            metrics["compositional"] = average
            notes.append(note)
        report.add(model_name, metrics, counts={name: r.counts() for name, r in results.items()}, notes=notes)
        for name, result in results.items():
            print(f"{model_name} | {result.summary(name)}")
            if name == "similarity":
                similarity[model_name] = result.details
        del model, encoder

    output = Path(options.output_dir) / f"{options.report_name}.json"
    report.save(output)
    table = report.to_markdown()
    report.save_markdown(output.with_suffix(".md"))
    written = [output, output.with_suffix(".md")]
    if similarity:
        png = output.with_name(f"{output.stem}_similarity.png")
        plot_similarity(similarity, png)
        numbers = {
            "summary": {m: report.results[m]["similarity"] for m in similarity},
            "histograms": similarity_histograms(similarity),
            "values": {m: {k: np.asarray(v).round(6).tolist() for k, v in d.items()} for m, d in similarity.items()},
        }
        atomic.write_text(output.with_name(f"{output.stem}_similarity.json"), json.dumps(numbers) + "\n")
        written += [png, output.with_name(f"{output.stem}_similarity.json")]
    print()
    print(table)
    if any("compositional" in per for per in report.results.values()):
        print(COMPOSITIONAL_AVERAGE_DEFINITION + ".")
    print("Wrote " + ", ".join(str(p) for p in written))
    skipped = report.skipped
    if skipped:
        lines = [f"{model}: {', '.join(f'{b} {n}' for b, n in per.items())}" for model, per in skipped.items()]
        print("Items were SKIPPED (counts in the report; the metrics are over the items scored):\n  "
              + "\n  ".join(lines), file=sys.stderr)
        if not options.allow_skipped:
            print("Exit status 1: pass --allow_skipped to accept results computed on part of the data.",
                  file=sys.stderr)
            return 1
    return 0


COMMANDS = [
    Command("evaluate", EvaluateOptions, evaluate_command,
            help="score CLIP-like checkpoints on SugarCrepe, Winoground, TripletData, retrieval, zero-shot, similarity",
            description=__doc__),
]
