"""Evaluation of CLIP-like models on the paper's benchmarks, with the official scoring rules.

Benchmarks: SugarCrepe, Winoground-style pairs, TripletData as an evaluation set, image-text retrieval, zero-shot
classification, and the similarity analysis of positive vs negative pairs. Any TripletCLIP or plain CLIP checkpoint
can be evaluated; each distinct image and caption is encoded once per run. The data may come in the formats the
community downloads (each task's file in :mod:`.tasks` says which); the results go into an `EvaluationReport`.

Python::

    from dataset_builders.world import WorldLayout
    from modeling_tripletclip.evaluation import evaluate_model, load_model_and_processor

    model, processor = load_model_and_processor("outputs/tripletclip-world")
    results = evaluate_model(model, processor, {"sugarcrepe": "world/sugarcrepe", "winoground": "world/winoground"})
    results = evaluate_model(model, processor, WorldLayout("world").benchmark_paths())  # the built-in world's

Command line::

    tripletclip evaluate --model outputs/tripletclip-world --model openai/clip-vit-base-patch32 \\
        --benchmark sugarcrepe --data world/sugarcrepe --benchmark winoground --data world/winoground \\
        --output_dir reports
    tripletclip evaluate --model outputs/tripletclip-world --model untrained/ --world world --output_dir reports
"""

from ..encoding import CLIPEncoder, ImageSource
from ..loading import load_model_and_processor
from .errors import EvaluationInputError
from .report import EvaluationReport, eval_results_for_card, plot_similarity, split_report
from .suite import evaluate_model, evaluate_model_detailed, load_benchmark, prepare_benchmarks, run_benchmarks
from .tasks import BENCHMARKS, Benchmark, BenchmarkOptions, BenchmarkResult
from .templates import OPENAI_IMAGENET_TEMPLATES

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkOptions",
    "BenchmarkResult",
    "CLIPEncoder",
    "EvaluationInputError",
    "EvaluationReport",
    "ImageSource",
    "OPENAI_IMAGENET_TEMPLATES",
    "eval_results_for_card",
    "evaluate_model",
    "evaluate_model_detailed",
    "load_benchmark",
    "load_model_and_processor",
    "plot_similarity",
    "prepare_benchmarks",
    "run_benchmarks",
    "split_report",
]
