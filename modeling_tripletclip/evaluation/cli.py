"""tripletclip evaluate: score one or more CLIP-like checkpoints on one or more benchmarks.

    tripletclip evaluate --model M [--model M2 ...] --benchmark NAME --data PATH [--benchmark NAME --data PATH ...]
        [--images DIR] --output report.json
    tripletclip evaluate --model M [--model M2 ...] --world DIR --output report.json

--data is given once per --benchmark, in the same order, or as NAME=PATH (then --benchmark may be left out).
--world DIR takes the data of the built-in world written by `tripletclip data world --out DIR`: every benchmark it
has, or those named by --benchmark; --data NAME=PATH still overrides one.
--images is the image folder of data that names image files (SugarCrepe, Karpathy-split JSON), for all of them, or
NAME=DIR for one.

Writes the JSON report {model: {benchmark: {metric: value}}}, a Markdown table beside it (report.md), and for the
similarity analysis a histogram PNG and its numbers (report_similarity.png, report_similarity.json).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .benchmarks import BENCHMARKS
from .errors import EvaluationInputError

BENCHMARK_NAMES = tuple(BENCHMARKS)

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score CLIP-like checkpoints on SugarCrepe, Winoground, TripletData, retrieval, zero-shot, similarity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", action="append", required=True, metavar="M",
                        help="checkpoint folder or Hub id (TripletCLIP or CLIP); repeat to compare models")
    parser.add_argument("--benchmark", action="append", default=[], choices=BENCHMARK_NAMES, metavar="NAME",
                        help=f"benchmark to run, one of {', '.join(BENCHMARK_NAMES)}; repeat for several")
    parser.add_argument("--data", action="append", default=[], metavar="PATH",
                        help="the benchmark's data, once per --benchmark in the same order, or NAME=PATH")
    parser.add_argument("--world", type=Path, default=None, metavar="DIR",
                        help="evaluate on the built-in world in DIR (sugarcrepe, winoground, retrieval; tripletdata "
                             "and similarity on its held-out test triplets)")
    parser.add_argument("--images", action="append", default=[], metavar="DIR",
                        help="image folder for SugarCrepe / Karpathy-split JSON (default for SugarCrepe: "
                             "<data>/images); NAME=DIR for one benchmark")
    parser.add_argument("--output", default="report.json", type=Path, help="the JSON report (default: report.json)")
    parser.add_argument("--split", default=None, help="dataset split (default: test, else validation, else train)")
    parser.add_argument("--streaming", action="store_true", help="stream datasets instead of preparing them on disk")
    parser.add_argument("--max-items", type=int, default=None, metavar="N", help="score only the first N rows/items")
    parser.add_argument("--templates", type=Path, default=None, metavar="FILE",
                        help="zero-shot prompt templates: JSON list or one per line, each with one '{}' "
                             "(default: OpenAI's 80 ImageNet templates)")
    parser.add_argument("--batch-size", type=int, default=64, help="images or captions per forward pass")
    parser.add_argument("--num-workers", type=int, default=None, help="threads decoding images")
    parser.add_argument("--device", default=None, help="cuda, cpu, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="model dtype (default: the checkpoint's)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow code shipped with a checkpoint to run (not needed for TripletCLIP or CLIP)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def pair_benchmarks_with_data(benchmarks: list[str], data: list[str], world: Path | None = None) -> dict[str, str]:
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
        from .benchmarks import world_benchmarks

        if positional:
            raise EvaluationInputError("With --world, give other data only as --data NAME=PATH.")
        if benchmarks:
            needing = [b for b in benchmarks if b not in keyed]
            from_world = world_benchmarks(world, needing) if needing else {}
        else:
            from_world = {k: v for k, v in world_benchmarks(world).items() if k not in keyed}
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


def run(args: argparse.Namespace) -> int:
    """Run the ``evaluate`` command; returns the exit code (2 for bad input)."""
    try:
        return _run(args)
    except EvaluationInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from .benchmarks import prepare_benchmarks, run_benchmarks
    from .encoding import CLIPEncoder, check_clip_like_checkpoint, load_model_and_processor
    from .report import (
        _atomic_write_text,
        markdown_table,
        plot_similarity,
        save_markdown,
        save_report,
        similarity_histograms,
    )
    from .templates import load_templates

    benchmarks = pair_benchmarks_with_data(args.benchmark, args.data, world=args.world)
    images = parse_images(args.images, list(benchmarks))
    templates = load_templates(args.templates) if args.templates else None
    if len(set(args.model)) != len(args.model):
        raise EvaluationInputError("A --model is given twice; give each model once.")

    # Every input is checked before any model runs: the data first, then each model's configuration.
    prepared = prepare_benchmarks(
        benchmarks, images=images, split=args.split, streaming=args.streaming, max_items=args.max_items,
        templates=templates,
    )
    for model_name in args.model:
        check_clip_like_checkpoint(model_name, trust_remote_code=args.trust_remote_code)

    report, counts, notes, similarity = {}, {}, [], {}
    for model_name in args.model:
        logger.info("Evaluating %s on %s", model_name, ", ".join(benchmarks))
        model, processor = load_model_and_processor(
            model_name, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code
        )
        encoder = CLIPEncoder(
            model, processor, batch_size=args.batch_size, num_workers=args.num_workers, progress=not args.no_progress
        )
        results = run_benchmarks(encoder, prepared)
        report[model_name] = {name: result.metrics for name, result in results.items()}
        counts[model_name] = {name: f"{r.num_scored}/{r.num_items}" for name, r in results.items()}
        for name, result in results.items():
            print(f"{model_name} | {result.summary(name)}")
            notes.extend(result.notes)
            if name == "similarity":
                similarity[model_name] = result.details
        del model, encoder

    output = Path(args.output)
    save_report(report, output)
    table = markdown_table(report, notes=notes, counts=counts)
    save_markdown(report, output.with_suffix(".md"), notes=notes, counts=counts)
    written = [output, output.with_suffix(".md")]
    if similarity:
        png = output.with_name(f"{output.stem}_similarity.png")
        plot_similarity(similarity, png)
        numbers = {
            "summary": {m: report[m]["similarity"] for m in similarity},
            "histograms": similarity_histograms(similarity),
            "values": {m: {k: np.asarray(v).round(6).tolist() for k, v in d.items()} for m, d in similarity.items()},
        }
        _atomic_write_text(output.with_name(f"{output.stem}_similarity.json"), json.dumps(numbers) + "\n")
        written += [png, output.with_name(f"{output.stem}_similarity.json")]
    print()
    print(table)
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0
