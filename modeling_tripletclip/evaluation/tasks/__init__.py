"""The evaluation tasks, one file each (its reader, its scoring and its card metadata), registered by name.

The benchmarks: each reads its data, encodes it once with a :class:`CLIPEncoder`, and scores it.

Every task is built in two steps, so that bad input fails before any model runs: constructing it reads and checks the
data; `Benchmark.run` encodes and scores. The scoring rules are the pure functions of `..metrics`. A new benchmark is
one new file here (a `Benchmark` subclass with its ``name``) and its entry in :data:`BENCHMARKS`.

=============  =========================================================  ==========================================
name           data                                                       metrics
=============  =========================================================  ==========================================
sugarcrepe     seven JSON files (+ images), or HuggingFaceM4/SugarCrepe   the subsets, replace/swap/add, overall
winoground     dataset with image_0, image_1, caption_0, caption_1 [tag]  text, image, group (+ "<tag>/text", ...)
tripletdata    TripletData (image, caption, negative_image, negative_...)  text, image, group (+ per negative_kind)
retrieval      image + captions (list); Karpathy JSON; CLIP_benchmark     image/text_retrieval_recall@1/5/10
zeroshot       image + ClassLabel; class folders; CLIP_benchmark          top1, top5, mean_per_class_recall
similarity     TripletData (or Winoground-style) dataset                  image/text_similarity_mean/std/median
=============  =========================================================  ==========================================

Each result says how many items the data had, how many were scored and how many were skipped (an image that could not
be decoded, a caption that could not be read), per SugarCrepe subset too. A metric that does not apply to the data
(top-5 accuracy with fewer than five classes, recall@k with no more than k candidates) is left out with a note,
never reported as 100%.
"""

from __future__ import annotations

from pathlib import Path

from .aro import AROBenchmark
from .base import Benchmark, BenchmarkOptions, BenchmarkResult
from .bivlc import BiVLCBenchmark
from .colorswap import ColorSwapBenchmark
from .mmvp import MMVPBenchmark
from .retrieval import RetrievalBenchmark
from .similarity import SimilarityBenchmark
from .sugarcrepe import SugarCrepeBenchmark
from .sugarcrepe_pp import SugarCrepePPBenchmark
from .tripletdata import TripletDataBenchmark
from .valse import VALSEBenchmark
from .whatsup import WhatsUpBenchmark
from .winoground import WinogroundBenchmark
from .zeroshot import ZeroShotBenchmark

BENCHMARKS: dict[str, type[Benchmark]] = {task.name: task for task in (
    SugarCrepeBenchmark, WinogroundBenchmark, TripletDataBenchmark, RetrievalBenchmark, ZeroShotBenchmark,
    SimilarityBenchmark, BiVLCBenchmark, ColorSwapBenchmark, SugarCrepePPBenchmark,
    MMVPBenchmark, AROBenchmark, VALSEBenchmark, WhatsUpBenchmark,
)}
"""Every evaluation task by name."""

#: The compositional benchmarks ``--benchmark compositional`` runs, in report order.
COMPOSITIONAL: tuple[str, ...] = tuple(name for name, task in BENCHMARKS.items() if task.folder_names)
COMPOSITIONAL_AVERAGE_DEFINITION = (
    "compositional average = unweighted mean, over the compositional benchmarks run, of each one's headline metric ("
    + ", ".join(f"{name}: {BENCHMARKS[name].headline}" for name in COMPOSITIONAL) + "); reported as 'average' only when "
    "every one of them was run, else as 'partial_average' with the benchmarks it covers"
)


def find_compositional(data_root: str | Path) -> tuple[dict[str, str], list[str]]:
    """``({benchmark: folder}, [absent benchmarks])`` for the compositional benchmarks found under ``data_root``."""
    root = Path(data_root)
    found, absent = {}, []
    for name in COMPOSITIONAL:
        folder = next((root / n for n in BENCHMARKS[name].folder_names if (root / n).exists()), None)
        if folder is None:
            absent.append(name)
        else:
            found[name] = str(folder)
    return found, absent


def compositional_average(metrics: dict[str, dict[str, float]]) -> tuple[dict[str, float], str]:
    """The compositional average of one model's ``{benchmark: {metric: value}}`` and the note that defines it."""
    covered = [name for name in COMPOSITIONAL if BENCHMARKS[name].headline in metrics.get(name, {})]
    if not covered:
        return {}, ""
    value = sum(metrics[name][BENCHMARKS[name].headline] for name in covered) / len(covered)
    complete = len(covered) == len(COMPOSITIONAL)
    key = "average" if complete else "partial_average"
    note = f"compositional: {key} over {', '.join(covered)}. {COMPOSITIONAL_AVERAGE_DEFINITION}."
    return {key: value}, note

__all__ = ["AROBenchmark", "BENCHMARKS", "COMPOSITIONAL", "compositional_average", "find_compositional", "BiVLCBenchmark", "Benchmark", "BenchmarkOptions", "BenchmarkResult",
           "ColorSwapBenchmark", "MMVPBenchmark", "RetrievalBenchmark", "SimilarityBenchmark", "SugarCrepeBenchmark",
           "SugarCrepePPBenchmark", "TripletDataBenchmark", "VALSEBenchmark", "WhatsUpBenchmark", "WinogroundBenchmark",
           "ZeroShotBenchmark"]
