"""Running evaluation tasks: prepare them (data read and checked before any model runs), encode each distinct image
and caption once per run with one `CLIPEncoder`, and score."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..encoding import CLIPEncoder
from .errors import EvaluationInputError
from .tasks import BENCHMARKS, Benchmark, BenchmarkOptions, BenchmarkResult

logger = logging.getLogger(__name__)


def load_benchmark(name: str, data: str | Path, options: BenchmarkOptions | None = None) -> Benchmark:
    """Read and check the data of benchmark ``name`` (nothing is encoded yet)."""
    if name not in BENCHMARKS:
        raise EvaluationInputError(f"Unknown benchmark {name!r}. Choose one of: {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[name](data, options)


def prepare_benchmarks(benchmarks: Mapping[str, str | Path], **options: Any) -> dict[str, Benchmark]:
    """Read and check every benchmark's data before any model runs.

    Args:
        benchmarks: ``{benchmark name: data path}``, names from :data:`BENCHMARKS`.
        **options: `BenchmarkOptions` fields; ``images`` may also be ``{benchmark: folder}``.
    """
    unknown = [name for name in benchmarks if name not in BENCHMARKS]
    if unknown:
        raise EvaluationInputError(f"Unknown benchmark(s) {unknown}. Choose from: {', '.join(BENCHMARKS)}.")
    valid = {f.name for f in fields(BenchmarkOptions)}
    wrong = sorted(set(options) - valid)
    if wrong:
        raise TypeError(f"Unknown benchmark option(s) {wrong}; valid: {sorted(valid)}.")
    images = options.pop("images", None)
    loaded = {}
    for name, path in benchmarks.items():
        folder = images.get(name) if isinstance(images, Mapping) else images
        loaded[name] = load_benchmark(name, path, BenchmarkOptions(images=folder, **options))
    return loaded


def run_benchmarks(encoder: CLIPEncoder, benchmarks: Mapping[str, Benchmark]) -> dict[str, BenchmarkResult]:
    """Run each benchmark with one shared encoder (an image or caption used by several is encoded once)."""
    results = {}
    for name, benchmark in benchmarks.items():
        result = benchmark.run(encoder)
        logger.info(result.summary(name))
        results[name] = result
    return results


def evaluate_model_detailed(model, processor, benchmarks: Mapping[str, str | Path], *, batch_size: int = 64,
                            num_workers: int | None = None, progress: bool = True,
                            reduced_image_decoding: bool = False, **options: Any) -> dict[str, BenchmarkResult]:
    """Evaluate a CLIP-like model on benchmarks; returns full :class:`BenchmarkResult` objects (counts, skipped
    images, details).

    Args:
        model: a `TripletCLIPModel`, `CLIPModel` or any model with ``get_text_features`` / ``get_image_features``
            (unwrapped: not a DDP wrapper). It is put in eval mode and its previous mode restored afterwards.
        processor: its processor.
        benchmarks: ``{benchmark name: data path}``, names from :data:`BENCHMARKS`. SugarCrepe's images default to
            ``<path>/images`` (the built-in world's layout).
        batch_size, num_workers, progress, reduced_image_decoding: see :class:`CLIPEncoder`.
        **options: `BenchmarkOptions` fields (``images``, ``split``, ``streaming``, ``max_items``, ``templates``,
            ...); ``images`` may also be ``{benchmark: folder}``.
    """
    loaded = prepare_benchmarks(benchmarks, **options)
    encoder = CLIPEncoder(model, processor, batch_size=batch_size, num_workers=num_workers, progress=progress,
                          reduced_image_decoding=reduced_image_decoding)
    was_training = model.training
    model.eval()
    try:
        return run_benchmarks(encoder, loaded)
    finally:
        model.train(was_training)


def evaluate_model(model, processor, benchmarks: Mapping[str, str | Path], **kwargs: Any) -> dict[str, dict[str, float]]:
    """As :func:`evaluate_model_detailed`, returning ``{benchmark: {metric: value}}`` (fractions in [0, 1]).

    Example:
        >>> benchmarks = WorldLayout("world").benchmark_paths(["sugarcrepe", "winoground"])
        >>> results = evaluate_model(model, processor, benchmarks)  # doctest: +SKIP
        >>> results["sugarcrepe"]["overall"]  # doctest: +SKIP
    """
    return {name: result.metrics for name, result in evaluate_model_detailed(model, processor, benchmarks,
                                                                             **kwargs).items()}
