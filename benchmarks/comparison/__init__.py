"""The paper's comparison in miniature: CLIP, LaCLIP+HN, NegCLIP, TripletCLIP and the negative-images-only ablation
trained from the same initial weights on the procedural world, compared on its held-out compositions at matched
optimizer steps and at matched images seen. ``python -m benchmarks.comparison`` runs it (``--smoke`` for a quick
check); see ``benchmarks/README.md``.
"""

from .design import METHODS, ComparisonSettings, RunSpec, config_label
from .report import aggregate, markdown_tables, plot_comparison, plot_similarity_distributions
from .runner import run_all, run_one
from .stats import detectable_difference, paired_difference, power_statement, seeds_needed, summarise, t_quantile_975, verdict

__all__ = [
    "METHODS",
    "ComparisonSettings",
    "RunSpec",
    "aggregate",
    "config_label",
    "detectable_difference",
    "markdown_tables",
    "paired_difference",
    "plot_comparison",
    "plot_similarity_distributions",
    "power_statement",
    "run_all",
    "run_one",
    "seeds_needed",
    "summarise",
    "t_quantile_975",
    "verdict",
]
