"""``evaluate`` metric modules for the benchmarks' scoring rules, loadable offline by path.

Each sub-folder ``<name>/<name>.py`` defines one :class:`evaluate.Metric`, a thin wrapper over the pure functions of
:mod:`modeling_tripletclip.evaluation.metrics`::

    import evaluate
    from modeling_tripletclip.evaluation import metric_module_path

    sugarcrepe = evaluate.load(metric_module_path("sugarcrepe_accuracy"))
    sugarcrepe.compute(positive_scores=[0.3, 0.2], negative_scores=[0.1, 0.2])  # {"accuracy": 0.5}
"""

from pathlib import Path
from typing import Any

METRIC_MODULES_DIR = Path(__file__).resolve().parent
METRIC_MODULE_NAMES = ("sugarcrepe_accuracy", "winoground", "retrieval_recall", "zero_shot_classification")


def metric_module_path(name: str) -> str:
    """The folder of the metric module ``name``, to pass to ``evaluate.load``."""
    if name not in METRIC_MODULE_NAMES:
        raise ValueError(f"Unknown metric module {name!r}. Choose one of: {', '.join(METRIC_MODULE_NAMES)}.")
    return str(METRIC_MODULES_DIR / name)


def metric_info(description: str, inputs_description: str, citation: str, **columns: Any):
    """The `evaluate.MetricInfo` of one of these modules: its texts and its input columns (name -> datasets feature,
    or the string ``"float64"``, ``"int64"``, ``"list"`` for a list of float64)."""
    import datasets
    import evaluate

    def feature(kind):
        if kind == "list":
            return datasets.List(datasets.Value("float64"))
        return datasets.Value(kind) if isinstance(kind, str) else kind

    return evaluate.MetricInfo(description=description, citation=citation, inputs_description=inputs_description,
                               features=datasets.Features({name: feature(kind) for name, kind in columns.items()}))
