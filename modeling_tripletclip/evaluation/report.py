"""The evaluation report: one type that every reader and writer of results goes through.

An `EvaluationReport` holds, per model (as it was given, e.g. a folder or a Hub id) and per benchmark, the metrics
(fractions in [0, 1]; the similarity analysis holds cosine similarities in [-1, 1]) and the counts behind them (items
in the data, scored, skipped, per SugarCrepe subset too), plus the notes a reader needs (which average ``overall`` is,
which metric does not apply). It is written by ``tripletclip evaluate`` (``report.json``) and by the trainer
(``eval_results.json``), and read by the model card and ``tripletclip push``.

On disk (JSON)::

    {"results": {model: {benchmark: {metric: value}}},
     "counts":  {model: {benchmark: {"items": N, "scored": M, "skipped": K, "subsets": {name: {...}}}}},
     "notes": [...]}

A plain ``{model: {benchmark: {metric: value}}}`` or one model's ``{benchmark: {metric: value}}`` (earlier reports,
`evaluate_model`'s return value) is read as well.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataset_builders.utils import atomic

from .metrics import SUGARCREPE_OVERALL_DEFINITION
from .tasks import BENCHMARKS

Results = dict[str, dict[str, dict[str, float]]]
SINGLE_MODEL_KEY = "this model"

# Benchmarks whose values are not fractions: shown as they are, not as percentages.
_RAW_VALUE_BENCHMARKS = ("similarity",)

#: Model-card metadata per benchmark, from each task's file: (task name, dataset type, dataset name).
CARD_DATASETS: dict[str, tuple[str, str, str]] = {name: task.card for name, task in BENCHMARKS.items() if task.card}
#: The built-in world's benchmarks have the official formats but are not the official datasets: a card must never
#: report them under the names of SugarCrepe or Winoground. Each has its own dataset type (the model-index groups
#: results by task and dataset type): (dataset name, dataset type).
WORLD_CARD_DATASETS: dict[str, tuple[str, str]] = {name: task.world_card for name, task in BENCHMARKS.items()
                                                   if task.world_card}
CARD_TASK_TYPE = "zero-shot-image-classification"


def _numbers(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Only the finite numbers of ``{benchmark: {metric: value}}`` (counts written as text, NaN: not results)."""
    clean: dict[str, dict[str, float]] = {}
    for benchmark, metrics in results.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"Benchmark {benchmark!r} must map metric names to numbers, got {metrics!r}.")
        values = {str(m): float(v) for m, v in metrics.items()
                  if not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(float(v))}
        if values:
            clean[str(benchmark)] = values
    return clean


@dataclass
class EvaluationReport:
    """Results of one or more models on one or more benchmarks, with their counts and notes.

    Attributes:
        results: ``{model: {benchmark: {metric: value}}}``.
        counts: ``{model: {benchmark: {"items", "scored", "skipped", "subsets"?}}}`` (absent for older reports).
        notes: statements a reader of the numbers needs (definitions, metrics that do not apply).
    """

    results: Results = field(default_factory=dict)
    counts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ reading and writing

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any] | None, model_key: str | None = None) -> "EvaluationReport":
        """A report from its JSON form, a plain ``{model: {benchmark: {metric: value}}}``, or one model's
        ``{benchmark: {metric: value}}`` (stored under ``model_key``, default ``"this model"``)."""
        if not value:
            return cls()
        if isinstance(value, Mapping) and isinstance(value.get("results"), Mapping) and \
                set(value) <= {"results", "counts", "notes"}:
            return cls({str(m): _numbers(r) for m, r in value["results"].items()},
                       {str(m): dict(c) for m, c in (value.get("counts") or {}).items()},
                       list(value.get("notes") or []))
        if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
            kinds = [type(v).__name__ for v in dict(value).values()][:3] if isinstance(value, Mapping) else []
            raise ValueError(
                "An evaluation report must be {benchmark: {metric: value}} or {model: {benchmark: {metric: value}}}; "
                f"got {type(value).__name__} with values {kinds}."
            )
        nested = all(isinstance(m, Mapping) for per_model in value.values() for m in per_model.values())
        if not nested:
            return cls({model_key or SINGLE_MODEL_KEY: _numbers(value)})
        return cls({str(name): _numbers(results) for name, results in value.items()})

    @classmethod
    def load(cls, path: str | Path) -> "EvaluationReport":
        return cls.from_mapping(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_json(self) -> dict[str, Any]:
        return {"results": self.results, "counts": self.counts, "notes": list(dict.fromkeys(self.notes))}

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically."""
        return atomic.write_json(path, self.to_json(), allow_nan=False)

    def add(self, model: str, results: Mapping[str, Mapping[str, float]],
            counts: Mapping[str, Mapping[str, Any]] | None = None, notes: Sequence[str] = ()) -> None:
        """Add (or replace) one model's results."""
        self.results[str(model)] = _numbers(results)
        if counts:
            self.counts[str(model)] = {b: dict(c) for b, c in counts.items()}
        self.notes.extend(n for n in notes if n not in self.notes)

    # ------------------------------------------------------------------ selecting

    @property
    def models(self) -> list[str]:
        return list(self.results)

    def select(self, model: str | None = None) -> str | None:
        """The key of the model a card describes: ``model`` itself, or the only model of the report.

        Raises:
            ValueError: several models and none named, or a model the report does not hold.
        """
        if not self.results:
            return None
        if model is None:
            if len(self.results) == 1:
                return next(iter(self.results))
            raise ValueError(
                f"The evaluation report covers several models ({', '.join(self.results)}); say which one the card "
                f"describes (model_key=..., or --eval_model on the command line)."
            )
        if model not in self.results:
            raise ValueError(f"The evaluation report has no model {model!r}; it has: {', '.join(self.results)}.")
        return model

    def key_for(self, *names: str | Path | None) -> str | None:
        """The report's key that names one of ``names`` (a checkpoint folder as given to ``tripletclip evaluate``,
        resolved, or the ``output_dir`` of the run that wrote it); the only key of a one-model report; else None."""
        if len(self.results) == 1:
            return next(iter(self.results))
        wanted = {str(n) for n in names if n} | {str(Path(str(n)).expanduser().resolve()) for n in names if n}
        for key in self.results:
            if key in wanted or str(Path(key).expanduser().resolve()) in wanted:
                return key
        return None

    @property
    def skipped(self) -> dict[str, dict[str, int]]:
        """``{model: {benchmark: items skipped}}`` for every run that skipped items."""
        found: dict[str, dict[str, int]] = {}
        for model, per_benchmark in self.counts.items():
            for benchmark, count in per_benchmark.items():
                if count.get("skipped"):
                    found.setdefault(model, {})[benchmark] = int(count["skipped"])
        return found

    # ------------------------------------------------------------------ rendering

    def rows(self, models: Sequence[str] | None = None) -> list[tuple[str, str, list[float | None]]]:
        """``(benchmark, metric, [value per model])`` in the order the metrics first appear."""
        models = list(models or self.results)
        order: list[tuple[str, str]] = []
        for model in models:
            for benchmark, metrics in self.results.get(model, {}).items():
                for metric in metrics:
                    if (benchmark, metric) not in order:
                        order.append((benchmark, metric))
        return [(b, m, [self.results.get(model, {}).get(b, {}).get(m) for model in models]) for b, m in order]

    @staticmethod
    def format_value(benchmark: str, value: float | None, percent: bool = True) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if benchmark in _RAW_VALUE_BENCHMARKS or not percent:
            return f"{value:.3f}"
        return f"{100 * value:.2f}"

    def to_markdown(self, models: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
                    percent: bool = True) -> str:
        """A Markdown table (one row per benchmark and metric, one column per model), then the units, the notes and,
        when the report has counts, how many items each run scored and skipped."""
        models = list(models or self.results)
        labels = dict(labels or {})
        header = "| benchmark | metric | " + " | ".join(labels.get(m, m) for m in models) + " |"
        lines = [header, "|---|---|" + "---:|" * len(models)]
        rows = self.rows(models)
        for benchmark, metric, values in rows:
            cells = [self.format_value(benchmark, v, percent) for v in values]
            lines.append(f"| {benchmark} | {metric} | " + " | ".join(cells) + " |")
        benchmarks = list(dict.fromkeys(b for b, _, _ in rows))
        units = ", similarities as cosine similarity." if "similarity" in benchmarks else "."
        footer = ["", ("Accuracies and recalls in %" if percent else "Accuracies and recalls as fractions") + units]
        if "sugarcrepe" in benchmarks:
            footer.append(f"SugarCrepe {SUGARCREPE_OVERALL_DEFINITION}; replace, swap, add = mean of their subsets.")
        footer.extend(n for n in dict.fromkeys(self.notes) if not n.startswith("SugarCrepe:"))
        counted = [m for m in models if m in self.counts]
        if counted:
            footer += ["", "| benchmark | " + " | ".join(labels.get(m, m) for m in counted) + " |",
                       "|---|" + "---:|" * len(counted)]
            for benchmark in benchmarks:
                cells = []
                for model in counted:
                    count = self.counts[model].get(benchmark)
                    if not count:
                        cells.append("–")
                        continue
                    cell = f"{count.get('scored', '?')}/{count.get('items', '?')}"
                    cells.append(cell + (f" ({count['skipped']} skipped)" if count.get("skipped") else ""))
                footer.append(f"| {benchmark} | " + " | ".join(cells) + " |")
            footer += ["", "Items scored / items in the data; a skipped item had an image that could not be decoded "
                           "or a caption that could not be read."]
        return "\n".join(lines + footer) + "\n"

    def save_markdown(self, path: str | Path, **kwargs: Any) -> Path:
        return atomic.write_text(path, self.to_markdown(**kwargs))

    # ------------------------------------------------------------------ model cards

    def card_results(
        self,
        model: str | None = None,
        *,
        world: bool = False,
        dataset_names: Mapping[str, str] | None = None,
        dataset_types: Mapping[str, str] | None = None,
        dataset_split: str | None = None,
        as_percent: bool = False,
        source_name: str | None = None,
    ) -> list:
        """One model's results as ``huggingface_hub.EvalResult`` objects for ``ModelCardData(eval_results=...)``.

        Args:
            model: which model (needed when the report holds several).
            world: the results come from the built-in world's benchmarks, named as such (never as the official
                SugarCrepe or Winoground datasets).
            dataset_names / dataset_types: per benchmark, the pretty name and dataset id shown on the card.
            dataset_split: the split evaluated, if one applies to all.
            as_percent: values x100 (as the paper's tables) instead of fractions.
            source_name: where the numbers come from (e.g. "tripletclip evaluate").

        The similarity analysis is descriptive, not a score, and is left out. SugarCrepe's three overall numbers are named by
        their definitions; the card's headline is ``overall``, the mean of the seven subsets.
        """
        from huggingface_hub import EvalResult

        key = self.select(model)
        if key is None:
            return []
        names = {b: n for b, (n, _) in WORLD_CARD_DATASETS.items()} if world else {}
        types = {b: t for b, (_, t) in WORLD_CARD_DATASETS.items()} if world else {}
        names.update(dataset_names or {})
        types.update(dataset_types or {})
        results = []
        for benchmark, metrics in self.results[key].items():
            if benchmark not in CARD_DATASETS:
                continue
            task_name, dataset_type, dataset_name = CARD_DATASETS[benchmark]
            dataset_type = types.get(benchmark, dataset_type)
            dataset_name = names.get(benchmark, dataset_name)
            for metric, value in metrics.items():
                pretty = metric
                if benchmark == "sugarcrepe" and metric == "overall":
                    pretty = "overall (mean of the seven subsets)"
                elif benchmark == "sugarcrepe" and metric == "overall_weighted":
                    pretty = "overall_weighted (the subsets weighted by their items)"
                elif benchmark == "sugarcrepe" and metric == "overall_of_kinds":
                    pretty = "overall_of_kinds (mean of replace, swap, add)"
                elif benchmark == "sugarcrepe" and metric in ("replace", "swap", "add"):
                    pretty = f"{metric} (mean of its subsets)"
                results.append(
                    EvalResult(
                        task_type=CARD_TASK_TYPE,
                        task_name=task_name,
                        dataset_type=dataset_type,
                        dataset_name=dataset_name,
                        dataset_split=dataset_split,
                        metric_type="recall" if "recall" in metric else "accuracy",
                        metric_name=f"{dataset_name} {pretty}",
                        metric_value=round(100 * float(value), 2) if as_percent else float(value),
                        source_name=source_name,
                    )
                )
        return results


def split_report(report: Mapping[str, Any] | None, model_key: str | None = None) -> tuple[str | None, Results]:
    """``(key of the model a card describes, {model: {benchmark: {metric: value}}})`` of any report form."""
    parsed = EvaluationReport.from_mapping(report, model_key)
    return parsed.select(model_key), parsed.results


def eval_results_for_card(report: Mapping[str, Any], model_name: str | None = None, **kwargs: Any) -> list:
    """`EvaluationReport.card_results` of any report form (see there for the arguments)."""
    return EvaluationReport.from_mapping(report).card_results(model_name, **kwargs)


# ------------------------------------------------------------------------------------------------ similarity


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
        path: the PNG to write (atomically).
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
    path = atomic.save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path


__all__ = [
    "CARD_DATASETS",
    "EvaluationReport",
    "WORLD_CARD_DATASETS",
    "eval_results_for_card",
    "plot_similarity",
    "similarity_histograms",
    "split_report",
]
