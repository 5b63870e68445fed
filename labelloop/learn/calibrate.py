"""Calibrate a labeler's confidence against correctness, measure calibration, pick an auto-accept threshold.

A labeler (a model or a person) reports a confidence with each label; reviewed items say whether the label
was right. From such pairs this module fits a monotone map from raw confidence to the probability of being
right (:func:`fit_calibrator`: isotonic regression or Platt scaling, from scikit-learn), measures how far
confidences are from observed accuracy (:func:`expected_calibration_error`, :func:`reliability_table`,
:func:`write_reliability_plot`), and chooses the lowest confidence above which labels can be accepted
without review while the precision of the accepted labels is at least a target with a stated statistical
confidence (:func:`guaranteed_threshold`, Clopper–Pearson bounds from statsmodels). Pure functions on
arrays: no database, no CLI. Needs the ``agree`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "Calibrator",
    "Threshold",
    "clopper_pearson_lower",
    "expected_calibration_error",
    "fit_calibrator",
    "guaranteed_threshold",
    "reliability_table",
    "write_reliability_plot",
]

METHODS = ("isotonic", "platt", "identity")
MIN_PER_OUTCOME = 2  # fewest right and fewest wrong examples fit_calibrator needs; with fewer: identity


@dataclass
class Calibrator:
    """A fitted map from raw confidence to the probability that the label is right.

    ``params``: isotonic ``{"x": [...], "y": [...]}`` (the fitted steps, linearly interpolated and clipped at
    the ends, as scikit-learn predicts); platt ``{"coef": a, "intercept": b}`` for ``1 / (1 + exp(-(a s + b)))``;
    identity ``{}`` (scores clipped to [0, 1]).
    """

    method: str
    params: dict[str, Any]

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; expected one of {', '.join(METHODS)}")

    def __call__(self, scores: ArrayLike) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        if self.method == "isotonic":
            return np.interp(s, self.params["x"], self.params["y"])
        if self.method == "platt":
            return expit(self.params["coef"] * s + self.params["intercept"])
        return np.clip(s, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(method=data["method"], params=dict(data["params"]))


def fit_calibrator(scores: ArrayLike, correct: ArrayLike, method: str = "isotonic") -> Calibrator:
    """Fit ``method`` ("isotonic" or "platt") on pairs (raw confidence, was the label right).

    With fewer than :data:`MIN_PER_OUTCOME` right or wrong examples there is nothing to fit against, and the
    identity calibrator (scores clipped to [0, 1]) is returned. Isotonic regression is increasing, clipped
    outside the fitted range and bounded to [0, 1]. Platt scaling is an unpenalised logistic regression on
    the score with Platt's smoothed targets ((N₊+1)/(N₊+2) and 1/(N₋+2)), which keeps it finite when the
    outcomes are separable, as scikit-learn's sigmoid calibration does.
    """
    if method not in ("isotonic", "platt"):
        raise ValueError(f"unknown calibration method {method!r}; expected 'isotonic' or 'platt'")
    s, ok = _pairs(scores, correct, unit=False)
    right = int(ok.sum())
    if min(right, len(ok) - right) < MIN_PER_OUTCOME:
        return Calibrator("identity", {})
    return _fit_isotonic(s, ok) if method == "isotonic" else _fit_platt(s, ok)


def _fit_isotonic(s: np.ndarray, ok: np.ndarray) -> Calibrator:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, ok.astype(float))
    return Calibrator("isotonic", {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()})


def _fit_platt(s: np.ndarray, ok: np.ndarray) -> Calibrator:
    right, wrong = ok.sum(), (~ok).sum()
    soft = np.where(ok, (right + 1) / (right + 2), 1 / (wrong + 2))
    x = np.tile(s, 2)[:, None]
    y = np.repeat([1, 0], len(s))
    model = LogisticRegression(C=np.inf).fit(x, y, sample_weight=np.concatenate([soft, 1 - soft]))
    return Calibrator("platt", {"coef": float(model.coef_[0, 0]), "intercept": float(model.intercept_[0])})


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins of [0, 1]: Σ_b |B|/n · |acc(B) − conf(B)|."""
    counts, conf_sums, right_sums = _binned(confidence, correct, bins)
    if counts.sum() == 0:
        raise ValueError("the expected calibration error of no items is undefined")
    return float(np.abs(right_sums - conf_sums).sum() / counts.sum())


def reliability_table(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> list[dict[str, float]]:
    """One row per non-empty bin: ``lo``, ``hi``, ``count``, ``mean_confidence``, ``accuracy``."""
    counts, conf_sums, right_sums = _binned(confidence, correct, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return [
        {
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "count": int(counts[b]),
            "mean_confidence": float(conf_sums[b] / counts[b]),
            "accuracy": float(right_sums[b] / counts[b]),
        }
        for b in np.flatnonzero(counts)
    ]


def _binned(confidence: ArrayLike, correct: ArrayLike, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of [0, 1] (the last one closed): item count, sum of confidence, number right."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    conf, ok = _pairs(confidence, correct, unit=True)
    counts, conf_sums, right_sums = (
        np.histogram(conf, bins=bins, range=(0.0, 1.0), weights=w)[0] for w in (None, conf, ok.astype(float))
    )
    return counts, conf_sums, right_sums


def clopper_pearson_lower(successes: int, trials: int, level: float = 0.9) -> float:
    """One-sided Clopper–Pearson lower bound at ``level`` for a binomial proportion (0.0 when trials == 0)."""
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    _check_level(level)
    return 0.0 if trials == 0 else float(_lower_bounds(np.array([successes]), np.array([trials]), level)[0])


def _lower_bounds(successes: np.ndarray, trials: np.ndarray, level: float) -> np.ndarray:
    """Vectorised one-sided lower bounds (every trials > 0): the two-sided interval at 2(1 − level)."""
    return np.asarray(proportion_confint(successes, trials, alpha=2 * (1 - level), method="beta")[0], dtype=float)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")


@dataclass(frozen=True)
class Threshold:
    """An auto-accept threshold chosen on calibration items, with what it accepted there."""

    threshold: float | None  # accept confidence >= threshold; None: no threshold passed before the walk stopped
    accepted: int  # calibration items at/above it
    precision: float | None  # their observed precision
    lower_bound: float | None  # Clopper–Pearson lower bound of that precision at `level`
    coverage: float  # accepted / calibration items
    target: float
    level: float


def guaranteed_threshold(
    confidence: ArrayLike,
    correct: ArrayLike,
    target: float = 0.95,
    level: float = 0.9,
    *,
    required: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Threshold:
    """The lowest confidence whose accepted items have a Clopper–Pearson lower bound of precision >= ``target``.

    Many thresholds are tested, so to keep ``level`` valid for the one returned this is fixed-sequence testing:
    the distinct confidences are walked from the highest down, stopping at the first that fails (a lower one
    that would pass again is never reached). The walk begins at the first that accepts enough items for a
    perfect record to pass; those above it cannot pass whatever the labels, so they are no tests at all.
    ``required`` maps the candidate thresholds (highest first) to the precision each must reach instead of
    ``target`` everywhere (e.g. a dataset-accuracy goal asks less of a threshold that accepts fewer items).
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got {target}")
    _check_level(level)
    conf, ok = _pairs(confidence, correct, unit=False)
    none = Threshold(None, 0, None, None, 0.0, target, level)
    if len(conf) == 0:
        return none
    values, successes, trials = _cumulative(conf, ok)
    lower = _lower_bounds(successes, trials, level)
    needed = np.full(len(values), target) if required is None else np.asarray(required(values), dtype=float)
    testable = np.maximum.accumulate(_lower_bounds(trials, trials, level) >= needed)  # once testable, always
    passes = lower[testable] >= needed[testable]
    run = len(passes) if passes.all() else int(np.argmin(passes))
    if run == 0:
        return none
    i = int(np.argmax(testable)) + run - 1
    return Threshold(
        float(values[i]),
        int(trials[i]),
        float(successes[i] / trials[i]),
        float(lower[i]),
        float(trials[i] / len(conf)),
        target,
        level,
    )


def _cumulative(conf: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct confidences, highest first, with the right and all items at or above each."""
    order = np.argsort(conf, kind="stable")
    conf, ok = conf[order], ok[order]
    values = np.unique(conf)[::-1]
    below = np.searchsorted(conf, values, side="left")
    right_below = np.concatenate([[0], np.cumsum(ok)])[below]
    return values, ok.sum() - right_below, len(conf) - below


def write_reliability_plot(path: str | Path, curves: dict[str, tuple[ArrayLike, ArrayLike]], bins: int = 10) -> str:
    """Write a PNG reliability diagram: accuracy against mean confidence per bin, one line per curve
    (``{"before": (confidence, correct), "after": ...}``) with its ECE in the legend, and the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, (confidence, correct) in curves.items():
        rows = reliability_table(confidence, correct, bins)
        ece = expected_calibration_error(confidence, correct, bins)
        axes.plot(
            [r["mean_confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
        )
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title="reliability")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)


def _pairs(confidence: ArrayLike, correct: ArrayLike, unit: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D float confidences (within [0, 1] if ``unit``) and matching booleans."""
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct)
    if conf.ndim != 1 or conf.shape != right.shape:
        raise ValueError(f"confidence and correct must be 1-D and of equal length, got {conf.shape} and {right.shape}")
    if not np.isin(right, (0, 1)).all():
        raise ValueError("correct must hold booleans or 0/1")
    if not np.isfinite(conf).all() or (unit and ((conf < 0) | (conf > 1)).any()):
        raise ValueError("confidence must be finite" + (" and within [0, 1]" if unit else ""))
    return conf, right.astype(bool)
