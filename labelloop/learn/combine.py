"""The LLM and the small model as one labeler: a calibrated combination of the two.

For every item the LLM gives a label and a confidence, and the small model a probability for each label. A
logistic-regression *stacker*, fitted on people-labeled items the small model did not train on (so it never
grades the small model on its own training items), learns from four features — the
LLM's confidence, the small model's probability of the LLM's label, the small model's probability of its own
label, and whether the two agree — how likely each of the two labels is right. The combined labeler answers
with whichever is likelier, and that probability is its confidence: an LLM answer the small model contradicts
loses confidence, and one it confirms gains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict


@dataclass
class Combined:
    """Per item: the combined label, its probability of being right, whether it is the LLM's label; and on the
    items the stacker was fitted on, its out-of-fold probability (for calibrating it there)."""

    labels: np.ndarray
    confidence: np.ndarray
    from_llm: np.ndarray
    audit_labels: np.ndarray
    audit_confidence: np.ndarray


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _features(
    probabilities: np.ndarray, classes: np.ndarray, llm_labels: np.ndarray, llm_conf: np.ndarray
) -> np.ndarray:
    index = {label: column for column, label in enumerate(classes)}
    columns = np.array([index.get(label, -1) for label in llm_labels])
    of_llm = np.where(columns >= 0, probabilities[np.arange(len(columns)), np.maximum(columns, 0)], 0.0)
    own = probabilities.max(axis=1)
    agree = (classes[probabilities.argmax(axis=1)] == llm_labels).astype(float)
    return np.column_stack([_logit(llm_conf), _logit(of_llm + 1e-4), _logit(own), agree])


def _right_probability(x: np.ndarray, right: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(right) everywhere from a stacker fitted on ``x[where]``, and out of fold on ``where`` (5 folds)."""
    y = right[where]
    if y.all() or not y.any():  # one outcome only: its share
        share = float(y.mean())
        return np.full(len(x), share), np.full(len(where), share)
    model = LogisticRegression(C=10.0, max_iter=1000)
    folds = int(min(5, y.sum(), (~y).sum()))
    if folds >= 2:
        oof = cross_val_predict(
            model, x[where], y, cv=StratifiedKFold(folds, shuffle=True, random_state=0), method="predict_proba"
        )[:, 1]
    else:
        oof = np.full(len(where), float(y.mean()))
    return model.fit(x[where], y).predict_proba(x)[:, 1], oof


def combine(
    classes: np.ndarray,
    probabilities: np.ndarray,
    llm_labels: np.ndarray,
    llm_conf: np.ndarray,
    fitted_on: np.ndarray,
    gold: np.ndarray,
) -> Combined:
    """The combined labeler on every item: ``probabilities`` are the small model's (rows aligned with the LLM's
    answers), and ``fitted_on`` the items (with ``gold`` labels) the small model did not train on, where the
    stacker learns."""
    x = _features(probabilities, classes, llm_labels, llm_conf)
    small_labels = classes[probabilities.argmax(axis=1)]
    p_llm, oof_llm = _right_probability(x, llm_labels == gold, fitted_on)
    p_small, oof_small = _right_probability(x, small_labels == gold, fitted_on)
    use_llm = p_llm >= p_small
    audit_llm = oof_llm >= oof_small
    return Combined(
        np.where(use_llm, llm_labels, small_labels),
        np.maximum(p_llm, p_small),
        use_llm,
        np.where(audit_llm, llm_labels[fitted_on], small_labels[fitted_on]),
        np.where(audit_llm, oof_llm, oof_small),
    )
