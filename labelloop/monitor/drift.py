"""The statistics of the drift alarm: how one batch of items differs from a reference, each test with its
threshold, raising an alarm only when a difference is both significant and large enough to matter.

Large batches make every test significant for a trivial change, and small ones miss real changes, so each
alarm asks for both: the label distribution by the chi-square test of homogeneity *and* the population
stability index; a continuous distribution (confidence, text length) by the two-sample Kolmogorov–Smirnov test
*and* its distance D; a rate (sent to review, model against people) by Fisher's exact test *and* its change.
Needs the ``agree`` extra (scipy).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Thresholds:
    """When a statistic raises an alarm (the defaults; ``monitor:`` in ``labelloop.yaml`` will set them)."""

    p_value: float = 0.01  # every test's significance level
    psi: float = 0.2  # population stability index: 0.1 a moderate shift, 0.2 a large one (the usual reading)
    ks_distance: float = 0.15  # Kolmogorov–Smirnov D: the largest gap between the two cumulative distributions
    rate_change: float = 0.10  # an absolute change of a rate (review rate, disagreement with people)
    unknown_change: float = 0.02  # an absolute change of the unknown-character rate
    min_items: int = 30  # a smaller batch (or reference) raises no alarm
    centroid_distance: float = 0.25  # embedding centroids this far apart, in units of the reference's spread


@dataclass(frozen=True)
class Statistic:
    """One statistic of a batch against the reference."""

    name: str
    value: float | None  # the effect: PSI, D, or the batch's rate minus the reference's
    p_value: float | None
    threshold: float
    alarm: bool


def population_stability_index(reference: Sequence[str], batch: Sequence[str], epsilon: float = 1e-4) -> float:
    """Σ (b − r) ln(b / r) over the categories of either, with shares floored at ``epsilon``."""
    r, b = Counter(reference), Counter(batch)
    total = 0.0
    for category in set(r) | set(b):
        rs, bs = max(r[category] / len(reference), epsilon), max(b[category] / len(batch), epsilon)
        total += (bs - rs) * math.log(bs / rs)
    return total


def label_shift(reference: Sequence[str], batch: Sequence[str], t: Thresholds = Thresholds()) -> Statistic:
    """The predicted label distribution: chi-square test of homogeneity and PSI."""
    if min(len(reference), len(batch)) < t.min_items:
        return Statistic("labels", None, None, t.psi, False)
    categories = sorted(set(reference) | set(batch))
    r, b = Counter(reference), Counter(batch)
    table = np.array([[r[c] for c in categories], [b[c] for c in categories]])
    p = float(stats.chi2_contingency(table)[1]) if len(categories) > 1 else 1.0
    psi = population_stability_index(reference, batch)
    return Statistic("labels", psi, p, t.psi, p < t.p_value and psi > t.psi)


def distribution_shift(
    name: str, reference: Sequence[float], batch: Sequence[float], t: Thresholds = Thresholds()
) -> Statistic:
    """A continuous distribution (confidence, text length): two-sample Kolmogorov–Smirnov test and its D."""
    if min(len(reference), len(batch)) < t.min_items:
        return Statistic(name, None, None, t.ks_distance, False)
    result = stats.ks_2samp(reference, batch)
    d, p = float(result.statistic), float(result.pvalue)
    return Statistic(name, d, p, t.ks_distance, p < t.p_value and d > t.ks_distance)


def rate_shift(
    name: str, reference: tuple[int, int], batch: tuple[int, int], change: float, t: Thresholds = Thresholds()
) -> Statistic:
    """A rate, as (hits, items) in each: Fisher's exact test and the change of the rate."""
    (rh, rn), (bh, bn) = reference, batch
    if min(rn, bn) < t.min_items:
        return Statistic(name, None, None, change, False)
    p = float(stats.fisher_exact([[rh, rn - rh], [bh, bn - bh]])[1])
    delta = bh / bn - rh / rn
    return Statistic(name, delta, p, change, p < t.p_value and abs(delta) > change)


def unknown_characters(texts: Sequence[str]) -> tuple[int, int]:
    """(unknown characters, characters): replacement characters, unassigned, private-use and control
    characters other than white space — what a broken encoding or a new source's markup leaves behind."""
    unknown = total = 0
    for text in texts:
        total += len(text)
        unknown += sum(
            ch == "\ufffd" or (unicodedata.category(ch) in ("Cn", "Co", "Cc") and not ch.isspace()) for ch in text
        )
    return unknown, total


def input_shift(reference: Sequence[str], batch: Sequence[str], t: Thresholds = Thresholds()) -> list[Statistic]:
    """The texts themselves: their length (KS) and their unknown-character rate (Fisher, on characters)."""
    lengths = distribution_shift("text length", [len(x) for x in reference], [len(x) for x in batch], t)
    if min(len(reference), len(batch)) < t.min_items:
        return [lengths, Statistic("unknown characters", None, None, t.unknown_change, False)]
    unknown = rate_shift("unknown characters", unknown_characters(reference), unknown_characters(batch),
                         t.unknown_change, Thresholds(t.p_value, min_items=0))  # fmt: skip
    return [lengths, unknown]


def centroid_shift(
    reference: np.ndarray, batch: np.ndarray, t: Thresholds = Thresholds(), permutations: int = 500, seed: int = 0
) -> Statistic:
    """Input shift in meaning: the distance between the batch's and the reference's embedding centroids
    (vectors normalised to unit length), in units of the reference's spread (the root mean squared distance of
    its vectors to their centroid), so one threshold holds for embedders whose raw distances differ tenfold.
    Significance by a permutation test of the raw distance (items shuffled between the two; at most 2,000 of
    each take part)."""
    if min(len(reference), len(batch)) < t.min_items:
        return Statistic("embedding centroid", None, None, t.centroid_distance, False)
    ref, new = _unit(reference), _unit(batch)
    centre = ref.mean(axis=0)
    spread = float(np.sqrt(((ref - centre) ** 2).sum(axis=1).mean()))
    observed = float(np.linalg.norm(new.mean(axis=0) - centre))
    effect = observed / spread if spread > 0 else 0.0
    rng = np.random.default_rng(seed)
    ref, new = (x[rng.choice(len(x), _MOST, replace=False)] if len(x) > _MOST else x for x in (ref, new))
    pooled, size = np.vstack([ref, new]).astype(np.float32), len(new)
    # each permutation's mean difference as one row of weights: +1/size on its "batch", −1/rest elsewhere
    in_batch = np.argsort(rng.random((permutations, len(pooled))), axis=1) < size
    weights = np.where(in_batch, 1.0 / size, -1.0 / (len(pooled) - size)).astype(np.float32)
    as_far = int((np.linalg.norm(weights @ pooled, axis=1) >= observed * (1 - 1e-6)).sum())
    p = (1 + as_far) / (1 + permutations)
    alarm = p < t.p_value and effect > t.centroid_distance
    return Statistic("embedding centroid", effect, p, t.centroid_distance, alarm)


_MOST = 2000  # vectors of each side in the permutation test


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
