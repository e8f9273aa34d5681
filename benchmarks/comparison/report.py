"""Turning run records into the comparison's outputs: statistics over seeds, a JSON file, Markdown tables, the
comparison plot and the similarity-distribution plot."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset_builders.utils import atomic

from .design import ComparisonSettings, config_label
from .stats import paired_difference, power_statement, summarise, verdict

#: The table's measures: (benchmark, metric, label, higher is better).
MEASURES: tuple[tuple[str, str, str, bool], ...] = (
    ("sugarcrepe", "replace_obj", "SugarCrepe replace-obj", True),
    ("sugarcrepe", "replace_att", "SugarCrepe replace-att", True),
    ("sugarcrepe", "replace_rel", "SugarCrepe replace-rel", True),
    ("sugarcrepe", "swap_obj", "SugarCrepe swap-obj", True),
    ("sugarcrepe", "swap_att", "SugarCrepe swap-att", True),
    ("sugarcrepe", "add_obj", "SugarCrepe add-obj", True),
    ("sugarcrepe", "add_att", "SugarCrepe add-att", True),
    ("sugarcrepe", "replace", "SugarCrepe replace (avg)", True),
    ("sugarcrepe", "swap", "SugarCrepe swap (avg)", True),
    ("sugarcrepe", "add", "SugarCrepe add (avg)", True),
    ("sugarcrepe", "overall", "SugarCrepe overall (mean of 7)", True),
    ("winoground", "text", "Winoground text", True),
    ("winoground", "image", "Winoground image", True),
    ("winoground", "group", "Winoground group", True),
    ("tripletdata", "group", "Test triplets group (Winoground-style)", True),
    ("retrieval", "image_retrieval_recall@1", "Retrieval T->I R@1", True),
    ("retrieval", "image_retrieval_recall@5", "Retrieval T->I R@5", True),
    ("retrieval", "text_retrieval_recall@1", "Retrieval I->T R@1", True),
    ("retrieval", "text_retrieval_recall@5", "Retrieval I->T R@5", True),
    ("similarity", "image_similarity_mean", "cos(image, negative image), mean", False),
    ("similarity", "text_similarity_mean", "cos(caption, negative caption), mean", False),
)
REFERENCE = "tripletclip"
#: The measures the design's power is stated for, and the paired difference it should detect.
POWER_MEASURES = ("sugarcrepe/overall", "winoground/group")
POWER_TARGET = 0.03


def measure_key(benchmark: str, metric: str) -> str:
    return f"{benchmark}/{metric}"


def aggregate(records: Sequence[Mapping[str, Any]], reference: str = REFERENCE) -> dict[str, Any]:
    """Per configuration and measure: the values over seeds with mean, std and 95% t-interval; and per measure the
    paired difference ``reference - configuration`` (same seed: same initial weights and data order)."""
    by_config: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        seed = record["run"]["seed"]
        for benchmark, metric, _, _ in MEASURES:
            value = record["metrics"].get(benchmark, {}).get(metric)
            if isinstance(value, (int, float)):
                by_config[record["config_name"]][measure_key(benchmark, metric)][seed] = float(value)
    summary = {
        config: {key: {**summarise([v for _, v in sorted(per_seed.items())]), "seeds": sorted(per_seed)}
                 for key, per_seed in measures.items()}
        for config, measures in by_config.items()
    }
    differences: dict[str, dict[str, Any]] = {}
    if reference in by_config:
        for config, measures in by_config.items():
            if config == reference:
                continue
            differences[config] = {}
            for key, per_seed in measures.items():
                ref = by_config[reference].get(key)
                if ref and set(ref) & set(per_seed):
                    diff = paired_difference(ref, per_seed)
                    differences[config][key] = {**diff, "verdict": verdict(diff)}
    return {"summary": summary, "differences_vs_" + reference: differences}


def power(aggregated: Mapping[str, Any], reference: str = REFERENCE) -> dict[str, Any]:
    """The power statement of each of :data:`POWER_MEASURES` (see `stats.power_statement`)."""
    differences = aggregated.get(f"differences_vs_{reference}", {})
    return {measure: power_statement(differences, measure, POWER_TARGET) for measure in POWER_MEASURES}


def power_markdown(statements: Mapping[str, Any], configs: Sequence[str] = ()) -> str:
    """One sentence per measure: the smallest paired difference the design detects, and the seeds the target needs;
    the baselines of ``configs`` without two paired seeds yet are named as not covered."""
    lines = []
    for measure, statement in statements.items():
        if statement["detectable_difference"] is None:
            lines.append(f"- {measure}: not enough paired seeds for a spread yet.")
            continue
        seeds = sorted({v["seeds"] for v in statement["per_configuration"].values()})
        need = statement["seeds_for_target"]
        missing = [config_label(c) for c in configs if c != REFERENCE and c not in statement["per_configuration"]]
        scope = "every baseline" if not missing else (
            f"each baseline with two or more paired seeds (not yet: {', '.join(missing)})")
        lines.append(
            f"- {measure}: with {'/'.join(map(str, seeds))} seeds the design detects (95% paired t-interval "
            f"excluding 0) a difference of {statement['detectable_difference']:.3f} against {scope} "
            f"(the largest over baselines; a true difference of "
            f"{statement['detectable_difference_at_80_power']:.3f} is found with 80% power; target "
            f"{statement['target']:.2f}: "
            + ("met" if statement["target_met"] else "**not met**")
            + (f"; {need} seeds would meet it at the measured spread)." if need else
               "; no affordable number of seeds meets it at the measured spread).")
        )
    return "Power, from the measured spread of the paired differences:\n\n" + "\n".join(lines) + "\n"


def selection_markdown(settings: ComparisonSettings, base: Mapping[str, Any] | None,
                       selection: Mapping[str, Any] | None) -> str:
    """The fine-tuning protocol's base (validation scores per evaluation, criterion, test scores, training loss) and
    the learning-rate selection (validation scores per candidate), as Markdown tables."""
    lines = []
    if base:
        criterion = " and ".join(f"{name} ≥ {bound}" for name, bound in settings.base_criterion)
        met = base["criterion_met_at_step"]
        lines += [f"Base: CLIP loss, batch {settings.base_batch_size}, {settings.base_max_train_steps} steps, "
                  f"{base['passes_over_training_scenes']} passes over {settings.world_num_train} training scenes. "
                  f"Plateau criterion ({criterion}, on the {base.get('criterion_read_on')}): "
                  + (f"met at step {met}." if met is not None else "**not met**."), "",
                  "| step | SugarCrepe replace-obj | swap-obj | swap-att | replace-rel | swap (avg) | overall | "
                  "Winoground group |", "|---|---|---|---|---|---|---|---|"]
        for step, scores in base["evaluations"].items():  # {"sugarcrepe/replace_obj": value, ...}
            lines.append(f"| {step} | " + " | ".join(
                f"{scores.get('sugarcrepe/' + k, math.nan):.3f}"
                for k in ("replace_obj", "swap_obj", "swap_att", "replace_rel", "swap", "overall"))
                + f" | {scores.get('winoground/group', math.nan):.3f} |")
        if base.get("test"):
            test = base["test"]
            lines += ["", f"The final base on the test benchmarks: SugarCrepe overall "
                          f"{test['sugarcrepe']['overall']:.3f} (replace-obj {test['sugarcrepe']['replace_obj']:.3f}, "
                          f"swap {test['sugarcrepe']['swap']:.3f}, replace-rel {test['sugarcrepe']['replace_rel']:.3f})"
                          f", Winoground group {test['winoground']['group']:.3f}; training loss "
                          f"{base['train_loss_last_quarter_mean']:.3f} (mean of the last quarter of the logs)."]
    if selection:
        lines += ["", f"Fine-tuning learning rate, chosen on the {selection['criterion']}: "
                      f"**{selection['chosen_learning_rate']:g}**.", "",
                  "| learning rate | SugarCrepe overall | swap (avg) | replace-obj | Winoground group | final loss |",
                  "|---|---|---|---|---|---|"]
        for rate, entry in selection["candidates"].items():
            sc, wg = entry["validation"]["sugarcrepe"], entry["validation"].get("winoground", {})
            loss = entry.get("final_train_loss")
            lines.append(f"| {rate} | {sc['overall']:.3f} | {sc['swap']:.3f} | {sc['replace_obj']:.3f} | "
                         f"{wg.get('group', math.nan):.3f} | {'' if loss is None else f'{loss:.3f}'} |")
    return "\n".join(lines) + "\n"


def config_order(settings: ComparisonSettings) -> list[str]:
    """Configurations in reading order: the matched-steps ones, then the doubled-batch ones."""
    names = list(settings.methods)
    names += [f"{m}@2B" for m in settings.doubled_batch_methods]
    return names


def _cell(stat: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not stat:
        return ""
    std = stat["std"]
    return f"{stat['mean']:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{stat['mean']:.{digits}f}"


def _diff_cell(diff: Mapping[str, Any] | None, better_high: bool) -> str:
    if not diff:
        return ""
    # ▲: the reference is better on this measure with 95% confidence; ▼: worse.
    marks = {"higher": "▲" if better_high else "▼", "lower": "▼" if better_high else "▲", "unclear": ""}
    mark = marks[diff["verdict"]]
    if math.isnan(diff["ci95_half_width"]):
        return f"{diff['mean']:+.3f}"
    return f"{diff['mean']:+.3f} [{diff['ci95_low']:+.3f}, {diff['ci95_high']:+.3f}]{mark}"


def markdown_tables(aggregated: Mapping[str, Any], settings: ComparisonSettings,
                    reference: str = REFERENCE) -> str:
    """The results table (mean ± std over seeds, 95% interval in the JSON) and the paired-difference table."""
    configs = [c for c in config_order(settings) if c in aggregated["summary"]]
    summary = aggregated["summary"]
    lines = ["| measure | " + " | ".join(config_label(c) for c in configs) + " |",
             "|---|" + "---|" * len(configs)]
    for benchmark, metric, label, higher in MEASURES:
        key = measure_key(benchmark, metric)
        if not any(key in summary[c] for c in configs):
            continue
        arrow = "↑" if higher else "↓"
        lines.append(f"| {label} {arrow} | " + " | ".join(_cell(summary[c].get(key)) for c in configs) + " |")
    differences = aggregated.get(f"differences_vs_{reference}", {})
    others = [c for c in configs if c in differences]
    if others:
        lines += ["", f"{config_label(reference)} minus each configuration, paired by seed: mean difference "
                      "[95% t-interval over seeds]; ▲ TripletCLIP better, ▼ worse, with 95% confidence "
                      "(for the similarity rows lower is better).", "",
                  "| measure | " + " | ".join(config_label(c) for c in others) + " |",
                  "|---|" + "---|" * len(others)]
        for benchmark, metric, label, higher in MEASURES:
            key = measure_key(benchmark, metric)
            if not any(key in differences[c] for c in others):
                continue
            lines.append(f"| {label} | " + " | ".join(_diff_cell(differences[c].get(key), higher) for c in others)
                         + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------- plots

_COLOURS = {"clip": "#7f7f7f", "clip_hn": "#1f77b4", "negclip": "#ff7f0e", "tripletclip": "#d62728",
            "negative_images": "#2ca02c"}
_PANELS = (
    ("SugarCrepe accuracy (held-out compositions)", "sugarcrepe",
     ("replace_obj", "replace_att", "replace_rel", "swap_obj", "swap_att", "add_obj", "add_att", "overall")),
    ("Winoground-style (held-out)", "winoground", ("text", "image", "group")),
    ("Retrieval recall (held-out)", "retrieval",
     ("image_retrieval_recall@1", "image_retrieval_recall@5", "text_retrieval_recall@1", "text_retrieval_recall@5")),
    ("Similarity to the hard negative (lower is better)", "similarity",
     ("image_similarity_mean", "text_similarity_mean")),
)
_SHORT = {"image_retrieval_recall@1": "T→I R@1", "image_retrieval_recall@5": "T→I R@5",
          "text_retrieval_recall@1": "I→T R@1", "text_retrieval_recall@5": "I→T R@5",
          "image_similarity_mean": "images", "text_similarity_mean": "captions"}


def plot_comparison(aggregated: Mapping[str, Any], settings: ComparisonSettings, path: str | Path,
                    title: str = "") -> Path:
    """Grouped bars (mean over seeds, 95% t-interval as error bar, each seed as a dot) per measure and configuration;
    the doubled-batch (matched images seen) configurations are hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    summary = aggregated["summary"]
    configs = [c for c in config_order(settings) if c in summary]
    figure, axes = plt.subplots(2, 2, figsize=(16, 9), constrained_layout=True,
                                gridspec_kw={"width_ratios": [2.2, 1.3]})
    width = 0.8 / max(len(configs), 1)
    for axis, (panel_title, benchmark, metrics) in zip(axes.flat, _PANELS):
        for i, config in enumerate(configs):
            method = config.partition("@")[0]
            for j, metric in enumerate(metrics):
                stat = summary[config].get(measure_key(benchmark, metric))
                if not stat:
                    continue
                x = j + (i - (len(configs) - 1) / 2) * width
                error = None if math.isnan(stat["ci95_half_width"]) else [[stat["ci95_half_width"]]] * 2
                axis.bar(x, stat["mean"], width * 0.92, color=_COLOURS.get(method, "#9467bd"),
                         hatch="//" if "@" in config else None, edgecolor="white" if "@" not in config else "black",
                         linewidth=0.4, yerr=error, capsize=1.5, error_kw={"linewidth": 0.8})
                axis.scatter([x] * len(stat["values"]), stat["values"], s=5, color="black", zorder=3)
        axis.set_xticks(range(len(metrics)))
        axis.set_xticklabels([_SHORT.get(m, m.replace("_", "-")) for m in metrics], fontsize=9)
        axis.set_title(panel_title)
        axis.grid(axis="y", alpha=0.3)
        if benchmark == "sugarcrepe":
            axis.axhline(0.5, color="black", linewidth=0.6, linestyle=":")
            axis.set_ylim(0.3, 1.0)
        if benchmark == "similarity":  # the differences are small next to the values: zoom on them
            values = [v for c in configs for m in metrics
                      for v in summary[c].get(measure_key(benchmark, m), {}).get("values", [])]
            if values:
                low, high = min(values), max(values)
                pad = max(0.01, 0.15 * (high - low))
                axis.set_ylim(max(-1.0, low - pad), min(1.0, high + pad))
        if benchmark == "winoground":
            axis.axhline(0.25, color="black", linewidth=0.6, linestyle=":")  # chance of text / image scores
        if benchmark in ("winoground", "retrieval"):  # fractions: wide intervals of few seeds are cut at [0, 1]
            axis.set_ylim(0.0, min(1.0, axis.get_ylim()[1]))
    handles = [Patch(facecolor=_COLOURS.get(c.partition("@")[0], "#9467bd"), hatch="//" if "@" in c else None,
                     edgecolor="black" if "@" in c else "white", label=config_label(c)) for c in configs]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(configs), fontsize=9)
    figure.suptitle(title or "TripletCLIP vs baselines in the procedural world: mean over seeds, 95% t-interval, "
                             "dots = seeds")
    return _save(figure, path)


def plot_similarity_distributions(values: Mapping[str, Mapping[str, np.ndarray]], path: str | Path,
                                  pooled: str = "all seeds pooled",
                                  notes: Mapping[str, str] | None = None) -> Path:
    """The paper's similarity figure: for each modality, the distribution over the held-out test triplets of the
    cosine similarity between each positive and its hard negative, one curve per objective, seeds pooled.
    ``pooled`` says which seeds in the title; ``notes`` adds a configuration's own note to its legend entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.6), constrained_layout=True)
    panels = (("image_similarity", "Images: cos(image, negative image)"),
              ("text_similarity", "Captions: cos(caption, negative caption)"))
    for axis, (key, title) in zip(axes, panels):
        present = [np.asarray(v[key]) for v in values.values() if key in v and len(v[key])]
        if not present:
            axis.set_visible(False)
            continue
        # The long left tails hold few pairs: the axis starts at the 1st percentile and the first bin collects
        # everything below it, so that the bulk of each distribution is readable.
        low = float(np.percentile(np.concatenate(present), 1))
        high = float(max(v.max() for v in present))
        edges = np.linspace(low, min(1.0, high + 0.005), 50)
        for config, per_modality in values.items():
            v = np.asarray(per_modality.get(key, []))
            if not len(v):
                continue
            colour = _COLOURS.get(config.partition("@")[0], "#9467bd")
            note = (notes or {}).get(config)
            axis.hist(np.clip(v, low, None), bins=edges, histtype="step", linewidth=1.8, color=colour, density=True,
                      linestyle="--" if "@" in config else "-",
                      label=f"{config_label(config)} (mean {v.mean():.3f}{', ' + note if note else ''})")
            axis.axvline(v.mean(), color=colour, linewidth=0.8, linestyle=":")
        axis.set_title(title)
        axis.set_xlabel(
            f"cosine similarity (lower: the model tells the pair apart; first bin: all values <= {low:.2f})")
        axis.set_ylabel("density")
        axis.legend(fontsize=8, loc="upper left")
    figure.suptitle(f"Similarity of each held-out positive to its hard negative, per modality ({pooled})")
    return _save(figure, path)


def _save(figure, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = atomic.save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def pooled_similarities(records: Sequence[Mapping[str, Any]], run_dirs: Mapping[str, Path],
                        configs: Sequence[str], seeds: Mapping[str, Sequence[int]] | None = None,
                        ) -> dict[str, dict[str, np.ndarray]]:
    """``{configuration: {"image_similarity": values, "text_similarity": values}}`` pooled over seeds (over
    ``seeds[configuration]`` when given); runs without kept per-pair values are left out."""
    from .runner import SIMILARITY_FILE

    pooled: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        config, path = record["config_name"], Path(run_dirs[record["run_name"]]) / SIMILARITY_FILE
        if config not in configs or not path.is_file() or (
                seeds is not None and record["run"]["seed"] not in seeds.get(config, ())):
            continue
        with np.load(path) as data:
            for key in data.files:
                pooled[config][key].append(data[key])
    return {config: {k: np.concatenate(v) for k, v in pooled[config].items()} for config in configs if config in pooled}


def similarity_figure_seeds(records: Sequence[Mapping[str, Any]], run_dirs: Mapping[str, Path]) -> dict[str, Any]:
    """Which runs the similarity figure pools. Every run normally keeps its per-pair similarities; a run finished
    before they were kept with the results has only its means (in the tables). The figure then pools the seeds
    whose values every configuration kept, so that the curves compare like with like; if there is no such seed,
    each configuration's own kept seeds. Returns ``{"common": bool, "seeds": {config: [seeds pooled]},
    "missing": {config: [seeds without kept values]}, "runs": {config: n}}``."""
    from .runner import SIMILARITY_FILE

    kept: dict[str, set[int]] = defaultdict(set)
    missing: dict[str, list[int]] = defaultdict(list)
    runs: dict[str, int] = defaultdict(int)
    for record in records:
        config, seed = record["config_name"], record["run"]["seed"]
        runs[config] += 1
        if (Path(run_dirs[record["run_name"]]) / SIMILARITY_FILE).is_file():
            kept[config].add(seed)
        else:
            missing[config].append(seed)
    common = set.intersection(*(kept.get(config, set()) for config in runs)) if runs else set()
    seeds = {config: sorted(common or kept.get(config, set())) for config in runs}
    return {"common": bool(common), "seeds": seeds, "missing": {c: sorted(v) for c, v in missing.items()},
            "runs": dict(runs)}


def _seeds_text(seeds: Sequence[int]) -> str:
    """``seed 0`` or ``seeds 1, 2, 3``."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def write_json(path: str | Path, value: Any) -> Path:
    return atomic.write_json(path, value, allow_nan=True)


def write_outputs(settings: ComparisonSettings, records: Sequence[Mapping[str, Any]], work_dir: str | Path,
                  output_dir: str | Path, *, wall_seconds: float, machine: Mapping[str, Any]) -> str:
    """Write ``comparison.json``, ``comparison.md``, ``comparison.png`` and ``similarity.png`` into ``output_dir``;
    return the Markdown text (heading, settings, tables)."""
    from .design import RunSpec

    output_dir = Path(output_dir)
    aggregated = aggregate(records)
    configs = [c for c in config_order(settings) if c in aggregated["summary"]]
    from .runner import training_wall_time

    run_seconds = sum(r.get("seconds", 0.0) for r in records)
    ledger = training_wall_time(Path(work_dir), settings)
    header = (
        f"# The paper's comparison in miniature ({settings.name} settings)\n\n"
        f"{len(records)} runs; wall time to train and evaluate them all: "
        + (f"{ledger['seconds'] / 60:.1f} min ({ledger['invocations']} invocation(s) of the command, "
           f"{ledger['runs_trained']} run(s) recorded)" if ledger["runs_trained"] else
           "not recorded (no invocation of the command recorded a finished run)")
        + f" on {machine.get('cpu_count')} CPU cores with "
        f"{machine.get('jobs')} runs at a time, one thread each (the runs' own times sum to "
        f"{run_seconds / 60:.1f} min). World: {settings.world_num_train} training triplets at "
        f"{settings.image_size} px, seed {settings.world_seed}; model: the tiny preset with ViT patch "
        f"{settings.patch_size}, width {settings.width}, {settings.layers} layers per tower; batch "
        f"{settings.batch_size} triplets (2B = {2 * settings.batch_size} pairs for the doubled-batch runs), "
        f"{settings.max_train_steps} optimizer steps, AdamW lr "
        f"{settings.finetune_learning_rate if settings.protocol == 'finetune' else settings.learning_rate}, warmup "
        f"{settings.lr_warmup_steps} then cosine; seeds {list(settings.seeds)} ("
        + ("a seed fixes the fine-tuning data order, shared by every objective; every run starts from the one base"
           if settings.protocol == "finetune" else
           "a seed fixes the initial weights and the data order, shared by every objective")
        + "). Evaluated on held-out compositions only. Cells: mean ± sample "
        f"std over seeds; 95% t-intervals in comparison.json.\n\n"
    )
    expected = len(settings.runs())
    if len(records) < expected:
        missing = sorted({r.config_name for r in settings.runs()} - set(configs))
        header = header.replace(
            f"{len(records)} runs;",
            f"**Partial results: {len(records)} of {expected} runs finished**"
            + (f" (no run yet of {', '.join(config_label(c) for c in missing)})" if missing else "") + ";", 1)
    base = None
    if settings.protocol == "finetune":
        from .runner import load_base_record

        base = load_base_record(Path(work_dir))
        met = None if base is None else base["criterion_met_at_step"]
        criterion = " and ".join(f"{name} ≥ {bound}" for name, bound in settings.base_criterion)
        header += (
            f"**Protocol: fine-tuning** from one shared base (the tiny model above, {settings.base_max_train_steps} "
            f"steps of the CLIP loss on positive pairs, batch {settings.base_batch_size}); every run then trains "
            f"{settings.max_train_steps} steps at lr {settings.finetune_learning_rate}. Plateau criterion "
            f"({criterion}, read on the {base.get('criterion_read_on', 'test benchmarks') if base else 'validation world'}): "
            + ("no base record." if base is None else
               f"met at step {met}." if met is not None else
               "**not met**: the base is still on the plateau, so these runs cannot show what "
               "hard negatives add to a model that represents the concepts.") + "\n\n")
        if base and base.get("test"):
            test = base["test"]
            header += (
                f"The base on the test benchmarks: SugarCrepe overall {test['sugarcrepe']['overall']:.3f}, "
                f"replace-obj {test['sugarcrepe']['replace_obj']:.3f}, swap {test['sugarcrepe']['swap']:.3f}; "
                f"Winoground group {test['winoground']['group']:.3f}; its training loss over the last quarter of "
                f"its steps {base['train_loss_last_quarter_mean']:.3f} after "
                f"{base['passes_over_training_scenes']} passes over the training scenes.\n\n")
    run_dirs = {r["run_name"]: Path(work_dir) / "runs" / r["run_name"] for r in records}
    figure = similarity_figure_seeds(records, run_dirs)
    partial = {c: seeds for c, seeds in figure["seeds"].items() if len(seeds) < figure["runs"][c]}
    if not partial:
        pooled, notes = "all seeds pooled", {}
    elif figure["common"]:
        common = next(iter(figure["seeds"].values()))
        pooled, notes = f"{_seeds_text(common)} of every configuration", {}
    else:
        pooled = "the seeds whose per-pair values were kept"
        notes = {c: f"{len(seeds)} of {figure['runs'][c]} runs" for c, seeds in partial.items()}
    statements = power(aggregated)
    table = header + markdown_tables(aggregated, settings) + "\n" + power_markdown(statements, config_order(settings))
    if partial:
        table += (
            f"\n`similarity.png` pools {pooled}: per-pair similarities were not kept with the results for "
            + ", ".join(f"{config_label(c)} {_seeds_text(seeds)}" for c, seeds in figure["missing"].items() if seeds)
            + " (their means over all seeds are in the tables above).\n")
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(output_dir / "comparison.md", table)

    def spec(config: str) -> RunSpec:
        method, _, batch = config.partition("@")
        return RunSpec(method, settings.seeds[0], int(batch[:-1]) if batch else 1)

    write_json(output_dir / "comparison.json", {
        "base": base,
        "settings": settings.to_dict(),
        "wall_time_seconds": round(ledger["seconds"], 1),
        "wall_time_invocations": ledger["invocations"],
        "this_invocation_seconds": round(wall_seconds, 1),
        "sum_of_run_seconds": round(run_seconds, 1),
        "machine": dict(machine),
        "configurations": {c: {"label": config_label(c), "batch_size": settings.batch_size * spec(c).batch_multiplier,
                               "images_per_step": settings.images_per_step(spec(c)),
                               "images_seen": settings.images_per_step(spec(c)) * settings.max_train_steps}
                           for c in configs},
        **aggregated,
        "power": statements,
        "similarity_figure": {"pooled": pooled, "seeds": figure["seeds"]},
        "runs": list(records),
    })
    plot_comparison(aggregated, settings, output_dir / "comparison.png")
    plot_similarity_distributions(pooled_similarities(records, run_dirs, configs, figure["seeds"]),
                                  output_dir / "similarity.png", pooled, notes)
    from .runner import save_for_reuse

    save_for_reuse(settings, list(records), Path(work_dir), output_dir)
    return table
