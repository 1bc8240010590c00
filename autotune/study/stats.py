"""Statistics of the measurement protocol: noise, paired ratios, bootstrap intervals.

Effects are computed on log ratios of a candidate run to its *adjacent* baseline run, so
slow drift of the machine cancels and effects compose multiplicatively.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964


def cv(values: list[float]) -> float:
    """Coefficient of variation (sample stdev / mean)."""
    if len(values) < 2:
        return 0.0
    arr = np.asarray(values, dtype=float)
    return float(arr.std(ddof=1) / arr.mean())


def pair_noise(values: list[float]) -> float:
    """Stdev of log ratios of consecutive runs: the noise a paired comparison sees."""
    if len(values) < 3:
        return 0.0
    logs = np.diff(np.log(np.asarray(values, dtype=float)))
    return float(logs.std(ddof=1))


def repeats_needed(noise: float, min_effect: float) -> int:
    """Pairs per trial so a 95% interval of the mean log ratio is narrower than min_effect."""
    if noise <= 0:
        return 1
    return max(1, math.ceil((Z95 * noise / math.log1p(min_effect)) ** 2))


@dataclass(frozen=True)
class Effect:
    """Relative change (candidate / baseline − 1) with a bootstrap 95% interval."""

    effect: float
    low: float
    high: float
    n: int

    def excludes_no_change(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | int]:
        return {"effect": self.effect, "ci_low": self.low, "ci_high": self.high, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Effect:
        return cls(d["effect"], d["ci_low"], d["ci_high"], int(d["n"]))


# Two-sided 97.5% Student t quantiles for 1..9 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262)
BOOTSTRAP_MIN_N = 10


def bootstrap_effect(ratios: list[float], *, resamples: int = 10000, seed: int = 0) -> Effect:
    """Mean log ratio and its 95% CI, reported as relative change.

    A percentile bootstrap needs enough samples to describe the spread: below
    ``BOOTSTRAP_MIN_N`` it would only return the range of the few ratios (two validation
    pairs would give a "CI" that is just their min and max), so small samples get a Student
    t interval instead, which is wide when it should be. One ratio has no spread at all:
    the interval is unbounded.
    """
    logs = np.log(np.asarray(ratios, dtype=float))
    point = math.expm1(float(logs.mean()))
    n = len(logs)
    if n < 2:
        return Effect(point, -math.inf, math.inf, n)
    if n < BOOTSTRAP_MIN_N:
        half = _T975[n - 2] * float(logs.std(ddof=1)) / math.sqrt(n)
        return Effect(point, math.expm1(float(logs.mean()) - half),
                      math.expm1(float(logs.mean()) + half), n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = logs[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Effect(point, math.expm1(float(lo)), math.expm1(float(hi)), n)


def geometric_mean(values: list[float]) -> float:
    return math.exp(float(np.mean(np.log(np.asarray(values, dtype=float)))))


def outliers(values: list[float], k: float = 3.0) -> list[int]:
    """Indexes farther than k MADs from the median: flagged for the report, never dropped."""
    arr = np.asarray(values, dtype=float)
    med = float(np.median(arr))
    mad = float(np.median(np.abs(arr - med))) * 1.4826
    if mad == 0:
        return []
    return [i for i, v in enumerate(arr) if abs(v - med) > k * mad]
