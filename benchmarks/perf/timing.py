"""Timing in one process: interleaved repetitions of a candidate and its baseline, paired ratios, medians, spread.

On a shared machine the load drifts while a benchmark runs. Timing the candidate and the baseline alternately
(in an order that changes every round, so that none always runs first or after the same one) and dividing each
candidate time by the baseline time of the same round cancels most of that drift; the median of those paired ratios is the reported figure and their inter-quartile
range its spread.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timed:
    """What a timed function may return to report its own timing: the part of the call that is the measurement
    (e.g. steady state after data-loader workers have started), wall and CPU seconds (None: not meaningful, as
    when the work runs in other processes)."""

    wall: float
    cpu: float | None = None


@dataclass
class Timings:
    """Per function: wall times and process CPU times (s) of each timed call, in call order."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def interleaved(
    functions: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    max_seconds: float | None = None,
    min_repeats: int = 2,
) -> Timings:
    """Time each function ``repeats`` times, in alternating order after ``warmup`` untimed calls each.

    Both the wall time and the process's CPU time are recorded. With one torch thread, the CPU time counts only
    the work done, not the time the process waited for a core, so its ratios show whether a wall-time difference
    is work or load. ``sync`` (e.g. `torch.cuda.synchronize`) runs before each clock read, so asynchronous devices
    are timed fully. With ``max_seconds``, no new round starts once that much time has passed (after at least
    ``min_repeats`` rounds), so a loaded machine gets fewer repetitions instead of a longer run.
    """
    names = list(functions)
    sync = sync or (lambda: None)
    started = time.perf_counter()
    for _ in range(warmup):
        for name in names:
            functions[name]()
    sync()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        if max_seconds is not None and round_ >= min_repeats and time.perf_counter() - started > max_seconds:
            break
        for name in _order(names, round_):
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            result = functions[name]()
            sync()
            if isinstance(result, Timed):
                wall[name].append(result.wall)
                cpu[name].append(result.cpu if result.cpu is not None else float("nan"))
            else:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return Timings(wall, cpu)


def _order(names: list[str], round_: int) -> list[str]:
    """The order of one round: rotated each round and reversed every other cycle, so that every function takes
    every position equally often (two functions: A B, B A, B A, A B, ...)."""
    shift = round_ % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if (round_ // len(names)) % 2 else order


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile of ``values`` (q in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Ratio:
    """Paired ratios ``candidate[i] / baseline[i]`` of one interleaved measurement (wall time, and CPU time when
    given)."""

    candidate: list[float]
    baseline: list[float]
    candidate_cpu: list[float] | None = None
    baseline_cpu: list[float] | None = None

    @classmethod
    def of(cls, timings: Timings, candidate: str, baseline: str) -> "Ratio":
        return cls(timings.wall[candidate], timings.wall[baseline], timings.cpu[candidate], timings.cpu[baseline])

    @property
    def ratios(self) -> list[float]:
        return [c / b for c, b in zip(self.candidate, self.baseline)]

    @property
    def cpu_ratios(self) -> list[float]:
        if not self.candidate_cpu or not self.baseline_cpu:
            return []
        return [c / b for c, b in zip(self.candidate_cpu, self.baseline_cpu) if b > 0 and c == c and b == b]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def summary(self) -> dict:
        ratios = self.ratios
        out = {
            "ratio": self.median,
            "ratio_q1": quantile(ratios, 0.25),
            "ratio_q3": quantile(ratios, 0.75),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "repeats": len(ratios),
            "candidate_median_s": statistics.median(self.candidate),
            "baseline_median_s": statistics.median(self.baseline),
            "candidate_s": self.candidate,
            "baseline_s": self.baseline,
        }
        cpu = self.cpu_ratios
        if cpu:
            out.update({
                "cpu_ratio": statistics.median(cpu),
                "cpu_ratio_q1": quantile(cpu, 0.25),
                "cpu_ratio_q3": quantile(cpu, 0.75),
                "candidate_cpu_s": self.candidate_cpu,
                "baseline_cpu_s": self.baseline_cpu,
            })
        return out


@dataclass(frozen=True)
class Goal:
    """A target for a figure: ``value <= limit`` or ``value >= limit``."""

    op: str
    limit: float

    def met(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.limit:g}"


@dataclass
class Figure:
    """One reported number: what it is, its value and spread, its goal (if any) and whether it is met."""

    id: str
    section: str
    label: str
    value: float | None
    unit: str = "ratio"
    goal: Goal | None = None
    spread: tuple[float, float] | None = None
    detail: dict = field(default_factory=dict)
    profile: str | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None or self.value is None:
            return None
        return self.goal.met(self.value)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "section": self.section,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "goal": str(self.goal) if self.goal else None,
            "goal_op": self.goal.op if self.goal else None,
            "goal_limit": self.goal.limit if self.goal else None,
            "met": self.met,
            "spread": list(self.spread) if self.spread else None,
            "profile": self.profile,
            "note": self.note,
            "detail": self.detail,
        }


def ratio_figure(id: str, section: str, label: str, ratio: Ratio, goal: Goal | None = None, **detail) -> Figure:
    """A :class:`Figure` from paired timings: the median ratio, its inter-quartile range, the raw medians."""
    summary = ratio.summary()
    return Figure(
        id=id,
        section=section,
        label=label,
        value=summary["ratio"],
        goal=goal,
        spread=(summary["ratio_q1"], summary["ratio_q3"]),
        detail={**summary, **detail},
    )


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages (other jobs on a shared machine slow every timing)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def environment(device: str = "cpu") -> dict:
    """What the figures were measured on."""
    import torch
    import transformers

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
