"""Metrics logging: accelerate trackers plus a JSON-lines file that always exists, and the loss-curve PNG."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker, on_main_process

METRICS_FILE = "metrics.jsonl"


class JSONLinesTracker(GeneralTracker):
    """An accelerate tracker writing one JSON object per `accelerator.log` call to ``<logging_dir>/metrics.jsonl``."""

    name = "jsonl"
    requires_logging_directory = True

    # Built before the Accelerator (trackers are handed to it), so __init__ must not touch the process state:
    # the file is created on the first write, on the main process only.
    def __init__(self, run_name: str, logging_dir: str | Path):
        super().__init__(_blank=True)
        self.run_name = run_name
        self.path = Path(logging_dir) / METRICS_FILE

    def _append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    @property
    def tracker(self):
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict):
        self._append({"config": values, "time": time.time()})

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs):
        self._append({"step": step, "time": time.time(), **{k: _plain(v) for k, v in values.items()}})


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return value


def trackers_for(report_to: str, logging_dir: str | Path, run_name: str) -> list:
    """The trackers to hand to `Accelerator(log_with=...)`: always the JSON-lines file, plus tensorboard and/or
    wandb as asked ('auto': tensorboard when it is installed)."""
    trackers: list = [JSONLinesTracker(run_name, logging_dir)]
    wanted = {"auto": ["tensorboard"], "jsonl": [], "tensorboard": ["tensorboard"], "wandb": ["wandb"],
              "all": ["tensorboard", "wandb"]}[report_to]
    for name in wanted:
        if importlib.util.find_spec(name) is not None:
            trackers.append(name)
        elif report_to != "auto":
            raise ValueError(f"--report_to {report_to}: the {name} package is not installed (pip install {name}).")
    return trackers


def trim_metrics(path: str | Path, step: int) -> None:
    """Drop the records of steps after ``step`` (a resumed run logs them again), keeping the file's other lines."""
    from dataset_builders.utils import atomic

    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a kill: it was never a complete record
            continue
        if record.get("step") is None or record["step"] <= step:
            kept.append(line)
    atomic.write_text(path, "".join(f"{line}\n" for line in kept))


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # empty, or cut short by a kill
            continue
    return records


def plot_loss_curve(metrics_path: str | Path, out_png: str | Path, title: str = "Training loss") -> Path | None:
    """Plot the loss (and its parts) and the logit scale against the step; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_metrics(metrics_path) if "train/loss" in r]
    if not records:
        return None
    steps = [r["step"] for r in records]
    fig, (ax_loss, ax_scale) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({k for r in records for k in r if k.startswith("train/loss")}):
        values = [(r["step"], r[key]) for r in records if key in r]
        ax_loss.plot(*zip(*values), label=key.removeprefix("train/"))
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title(title)
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_scale.plot(steps, [r.get("train/logit_scale", float("nan")) for r in records], color="tab:purple")
    ax_scale.set_xlabel("optimizer step")
    ax_scale.set_ylabel("exp(logit_scale)")
    ax_scale.set_title("Temperature")
    ax_scale.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)
