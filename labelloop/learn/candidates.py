"""Which small model a project gets: candidates compared by cross-validation on people's labels.

A candidate is a feature set — one embedder's vectors, or several concatenated — and a regularisation strength
of logistic regression. No embedder wins everywhere (all-MiniLM-L6-v2 is the better English one; the
multilingual E5 wins on Chinese by far), and the regularisation that suits a few dozen labels is wrong for a
few thousand, so each candidate is scored by stratified k-fold accuracy (ties: log loss) and the best one
labels the project. :func:`choose` returns every candidate's scores with the winner.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict

STRENGTHS = (1.0, 10.0, 100.0)  # logistic regression C; larger: less regularised


@dataclass(frozen=True)
class Candidate:
    """Embedders (concatenated, in this order) and a logistic-regression C."""

    embedders: tuple[str, ...]
    strength: float

    @property
    def name(self) -> str:
        return f"{'+'.join(self.embedders)} C={self.strength:g}"


@dataclass
class Choice:
    """The winner and every candidate's cross-validated accuracy and log loss."""

    best: Candidate
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    folds: int = 0


def features(vectors: Mapping[str, np.ndarray], embedders: tuple[str, ...]) -> np.ndarray:
    """The feature matrix of a candidate: its embedders' unit vectors side by side, scaled to unit length."""
    if len(embedders) == 1:
        return vectors[embedders[0]]
    return np.hstack([vectors[name] for name in embedders]) / np.sqrt(len(embedders))


def candidates(embedders: list[str], strengths: tuple[float, ...] = STRENGTHS) -> list[Candidate]:
    """Each embedder alone and, when there are several, all of them together, at every strength."""
    sets = [(name,) for name in embedders] + ([tuple(embedders)] if len(embedders) > 1 else [])
    return [Candidate(s, c) for s in sets for c in strengths]


def classifier(strength: float) -> LogisticRegression:
    return LogisticRegression(C=strength, max_iter=2000)


def fitted(strength: float, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    """A classifier fitted on ``x``, ``y``; quiet about many classes among few labels (early rounds have that)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return classifier(strength).fit(x, y)


def out_of_fold(x: np.ndarray, y: np.ndarray, strength: float, folds: int = 3, seed: int = 0) -> np.ndarray:
    """Class probabilities of every row from a model that did not see it (stratified folds; classes sorted)."""
    counts = np.unique(y, return_counts=True)[1]
    splits = int(max(2, min(folds, counts.max(), len(y) // 2)))
    with warnings.catch_warnings():  # a class rarer than the folds: sklearn warns, the fold just lacks it
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return cross_val_predict(
            classifier(strength),
            x,
            y,
            cv=StratifiedKFold(splits, shuffle=True, random_state=seed),
            method="predict_proba",
        )


def choose(
    vectors: Mapping[str, np.ndarray], y: np.ndarray, options: list[Candidate], folds: int = 3, seed: int = 0
) -> Choice:
    """The candidate with the best cross-validated accuracy on ``y`` (rows of ``vectors``), ties by log loss."""
    if not options:
        raise ValueError("no candidate to choose from")
    classes = np.unique(y)
    scores: dict[str, dict[str, float]] = {}
    ranked: list[tuple[float, float, int, Candidate]] = []
    for option in options:
        oof = out_of_fold(features(vectors, option.embedders), y, option.strength, folds, seed)
        accuracy = float(np.mean(classes[oof.argmax(axis=1)] == y))
        loss = float(log_loss(y, np.clip(oof, 1e-9, 1.0), labels=classes))
        scores[option.name] = {"accuracy": accuracy, "log_loss": loss}
        ranked.append((-accuracy, loss, len(ranked), option))
    best = min(ranked)[3]
    counts = np.unique(y, return_counts=True)[1]
    return Choice(best, scores, int(max(2, min(folds, counts.max(), len(y) // 2))))
