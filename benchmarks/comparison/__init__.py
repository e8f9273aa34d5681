"""The paper's comparison in miniature: CLIP, LaCLIP+HN, NegCLIP, TripletCLIP and the negative-images-only ablation
trained from the same initial weights on the procedural world, compared on its held-out compositions at matched
optimizer steps and at matched images seen. ``python benchmarks/compare.py`` runs it (``--smoke`` for a quick
check); see ``benchmarks/README.md``.
"""

from .design import METHODS, ComparisonSettings, RunSpec, config_label
from .report import aggregate, markdown_tables, plot_comparison, plot_similarity_distributions
from .runner import run_all, run_one
from .stats import paired_difference, summarise, t_quantile_975, verdict

__all__ = [
    "METHODS",
    "ComparisonSettings",
    "RunSpec",
    "aggregate",
    "config_label",
    "markdown_tables",
    "paired_difference",
    "plot_comparison",
    "plot_similarity_distributions",
    "run_all",
    "run_one",
    "summarise",
    "t_quantile_975",
    "verdict",
]
