"""Writing the suite's results: JSON, a Markdown table per section (each figure beside its goal), a PNG, and the
"Performance suite" section of ``benchmarks/README.md``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dataset_builders.utils import atomic

from ..harness import replace_readme_section

SECTIONS = ("Training step", "Data pipeline", "Evaluation", "Memory")
README_HEADING = "## Performance suite"


def write_json(results: dict, path: Path) -> None:
    atomic.write_text(path, json.dumps(results, indent=2, default=str) + "\n")


def _value(figure: dict) -> str:
    value = figure["value"]
    if value is None:
        return "n/a"
    if figure["unit"] == "MiB/triplet":
        return f"{value:.1f} MiB"
    return f"{value:.3f}" if figure["unit"] == "fraction" else f"{value:.2f}"


def _spread(figure: dict) -> str:
    spread = figure.get("spread")
    if not spread:
        return ""
    if figure["unit"] == "fraction":
        return f"{spread[0]:.3f}–{spread[1]:.3f}"
    return f"{spread[0]:.2f}–{spread[1]:.2f}"


def _met(figure: dict, link_profiles: bool, base: Path | None, json_dir: Path | None = None) -> str:
    if figure["met"] is None:
        return "—"
    if figure["met"]:
        return "yes"
    profile = figure.get("profile")
    if profile:
        path = Path(json_dir) / profile if json_dir is not None else Path(profile)  # stored relative to the JSON
        name = path.name
        target = os.path.relpath(path, base) if (link_profiles and base is not None) else name
        return f"**no** ([profile]({target}))" if link_profiles else f"**no** (profile: `{name}`)"
    return "**no**"


def figures_table(figures: list[dict], section: str, link_profiles: bool = True, base: Path | None = None,
                  json_dir: Path | None = None) -> str:
    rows = [f for f in figures if f["section"] == section]
    if not rows:
        return ""
    lines = ["| figure | value | spread (IQR) | CPU-time ratio | goal | met |", "|---|---|---|---|---|---|"]
    for f in rows:
        label = f["label"] + (f" ({f['note']})" if f.get("note") else "")
        cpu = f["detail"].get("cpu_ratio")
        cpu = f"{cpu:.2f}" if isinstance(cpu, float) else ""
        lines.append(f"| {label} | {_value(f)} | {_spread(f)} | {cpu} | {f['goal'] or '—'} | "
                     f"{_met(f, link_profiles, base, json_dir)} |")
    return "\n".join(lines)


def header_lines(results: dict) -> list[str]:
    env = results["environment"]
    load = results["load_average"]
    device = env.get("gpu") or f"CPU ({env['cpu_count']} cores, {env['processor']})"
    lines = [
        f"- Measured {results['finished']} on {device}; torch {env['torch']}, transformers {env['transformers']}, "
        f"{env['torch_threads']} torch thread(s); mode: {results['mode']}; suite wall time "
        f"{results['wall_time_s']:.0f} s.",
        "- Value: the median of per-round wall-time ratios; CPU-time ratio: the same with the process's CPU time, "
        "which (with one torch thread) counts the work done and not the time spent waiting for a core: when the two "
        "disagree, the load, not the code, moved the wall-time figure.",
        f"- Load average (1/5/15 min) at the start {load['start']}, at the end {load['end']}: the machine is shared, "
        f"so only ratios of candidate and baseline timed alternately in one process are reported (median of "
        f"per-round ratios; spread = inter-quartile range of those ratios).",
    ]
    if results["device"] == "cpu":
        lines.append("- GPU figures (ViT-B/32, bf16, B = 256) were **not measured** in this run: no GPU was available. "
                     "`python -m benchmarks.perf --device cuda` measures them.")
    return lines


def markdown(results: dict, base: Path | None = None, link_profiles: bool = True, heading_level: int = 1,
             json_dir: Path | None = None) -> str:
    """The results as Markdown. ``base``: the folder the Markdown file lives in (for links); ``json_dir``: the folder
    of the results JSON, against which its profile paths are relative."""
    h = "#" * heading_level
    parts = [f"{h} Performance suite results", "", *header_lines(results), ""]
    for section in SECTIONS:
        table = figures_table(results["figures"], section, link_profiles, base, json_dir)
        if table:
            parts += [f"{h}# {section}", "", table, ""]
    if results["device"].startswith("cuda"):
        parts += [f"{h}# Absolute GPU throughput ({results['environment'].get('gpu', 'GPU')})", "",
                  gpu_throughput_table(results["figures"]), ""]
    missed = [f for f in results["figures"] if f["met"] is False]
    if missed:
        parts += [f"{h}# Goals missed", ""]
        parts += [f"- {f['label']}: {_value(f)} (goal {f['goal']})"
                  + (f"; profile `{Path(f['profile']).name}`" if f.get("profile") else "") for f in missed]
        parts.append("")
    return "\n".join(parts)


def gpu_throughput_table(figures: list[dict]) -> str:
    lines = ["| setting | TripletCLIP samples/s | CLIPModel samples/s | two passes samples/s |", "|---|---|---|---|"]
    for f in figures:
        if f["id"].endswith("/vs_clip") and f["section"] == "Training step":
            d = f["detail"]
            lines.append(f"| {d['setting']} | {d['tripletclip_samples_per_s']:.0f} | {d['clip_samples_per_s']:.0f} | "
                         f"{d['two_pass_samples_per_s']:.0f} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path | None:
    """Ratios with their spread and goals (left), step memory per triplet (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [f for f in results["figures"] if f["unit"] in ("ratio", "fraction") and f["value"] is not None]
    memory = [f for f in results["figures"] if f["unit"] == "MiB/triplet" and f["value"] is not None]
    if not ratios and not memory:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(15, max(4, 0.42 * len(ratios) + 1.5)),
                             gridspec_kw={"width_ratios": [3, 1.3]})
    ax = axes[0]
    labels = [_short(f) for f in ratios]
    y = list(range(len(ratios)))[::-1]
    for yi, f in zip(y, ratios):
        colour = {True: "#2a9d8f", False: "#e76f51", None: "#8d99ae"}[f["met"]]
        ax.barh(yi, f["value"], color=colour, alpha=0.85)
        if f.get("spread"):
            low, high = f["spread"]
            ax.plot([low, high], [yi, yi], color="black", linewidth=1.5)
        if f.get("goal_limit") is not None:
            ax.plot([f["goal_limit"]] * 2, [yi - 0.4, yi + 0.4], color="black", linestyle="--", linewidth=1)
        right = max(f["value"], f["spread"][1]) if f.get("spread") else f["value"]
        ax.text(right, yi, f"  {f['value']:.2f}", va="center", fontsize=8)
    for yi, (above, below) in zip(y, zip(ratios, ratios[1:])):
        if above["section"] != below["section"]:  # a rule between sections
            ax.axhline(yi - 0.5, color="#bbbbbb", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("ratio (bar: median; black line: inter-quartile range; dashed: goal)")
    ax.set_title("Candidate / baseline, timed alternately in one process (green: goal met, red: missed)", fontsize=10)
    ax = axes[1]
    if memory:
        names = [_short(f) for f in memory]
        ym = list(range(len(memory)))[::-1]
        ax.barh(ym, [f["value"] for f in memory], color="#457b9d")
        for yi, f in zip(ym, memory):
            ax.text(f["value"], yi, f"  {f['value']:.1f}", va="center", fontsize=8)
        ax.set_yticks(ym)
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("MiB per triplet (log scale)")
        ax.set_title("Peak tensor memory of forward+backward per triplet", fontsize=10)
    else:
        ax.axis("off")
    env = results["environment"]
    fig.suptitle(f"tripletclip performance suite ({results['mode']}, {env.get('gpu') or 'CPU'}, "
                 f"{env['torch_threads']} thread(s), load {results['load_average']['start']})", fontsize=11)
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


SHORT_SECTION = {"train_step": "step", "data": "data", "eval": "eval", "memory": "memory"}


def _short(figure: dict) -> str:
    """A compact plot label from a figure's id, e.g. "step: tiny B64 ckpt vs clip"."""
    parts = figure["id"].split("/")
    name = " ".join(parts[1:]).replace("-cpu-fp32", "").replace("nockpt", "no-ckpt").replace("_", " ")
    return f"{SHORT_SECTION.get(parts[0], parts[0])}: {name.replace('-B', ' B').replace('vit-b-32', 'ViT-B/32')}"


# ------------------------------------------------------------------------------------------------- README


README_INTRO = """\
{heading}

One command measures how fast TripletCLIP trains, loads data and evaluates, each figure as a **ratio** between our
code and a baseline timed alternately in the same process (the median of per-round ratios; the spread is their
inter-quartile range), so that other jobs on a shared machine slow both alike:

```bash
python -m benchmarks.perf            # about 20 minutes on 2 CPU cores (the first run also builds its data)
python -m benchmarks.perf --quick    # about a minute: a smoke check, smaller settings
python -m benchmarks.perf --device cuda   # on a GPU: ViT-B/32, bf16 autocast, B = 256
```

It writes `benchmarks/results/perf.json` (every figure with its raw timings and the machine's load),
`benchmarks/results/perf.md` (the tables below), `benchmarks/results/perf.png`, and, for each figure that misses its
goal, the profile that shows why (`benchmarks/results/perf_profile_*.txt`). CPU measurements use one torch thread by
default (`--threads`): with other jobs on the cores, several OpenMP threads wait on each other at every operator and
the timings become several times slower and noisier.

What each figure means:

- **Training step** (goal ≤ 1.05): one `TripletCLIPModel` step (forward, TripletCLIP loss, backward, AdamW) on B
  triplets divided by one `transformers.CLIPModel` step with the same weights on the 2B pairs `([x; x'], [y; y'])`:
  the encoders do the same work, so this is the cost of our model code and objective. Also divided by the official
  code's approach rebuilt on our model: two forward passes per tower (positives, then negatives), same loss.
  With gradient checkpointing off and on; the tiny preset at B = 64 and a ViT-B/32 at a small B on CPU.
- **Data pipeline**: triplets per second (two images, two captions) divided by the rate of plain PIL
  ``open -> convert("RGB") -> resize((S, S))`` of the same images in one process, on the world's 64-px PNGs (tiny
  preset 64 px and ViT-B/32 224 px) and on photo-like JPEGs (quality 90) of 500x375 and 1024x768, the range of
  CC3M/CC12M, for ViT-B/32. Candidates: `TripletCollator` with its defaults (the processor's exact pixels, normalised
  floats) and as the trainer configures it (reduced decoding, ``uint8`` images normalised later on the device),
  goal ≥ 0.9; the plain `DataLoader` + collator with one worker; the trainer's `TripletBatches` with 0 workers and
  with 1 worker (the per-worker rate, goal ≥ 1.0 on the JPEGs, ≥ 0.8 on the PNGs); and the scaling figure, the
  stream's rate with 2 workers over 1 worker (goal ≥ 1.7 on the JPEGs on these 2 cores). Runs with workers start
  fresh each round and are timed in their steady state. Then whether reduced decoding changes what a trained model
  scores: SugarCrepe on 4x-upscaled JPEGs of the world, scored with full and with reduced decoding (goal: a change
  within one standard error of the accuracy; the flipped decisions and the similarity change are in the JSON). And
  the fraction of the training loop's wall time spent inside `next(batches)` during a short real run of the
  default configuration (0 workers; our target ≤ 0.10).
- **Evaluation** (goal ≤ 1.1): `evaluate_model` on the real SugarCrepe annotations (7,511 items, 1,560 images,
  stand-in images under the COCO file names) divided by the time a `CLIPEncoder` takes to encode just the unique
  images and captions.
- **Memory**: the peak of live tensor memory during forward and backward above the resident model, gradients and
  optimizer state (from `torch.profiler`'s memory events: exact, independent of the allocator), per triplet, and its
  ratio to `CLIPModel` on 2B pairs (goal ≤ 1.05), with gradient checkpointing off and on; one fresh process per
  setting. The process's peak RSS and the tensors saved for backward are in the JSON.

Reading the results:

- The training step's ratios scatter by several percent from round to round on a shared machine; the CPU-time column
  and, for a missed goal, the profile's count of floating-point work per step tell load from work. TripletCLIP's
  step does the same counted work as `CLIPModel` on 2B pairs and as the official two passes. On a CPU, two passes
  over B rows can still be a few percent faster than one pass over 2B rows at the tiny preset: the element-wise
  operators (QuickGELU, its backward) run on activations half as large, which stay in the CPU caches (the
  profile shows the difference in `aten::mul` and `aten::sigmoid*`, not in the matrix products). At ViT-B/32 the
  single pass is as fast or faster; on a GPU, one large launch per tower is the efficient form.
- The data pipeline decodes less than the baseline on photos (JPEGs at least twice the model's input are decoded at
  a DCT scale; torch's ``uint8`` resize kernels are several times faster than Pillow's) and does more than it on the
  world's small PNGs, where there is nothing to skip: a 64-px PNG decodes in about 70 microseconds and a caption
  tokenises in about 60, so the two captions of a triplet cost nearly what its two images do (the profiles show
  ``encode_batch`` beside the PNG decoder). The workers tokenise their own chunks, so the training process only pads
  and stacks, and the stream scales with workers on PNGs as on photos. The collator with its defaults reproduces
  the processor exactly (full decoding, Pillow's resize, float normalisation on the CPU): the reference path, not
  the fast one.
"""


def readme_section(results: dict, readme_dir: Path, json_dir: Path | None = None) -> str:
    body = markdown(results, base=readme_dir, link_profiles=True, heading_level=3, json_dir=json_dir)
    body = body.replace("### Performance suite results", "### Latest results", 1)
    plot_path = Path(results.get("plot") or "")
    if results.get("plot") and plot_path.is_file():
        body = body.rstrip() + f"\n\n![ratios and memory]({os.path.relpath(plot_path, readme_dir)})\n"
    return README_INTRO.format(heading=README_HEADING) + "\n" + body.rstrip() + "\n"


def update_readme(readme: Path, results: dict, json_dir: Path | None = None) -> None:
    """Replace (or append) the "## Performance suite" section of ``readme``; other sections are kept as they are."""
    replace_readme_section(readme, README_HEADING, readme_section(results, readme.parent, json_dir))
