"""Evaluation reports: the JSON file, the Markdown comparison table, similarity plots and model-card results.

A report is ``{"<model as given>": {"<benchmark>": {"<metric>": value}}}`` with fractions in [0, 1] (the
similarity analysis holds cosine similarities in [-1, 1]).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .metrics import SUGARCREPE_OVERALL_DEFINITION

Report = dict[str, dict[str, dict[str, float]]]

# Benchmarks whose values are not fractions: shown as they are, not as percentages.
_RAW_VALUE_BENCHMARKS = ("similarity",)

# Model-card metadata per benchmark: (task name, dataset type, dataset name).
CARD_DATASETS: dict[str, tuple[str, str, str]] = {
    "sugarcrepe": ("Compositional image-text matching", "sugarcrepe", "SugarCrepe"),
    "winoground": ("Compositional image-text matching", "facebook/winoground", "Winoground"),
    "tripletdata": ("Compositional image-text matching", "tripletdata", "TripletData (Winoground-style)"),
    "retrieval": ("Zero-shot image-text retrieval", "retrieval", "Image-text retrieval"),
    "zeroshot": ("Zero-shot image classification", "zeroshot", "Zero-shot classification"),
}
CARD_TASK_TYPE = "zero-shot-image-classification"


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_report(report: Report, path: str | Path) -> Path:
    """Write the report as JSON (atomically: a crash leaves the previous file or none, never half a file)."""
    path = Path(path)
    _atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def load_report(path: str | Path) -> Report:
    """Read a report written by :func:`save_report` (or the trainer's ``eval_results.json``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _format(benchmark: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if benchmark in _RAW_VALUE_BENCHMARKS:
        return f"{value:.3f}"
    return f"{100 * value:.2f}"


def markdown_table(
    report: Report, notes: Sequence[str] = (), counts: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """A Markdown table with one row per benchmark and metric and one column per model.

    Accuracies and recalls are shown as percentages; similarity values as cosine similarities. ``notes`` are added
    below the table (e.g. which average ``overall`` is); ``counts`` (``{model: {benchmark: "7511/7511"}}``) adds a
    table of how many items each run scored.
    """
    models = list(report)
    rows: list[tuple[str, str]] = []
    for model in models:
        for benchmark, metrics in report[model].items():
            for metric in metrics:
                if (benchmark, metric) not in rows:
                    rows.append((benchmark, metric))
    header = "| benchmark | metric | " + " | ".join(models) + " |"
    lines = [header, "|---|---|" + "---:|" * len(models)]
    for benchmark, metric in rows:
        values = [_format(benchmark, report[m].get(benchmark, {}).get(metric)) for m in models]
        lines.append(f"| {benchmark} | {metric} | " + " | ".join(values) + " |")
    benchmarks = list(dict.fromkeys(b for b, _ in rows))
    units = ", similarities as cosine similarity." if "similarity" in benchmarks else "."
    footer = ["", "Accuracies and recalls in %" + units]
    if "sugarcrepe" in benchmarks:
        footer.append(f"SugarCrepe {SUGARCREPE_OVERALL_DEFINITION}; replace, swap, add = mean of their subsets.")
    footer.extend(n for n in dict.fromkeys(notes) if not n.startswith("SugarCrepe:"))
    if counts:
        footer += ["", "| benchmark | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
        for benchmark in benchmarks:
            cells = [counts.get(m, {}).get(benchmark, "–") for m in models]
            footer.append(f"| {benchmark} | " + " | ".join(cells) + " |")
        footer.append("")
        footer.append("Items scored / items in the data (the rest had an image that could not be decoded).")
    return "\n".join(lines + footer) + "\n"


def save_markdown(report: Report, path: str | Path, **kwargs) -> Path:
    """Write :func:`markdown_table` to ``path`` (atomically)."""
    path = Path(path)
    _atomic_write_text(path, markdown_table(report, **kwargs))
    return path


def similarity_histograms(values: Mapping[str, Mapping[str, np.ndarray]], bins: int = 40) -> dict:
    """Histogram counts of each model's similarity values on shared bin edges, JSON-ready.

    Args:
        values: ``{model: {"image_similarity": array, "text_similarity": array}}``.
    Returns:
        ``{"bin_edges": [...], "<model>": {"image_similarity": [counts], "text_similarity": [counts]}}``.
    """
    edges = np.linspace(-1.0, 1.0, bins + 1)
    out: dict = {"bin_edges": edges.round(6).tolist()}
    for model, per_modality in values.items():
        out[model] = {k: np.histogram(np.clip(v, -1, 1), bins=edges)[0].tolist() for k, v in per_modality.items()}
    return out


def plot_similarity(values: Mapping[str, Mapping[str, np.ndarray]], path: str | Path, bins: int = 40) -> Path:
    """Save the similarity-distribution figure: one panel per modality, one histogram per model.

    Args:
        values: ``{model: {"image_similarity": array, "text_similarity": array}}`` (cosine similarity between each
            positive and its negative).
        path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("image_similarity", "Images: positive vs negative"),
        ("text_similarity", "Captions: positive vs negative"),
    )
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for axis, (key, title) in zip(axes, panels):
        present = [np.asarray(v[key]) for v in values.values() if key in v and len(v[key])]
        if not present:
            axis.set_visible(False)
            continue
        low = float(min(v.min() for v in present))
        high = float(max(v.max() for v in present))
        pad = max(0.01, 0.05 * (high - low))
        edges = np.linspace(max(-1.0, low - pad), min(1.0, high + pad), bins + 1)
        for model, per_modality in values.items():
            if key in per_modality and len(per_modality[key]):
                v = np.asarray(per_modality[key])
                axis.hist(v, bins=edges, alpha=0.5, label=f"{model} (mean {v.mean():.3f})")
        axis.set_title(title)
        axis.set_xlabel("cosine similarity")
        axis.set_ylabel("pairs")
        axis.legend(fontsize=8)
    figure.suptitle("Cosine similarity of each positive with its hard negative (lower: the model tells them apart)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)
    return path


def _model_results(report: Mapping, model_name: str | None) -> Mapping[str, Mapping[str, float]]:
    """The ``{benchmark: {metric: value}}`` of one model, from a full report or a single-model result."""
    def is_metrics(value):
        return isinstance(value, Mapping) and all(isinstance(v, (int, float)) for v in value.values())

    if report and all(is_metrics(v) for v in report.values()):
        return report
    if model_name is not None and model_name in report:
        return report[model_name]
    if len(report) == 1:
        return next(iter(report.values()))
    raise ValueError(
        f"The report holds several models ({', '.join(report)}); pass model_name to choose the one for the card."
    )


def eval_results_for_card(
    report: Mapping,
    model_name: str | None = None,
    *,
    dataset_names: Mapping[str, str] | None = None,
    dataset_types: Mapping[str, str] | None = None,
    dataset_split: str | None = None,
    as_percent: bool = False,
    source_name: str | None = None,
) -> list:
    """Evaluation results as ``huggingface_hub.EvalResult`` objects for ``ModelCardData(eval_results=...)``.

    Args:
        report: a full report ``{model: {benchmark: {metric: value}}}`` or one model's ``{benchmark: {metric:
            value}}`` (what :func:`evaluate_model` returns).
        model_name: which model of a full report (needed when it holds several).
        dataset_names / dataset_types: per benchmark, the pretty name and the dataset id shown on the card (e.g.
            ``{"sugarcrepe": "SugarCrepe-format held-out set of the built-in world"}``); defaults in
            :data:`CARD_DATASETS`.
        dataset_split: the split evaluated, if one applies to all.
        as_percent: report values ×100 (as the paper's tables) instead of fractions.
        source_name: where the numbers come from (e.g. "tripletclip evaluate").

    Returns:
        One ``EvalResult`` per benchmark and metric. The similarity analysis is descriptive, not a score, and is
        left out. SugarCrepe's ``overall`` is named as the mean of the seven subsets.
    """
    from huggingface_hub import EvalResult

    results = []
    for benchmark, metrics in _model_results(report, model_name).items():
        if benchmark not in CARD_DATASETS:
            continue
        task_name, dataset_type, dataset_name = CARD_DATASETS[benchmark]
        dataset_type = (dataset_types or {}).get(benchmark, dataset_type)
        dataset_name = (dataset_names or {}).get(benchmark, dataset_name)
        for metric, value in metrics.items():
            metric_type = "recall" if "recall" in metric else "accuracy"
            pretty = metric
            if benchmark == "sugarcrepe" and metric == "overall":
                pretty = "overall (mean of the seven subsets)"
            elif benchmark == "sugarcrepe" and metric in ("replace", "swap", "add"):
                pretty = f"{metric} (mean of its subsets)"
            results.append(
                EvalResult(
                    task_type=CARD_TASK_TYPE,
                    task_name=task_name,
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=dataset_split,
                    metric_type=metric_type,
                    metric_name=f"{dataset_name} {pretty}",
                    metric_value=round(100 * float(value), 2) if as_percent else float(value),
                    source_name=source_name,
                )
            )
    return results
