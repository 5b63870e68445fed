"""How far each labeler of a simulation can be trusted: its confidence calibrated on held-out random audits.

A labeler (the small model, the LLM, or the two combined) answers every item with a label and a raw score. The
audit items — drawn at random and never trained on — are judged against people's labels, and an isotonic fit
of right-or-wrong on the raw score gives each item its probability of being right; ``caution`` says how much
worse the labeler's error rate may be than estimated, given how few audits there are. A labeler is not offered
before ``MIN_EVIDENCE`` audits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import beta
from sklearn.isotonic import IsotonicRegression

MIN_EVIDENCE = 20  # judged random draws a labeler needs before it is calibrated and offered


@dataclass
class AuditedLabeler:
    """One labeler's answers in a round: labels and calibrated confidence per item."""

    name: str
    labels: np.ndarray
    confidence: np.ndarray
    by_small: np.ndarray
    caution: float = 1.0  # how much worse its error rate may be than estimated, given how little evidence there is
    raw: Any = None  # its own scores (a column, or several), which calibration maps to ``confidence``
    calibrated: bool = False


def audited(
    name: str,
    labels: np.ndarray,
    raw: np.ndarray,
    by_small: np.ndarray,
    audits: np.ndarray,
    gold: np.ndarray,
    at_audits: tuple[np.ndarray, np.ndarray] | None = None,
) -> AuditedLabeler:
    """The labeler with its confidence calibrated (isotonic) on the ``audits`` (``at_audits``: its labels and
    scores there, when the labeler was itself fitted on them, out of fold); not calibrated with fewer than
    ``MIN_EVIDENCE`` audits."""
    labeler = AuditedLabeler(name, labels, np.zeros(len(labels)), by_small, raw=raw)
    if len(audits) < MIN_EVIDENCE:
        return labeler
    audit_labels, audit_scores = (labels[audits], main_score(raw)[audits]) if at_audits is None else at_audits
    right = audit_labels == gold[audits]
    wrong, count = int((~right).sum()), len(right)
    central = (wrong + 0.5) / (count + 1.0)
    labeler.caution = float(beta.ppf(0.9, wrong + 0.5, count - wrong + 0.5)) / central  # its 90% quantile
    labeler.confidence = isotonic(np.asarray(audit_scores, dtype=float), right, main_score(raw))
    labeler.calibrated = True
    return labeler


def main_score(raw: Any) -> np.ndarray:
    """A labeler's main score (the first column when it has several)."""
    raw = np.asarray(raw, dtype=float)
    return raw.reshape(len(raw), -1)[:, 0]


def isotonic(evidence: np.ndarray, right: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """P(right | score), increasing in the score, fitted on the evidence with half a right and half a wrong
    pseudo-answer at each end (a Jeffreys prior for the outermost blocks), so that no score is certain."""
    low, high = float(evidence.min()), float(evidence.max())
    x = np.concatenate([evidence, [low, low, high, high]])
    y = np.concatenate([right.astype(float), [0.0, 1.0, 0.0, 1.0]])
    weight = np.concatenate([np.ones(len(evidence)), [0.5, 0.5, 0.5, 0.5]])
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y, sample_weight=weight)
    return np.asarray(model.predict(scores), dtype=float)
