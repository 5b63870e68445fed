"""Whether one variant labels better than another on the same gold items, or the difference is noise.

Two paired tests on the same items: McNemar's exact test with the mid-p correction on per-item correctness
(Fagerland, Lydersen and Laake 2013: closer to the nominal level than the exact test, unlike the asymptotic
one valid at small counts), and a paired bootstrap confidence interval of the difference of any metric
(accuracy, macro F1, …), resampling items with the same draw for both variants. When a difference is not
significant, Connor's (1987) sample size says how many gold items would detect one of the observed size with
the wanted power.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Metric = Callable[[np.ndarray], float]  # the metric of a variant on the items at these indices


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs and the two-sided mid-p value."""

    only_a: int  # items A got right and B wrong
    only_b: int  # items B got right and A wrong
    p_value: float


def mcnemar_midp(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """McNemar's exact test, mid-p, two-sided, on per-item correctness of two variants on the same items."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("both variants must be scored on the same items")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return McNemar(only_a, only_b, 1.0)
    p = 2 * (stats.binom.cdf(k, n, 0.5) - 0.5 * stats.binom.pmf(k, n, 0.5))
    return McNemar(only_a, only_b, float(min(1.0, p)))


@dataclass(frozen=True)
class Interval:
    """The difference B − A of a metric and its bootstrap confidence interval."""

    difference: float
    low: float
    high: float
    level: float


def paired_bootstrap(
    metric_a: Metric, metric_b: Metric, items: int, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The percentile interval of metric(B) − metric(A) over ``resamples`` draws of the ``items`` items with
    replacement, each draw shared by both variants (so what the items have in common cancels)."""
    if items < 1:
        raise ValueError("no items to compare on")
    everything = np.arange(items)
    observed = metric_b(everything) - metric_a(everything)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, items, size=(resamples, items))
    differences = np.array([metric_b(d) - metric_a(d) for d in draws])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Interval(float(observed), float(low), float(high), level)


def mean_of(values: Sequence[float] | np.ndarray) -> Metric:
    """The metric that is the mean of per-item values (accuracy from correctness, MAE from errors)."""
    array = np.asarray(values, dtype=float)
    return lambda indices: float(array[indices].mean())


def items_to_detect(only_a: int, only_b: int, items: int, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """How many gold items McNemar's test needs to detect a difference of the observed size (discordant
    proportions ``only_a / items`` and ``only_b / items``) with ``power`` at level ``alpha`` (Connor 1987);
    None when the variants never disagree in one direction more than the other (no difference to detect)."""
    p01, p10 = only_a / items, only_b / items
    psi, delta = p01 + p10, abs(p10 - p01)
    if delta == 0:
        return None
    z_alpha, z_beta = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    n = (z_alpha * math.sqrt(psi) + z_beta * math.sqrt(max(psi - delta**2, 0.0))) ** 2 / delta**2
    return math.ceil(n)


@dataclass(frozen=True)
class Verdict:
    """One pair's comparison, and the sentence that says it."""

    a: str
    b: str
    metric: str
    interval: Interval
    test: McNemar
    items: int
    alpha: float = 0.05
    higher_is_better: bool = True  # False for an error (mean absolute error): a drop is the gain
    percent: bool = True  # a proportion, said in points; else in the metric's own units

    @property
    def significant(self) -> bool:
        return self.test.p_value < self.alpha and (self.interval.low > 0 or self.interval.high < 0)

    @property
    def items_needed(self) -> int | None:
        return None if self.significant else items_to_detect(self.test.only_a, self.test.only_b, self.items)

    def _said(self, value: float) -> str:
        return f"{100 * value:+.1f}" if self.percent else f"{value:+.3f}"

    def sentence(self) -> str:
        iv, unit = self.interval, "points of " if self.percent else "in "
        ci = f"{iv.level:.0%} CI [{self._said(iv.low)}, {self._said(iv.high)}], p = {_p(self.test.p_value)}"
        if self.significant:
            b_better = (iv.difference > 0) == self.higher_is_better
            winner, loser = (self.b, self.a) if b_better else (self.a, self.b)
            return f"{winner} beats {loser} by {self._said(abs(iv.difference))} {unit}{self.metric}, {ci}"
        said = (
            f"no significant difference between {self.a} and {self.b}: {self._said(iv.difference)} {unit}{self.metric}"
            f" (B − A), {ci}"
        )
        needed = self.items_needed
        if needed is None:
            return said + "; they are right and wrong on the same items"
        return said + f"; about {needed:,} gold items would detect a difference this size with power 0.8"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
