"""Evaluation of CLIP-like models on the paper's benchmarks, with the official scoring rules.

Benchmarks: SugarCrepe, Winoground-style pairs, TripletData as an evaluation set, image-text retrieval, zero-shot
classification, and the similarity analysis of positive vs negative pairs. Any TripletCLIP or plain CLIP checkpoint
can be evaluated; each distinct image and caption is encoded once per run.

Python::

    from modeling_tripletclip.evaluation import evaluate_model, load_model_and_processor

    model, processor = load_model_and_processor("outputs/tripletclip-world")
    results = evaluate_model(model, processor, {"sugarcrepe": "world/sugarcrepe", "winoground": "world/winoground"})
    results = evaluate_model(model, processor, world_benchmarks("world"))  # every benchmark of the built-in world

Command line::

    tripletclip evaluate --model outputs/tripletclip-world --model openai/clip-vit-base-patch32 \\
        --benchmark sugarcrepe --data world/sugarcrepe --benchmark winoground --data world/winoground \\
        --output report.json
    tripletclip evaluate --model outputs/tripletclip-world --model untrained/ --world world --output report.json
"""

from .benchmarks import (
    BENCHMARKS,
    Benchmark,
    BenchmarkOptions,
    BenchmarkResult,
    evaluate_model,
    evaluate_model_detailed,
    load_benchmark,
    prepare_benchmarks,
    run_benchmarks,
    world_benchmarks,
)
from .encoding import CLIPEncoder, ImageSource, load_model_and_processor
from .errors import EvaluationInputError
from .metric_modules import METRIC_MODULE_NAMES, metric_module_path
from .report import eval_results_for_card, load_report, markdown_table, plot_similarity, save_report
from .templates import OPENAI_IMAGENET_TEMPLATES

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkOptions",
    "BenchmarkResult",
    "CLIPEncoder",
    "EvaluationInputError",
    "ImageSource",
    "METRIC_MODULE_NAMES",
    "OPENAI_IMAGENET_TEMPLATES",
    "eval_results_for_card",
    "evaluate_model",
    "evaluate_model_detailed",
    "load_benchmark",
    "load_model_and_processor",
    "load_report",
    "markdown_table",
    "metric_module_path",
    "plot_similarity",
    "prepare_benchmarks",
    "run_benchmarks",
    "save_report",
    "world_benchmarks",
]
