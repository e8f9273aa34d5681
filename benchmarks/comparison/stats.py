"""Statistics over seeds, as small pure functions: mean, standard deviation, t-based confidence intervals, and
paired differences (runs of two methods that share a seed share their initial weights and data order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: Two-sided 95% quantiles of Student's t distribution, t_{0.975, df}, for df = 1..30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)

#: One-sided 80% quantiles of Student's t distribution, t_{0.80, df}, for df = 1..30 (the power term).
_T80 = (
    1.3764, 1.0607, 0.9785, 0.9410, 0.9195, 0.9057, 0.8960, 0.8889, 0.8834, 0.8791,
    0.8755, 0.8726, 0.8702, 0.8681, 0.8662, 0.8647, 0.8633, 0.8620, 0.8610, 0.8600,
    0.8591, 0.8583, 0.8575, 0.8569, 0.8562, 0.8557, 0.8551, 0.8546, 0.8542, 0.8538,
)


def _t_quantile(table: tuple[float, ...], normal: float, df: int) -> float:
    """A quantile of Student's t from ``table`` (df = 1..30), the normal one beyond."""
    if df < 1:
        raise ValueError(f"A t interval needs at least 2 values (df >= 1), got df={df}.")
    return table[df - 1] if df <= len(table) else normal


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the multiplier of the standard error in a two-sided 95% confidence interval."""
    return _t_quantile(_T975, 1.96, df)


def t_quantile_80(df: int) -> float:
    """t_{0.80, df}: the power term of a detectable difference at 80% power."""
    return _t_quantile(_T80, 0.8416, df)


def summarise(values: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Mean, sample standard deviation (ddof=1), and the t-based 95% confidence interval of the mean.

    With a single value the spread and the interval are undefined and reported as NaN.
    """
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("Cannot summarise zero values.")
    mean = sum(values) / n
    if n == 1:
        std = half = math.nan
    else:
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half,
            "ci95_half_width": half, "values": values}


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> dict[str, float | int | list[float]]:
    """Summary of ``a[seed] - b[seed]`` over the seeds both have (see :func:`summarise`)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("The two sets of runs share no seed; a paired difference needs common seeds.")
    return {**summarise([a[s] - b[s] for s in seeds]), "seeds": seeds}


def verdict(difference: Mapping[str, float]) -> str:
    """``"higher"`` / ``"lower"`` when the 95% interval of a difference excludes 0, else ``"unclear"``."""
    low, high = difference["ci95_low"], difference["ci95_high"]
    if math.isnan(low) or math.isnan(high):
        return "unclear"
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "unclear"


def detectable_difference(std: float, n: int) -> float:
    """The smallest paired difference whose 95% t-interval excludes zero, for ``n`` seeds whose paired differences
    have sample standard deviation ``std``: ``t_{0.975, n-1} * std / sqrt(n)``, the interval's half-width."""
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def detectable_difference_at_80_power(std: float, n: int) -> float:
    """The true paired difference that the 95% two-sided paired t-test finds with 80% probability, for ``n`` seeds
    whose paired differences have sample standard deviation ``std``: ``(t_{0.975, n-1} + t_{0.80, n-1}) * std /
    sqrt(n)`` (the usual approximation: 79% in simulation with 5 seeds). A true difference of only
    :func:`detectable_difference` is found a little more than half the time (56% with 5 seeds)."""
    return (t_quantile_975(n - 1) + t_quantile_80(n - 1)) * std / math.sqrt(n)


def seeds_needed(std: float, target: float, most: int = 200) -> int | None:
    """The fewest seeds (at least 2) for which :func:`detectable_difference` is at most ``target`` given ``std``;
    None when even ``most`` seeds are not enough."""
    for n in range(2, most + 1):
        if detectable_difference(std, n) <= target:
            return n
    return None


def power_statement(differences: Mapping[str, Mapping[str, Mapping[str, float]]], measure: str,
                    target: float) -> dict[str, object]:
    """For one measure, from the measured spread of the paired differences against every other configuration: the
    smallest detectable difference with the seeds run (per configuration, and the largest of them: what the design
    guarantees), and the seeds that would bring it to ``target``."""
    per_config = {}
    for config, measures in differences.items():
        diff = measures.get(measure)
        if not diff or diff["n"] < 2 or math.isnan(diff["std"]):
            continue
        per_config[config] = {"seeds": diff["n"], "std_of_differences": diff["std"],
                              "detectable_difference": detectable_difference(diff["std"], diff["n"]),
                              "detectable_difference_at_80_power": detectable_difference_at_80_power(
                                  diff["std"], diff["n"]),
                              "seeds_for_target": seeds_needed(diff["std"], target)}
    if not per_config:
        return {"measure": measure, "target": target, "per_configuration": {}, "detectable_difference": None}
    worst = max(per_config.values(), key=lambda v: v["detectable_difference"])
    needs = [v["seeds_for_target"] for v in per_config.values()]
    return {"measure": measure, "target": target, "per_configuration": per_config,
            "detectable_difference": worst["detectable_difference"],
            "detectable_difference_at_80_power": max(
                v["detectable_difference_at_80_power"] for v in per_config.values()),
            "target_met": worst["detectable_difference"] <= target,
            "seeds_for_target": None if None in needs else max(needs)}
