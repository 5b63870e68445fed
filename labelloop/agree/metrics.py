"""Inter-annotator agreement and majority aggregation, as pure functions.

Annotations are a mapping ``{item_id: {annotator: value}}``. A value is any hashable answer: a label
string for single-label tasks, or a ``frozenset`` of labels for multi-label tasks (each distinct set
is then one category). Missing answers are simply absent keys. The statistics come from libraries
(statsmodels, krippendorff); this module only reshapes the data for them. A statistic
that is undefined (for instance every rater gives the same single category, so chance agreement is
1) is returned as ``None`` rather than ``nan``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Container, Hashable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any, Literal

import krippendorff
import numpy as np
import numpy.typing as npt
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as _sm_fleiss_kappa

from ..answers import Annotations, ItemT, RaterT, majority

__all__ = [
    "binarize",
    "cohen_kappa",
    "fleiss_kappa",
    "from_records",
    "krippendorff_alpha",
    "majority",
    "pairwise",
    "per_label_agreement",
]


def from_records(
    rows: Iterable[Mapping[str, Any]], *, item: str = "item", annotator: str = "annotator", field: str = "labels"
) -> dict[Hashable, dict[Hashable, Hashable]]:
    """Build annotations from records such as ``annotations.jsonl`` rows; list values become frozensets."""
    out: dict[Hashable, dict[Hashable, Hashable]] = {}
    for row in rows:
        value = row[field]
        if isinstance(value, (list, tuple, set)):
            value = frozenset(value)
        out.setdefault(row[item], {})[row[annotator]] = value
    return out


def _defined(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _categories(
    annotations: Annotations[ItemT, RaterT], order: Sequence[Hashable] | None = None
) -> dict[Hashable, int]:
    """Map each category to an int: by ``order`` if given, else sorted by ``repr`` (frozensets included)."""
    if order is None:
        order = sorted({v for raters in annotations.values() for v in raters.values()}, key=repr)
    return {value: code for code, value in enumerate(order)}


def _pair_agreement(values: Sequence[Hashable]) -> tuple[int, int]:
    """(agreeing rater pairs, all rater pairs) within one item."""
    n = len(values)
    same = sum(c * (c - 1) // 2 for c in Counter(values).values())
    return same, n * (n - 1) // 2


def pairwise(annotations: Annotations[ItemT, RaterT], min_items: int = 2) -> list[dict[str, Any]]:
    """Percent agreement and Cohen's kappa for every annotator pair sharing at least ``min_items`` items.

    Kappa is statsmodels' ``cohens_kappa`` of the pair's contingency table over the shared items
    (frozensets are categories; the same value as ``sklearn.metrics.cohen_kappa_score``, at a hundredth
    of its cost, which matters with hundreds of crowd workers); it is ``None`` where undefined (both
    annotators used one and the same category throughout).
    """
    by_annotator: dict[RaterT, dict[ItemT, Hashable]] = {}
    for item, raters in annotations.items():
        for annotator, value in raters.items():
            by_annotator.setdefault(annotator, {})[item] = value
    codes = _categories(annotations)
    result = []
    for a, b in combinations(sorted(by_annotator, key=repr), 2):
        shared = [i for i in by_annotator[a] if i in by_annotator[b]]
        if len(shared) < max(2, min_items):
            continue
        ya = np.array([codes[by_annotator[a][i]] for i in shared])
        yb = np.array([codes[by_annotator[b][i]] for i in shared])
        agree = float(np.mean(ya == yb))
        kappa = cohen_kappa(ya, yb)
        result.append(
            {"a": a, "b": b, "items": len(shared), "percent_agreement": agree, "cohen_kappa": _defined(kappa)}
        )
    return result


def cohen_kappa(a: npt.ArrayLike, b: npt.ArrayLike) -> float | None:
    """Cohen's kappa of two raters' category codes (statsmodels, from the contingency table); None if undefined."""
    used = np.unique(np.concatenate([a, b]))
    index = np.searchsorted(used, a), np.searchsorted(used, b)
    table = np.zeros((len(used), len(used)))
    np.add.at(table, index, 1)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(_sm_cohens_kappa(table, return_results=False))


def fleiss_kappa(annotations: Annotations[ItemT, RaterT], labels: Sequence[Hashable]) -> float | None:
    """Fleiss' kappa (statsmodels) over the categories ``labels``.

    Fleiss' kappa needs the same number of ratings on every item, so it is computed only on the items
    whose rating count equals the most common count among items with at least 2 ratings (on a tie, the
    larger count); the other items are left out. Use :func:`krippendorff_alpha` to use every item.
    A value outside ``labels`` raises ``ValueError``. ``None`` if no such items or kappa is undefined.
    """
    codes = _categories(annotations, labels)
    counts = Counter(len(r) for r in annotations.values() if len(r) >= 2)
    if not counts:
        return None
    n = max(counts, key=lambda k: (counts[k], k))
    rows = []
    for raters in annotations.values():
        if len(raters) == n:
            try:
                rows.append([codes[v] for v in raters.values()])
            except KeyError as exc:
                raise ValueError(f"value {exc.args[0]!r} is not in labels") from None
    table, _ = aggregate_raters(np.array(rows), n_cat=len(labels))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(_sm_fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(
    annotations: Annotations[ItemT, RaterT], level: str = "nominal", order: Sequence[Hashable] | None = None
) -> float | None:
    """Krippendorff's alpha (``krippendorff`` package), using every item and tolerating missing values.

    Alpha depends only on how often each value occurs per item, so the package is given that
    item x value count matrix (fast with hundreds of annotators) rather than annotators x items.
    ``level`` is ``"nominal"`` or ``"ordinal"``; for ordinal data, ``order`` gives the category order
    (default: sorted values). ``None`` when fewer than 2 distinct values occur or alpha is undefined.
    """
    if level not in ("nominal", "ordinal"):
        raise ValueError(f"level must be 'nominal' or 'ordinal', not {level!r}")
    measurement: Literal["nominal", "ordinal"] = "nominal" if level == "nominal" else "ordinal"
    codes = _categories(annotations, order)
    counts: npt.NDArray[np.float64] = np.zeros((len(annotations), len(codes)))
    for row, raters in enumerate(annotations.values()):
        for value in raters.values():
            counts[row, codes[value]] += 1
    present = np.flatnonzero(counts.sum(axis=0))
    if len(present) < 2:
        return None
    if measurement == "nominal":
        counts = counts[:, present]  # unused categories change nothing for nominal data
    with np.errstate(divide="ignore", invalid="ignore"):
        return _defined(
            krippendorff.alpha(
                value_counts=counts, level_of_measurement=measurement, value_domain=list(range(counts.shape[1]))
            )
        )


def binarize(
    annotations: Mapping[ItemT, Mapping[RaterT, Container[Hashable]]], label: Hashable
) -> dict[ItemT, dict[RaterT, bool]]:
    """One yes/no question per annotator and item: does the annotator's label set contain ``label``?"""
    return {item: {a: label in value for a, value in raters.items()} for item, raters in annotations.items()}


def per_label_agreement(
    annotations: Mapping[ItemT, Mapping[RaterT, Container[Hashable]]], labels: Sequence[Hashable]
) -> dict[Hashable, dict[str, Any]]:
    """Multi-label agreement: each label is a binary present/absent question per annotator.

    For each label: ``alpha`` (Krippendorff's alpha, nominal, over the binarised answers; ``None``
    when the label is never or always chosen), ``percent_agreement`` (share of agreeing rater pairs
    within items, pooled) and ``positives`` (how many answers contain the label).
    Why not MASI-weighted alpha on whole sets: a single set-level number hides which labels are
    reliable, and set distances depend on how many labels are offered; per-label binary agreement
    says, for each relation, whether people agree it holds — what a guideline fix needs.
    """
    out: dict[Hashable, dict[str, Any]] = {}
    for label in labels:
        binary = binarize(annotations, label)
        same = pairs = 0
        for raters in binary.values():
            s, p = _pair_agreement(list(raters.values()))
            same, pairs = same + s, pairs + p
        out[label] = {
            "alpha": krippendorff_alpha(binary, "nominal", order=[False, True]),
            "percent_agreement": same / pairs if pairs else None,
            "positives": sum(v for raters in binary.values() for v in raters.values()),
        }
    return out
