"""The evaluation tasks, one file each (its reader, its scoring and its card metadata), registered by name.

The benchmarks: each reads its data, encodes it once with a :class:`CLIPEncoder`, and scores it.

Every task is built in two steps, so that bad input fails before any model runs: constructing it reads and checks the
data; `Benchmark.run` encodes and scores. The scoring rules are the pure functions of `..metrics`. A new benchmark is
one new file here (a `Benchmark` subclass with its ``name``) and its entry in :data:`BENCHMARKS`.

=============  =========================================================  ==========================================
name           data                                                       metrics
=============  =========================================================  ==========================================
sugarcrepe     folder of the seven JSON files, or one (+ image folder)    the subsets, replace/swap/add, overall
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
from .winoground import WinogroundBenchmark
from .zeroshot import ZeroShotBenchmark

BENCHMARKS: dict[str, type[Benchmark]] = {task.name: task for task in (
    SugarCrepeBenchmark, WinogroundBenchmark, TripletDataBenchmark, RetrievalBenchmark, ZeroShotBenchmark,
    SimilarityBenchmark, BiVLCBenchmark, ColorSwapBenchmark, SugarCrepePPBenchmark,
    MMVPBenchmark, AROBenchmark,
)}
"""Every evaluation task by name."""

__all__ = ["AROBenchmark", "BENCHMARKS", "BiVLCBenchmark", "Benchmark", "BenchmarkOptions", "BenchmarkResult",
           "ColorSwapBenchmark", "MMVPBenchmark", "RetrievalBenchmark", "SimilarityBenchmark", "SugarCrepeBenchmark",
           "SugarCrepePPBenchmark", "TripletDataBenchmark", "WinogroundBenchmark", "ZeroShotBenchmark"]
