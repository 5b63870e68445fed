"""``annotation.aggregate: auto``: which way of combining people's answers a project gets, per question family.

No method wins on every data set, so each family of questions (a field, or one label of a set) is decided by
every candidate — majority vote, Dawid-Skene, one-coin Dawid-Skene, GLAD, MACE (crowd-kit) and Wawa (majority
weighted by each annotator's agreement with it; written here, crowd-kit's no longer runs with scikit-learn
1.6) — and the one chosen is:

- with at least :data:`MIN_TRUTH` items whose right answer is known and that two or more people answered
  (experts' decisions, and test questions with people's answers to them), the most accurate there; methods
  within one item of the best are separated by the criterion below;
- otherwise the one whose decisions best predict people's held-out answers: five folds of the answers, each
  method fitted on four, each held-out answer scored by its log probability under the method's posterior of
  the item and the annotator's confusion matrix estimated from the training answers (a criterion every method
  is scored by alike, needing no truth).

With fewer than :data:`MIN_TASKS` questions answered by two or more people, majority vote is kept (there is
too little to fit a worker model or to compare methods). A choice is kept by later aggregations until the
family's answered questions grow by :data:`REFIT_GROWTH`, so answering one more item does not refit every
candidate. The choice, its reason and every method's scores are reported and kept with the aggregation.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_TRUTH = 30
MIN_TASKS = 50  # with fewer questions answered by two or more people, majority vote (nothing to learn from)
REFIT_GROWTH = 1.2  # a family's choice is kept until its answered questions grow by this factor
CANDIDATES = ("majority", "dawid_skene", "one_coin", "glad", "mace", "wawa")
FOLDS = 5


@dataclass
class Choice:
    """The method chosen for one family of questions, why, and each candidate's score."""

    family: str
    method: str
    criterion: str  # "accuracy on N known answers" or "held-out likelihood of people's answers"
    scores: dict[str, float] = field(default_factory=dict)
    tasks: int = 0  # questions answered by two or more people when the choice was made


def posteriors(method: str, frame: Any) -> Any:
    """Each task's probability of each answer under ``method``: a DataFrame (tasks x answers) from a frame of
    ``task``, ``worker``, ``label`` rows."""
    return fit(method, frame)[0]


def fit(method: str, frame: Any) -> tuple[Any, Any]:
    """``method`` fitted once: its posteriors (see :func:`posteriors`) and, for Dawid-Skene, crowd-kit's
    ``errors_`` (each annotator's confusion matrix; None for the other methods)."""
    import pandas as pd

    if method in ("majority", "wawa"):
        counts = pd.crosstab(frame["task"], frame["label"])
        if method == "wawa":
            shares = counts.div(counts.sum(axis=1), axis=0)
            agreed = frame.assign(top=frame["task"].map(shares.idxmax(axis=1)))
            weight = (agreed["label"] == agreed["top"]).groupby(agreed["worker"]).mean()
            counts = pd.crosstab(frame["task"], frame["label"], values=frame["worker"].map(weight), aggfunc="sum")
            counts = counts.fillna(0.0) + 1e-9
        return counts.div(counts.sum(axis=1), axis=0), None
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, OneCoinDawidSkene

    make: dict[str, Callable[[], Any]] = {
        "dawid_skene": lambda: DawidSkene(n_iter=100),
        "one_coin": lambda: OneCoinDawidSkene(n_iter=100),
        "glad": lambda: GLAD(n_iter=100),
        "mace": lambda: MACE(random_state=0),
    }
    with warnings.catch_warnings():  # crowd-kit still uses pandas keywords that pandas 3 deprecates
        warnings.simplefilter("ignore")
        model = make[method]()
        found = model.fit_predict_proba(frame)
    return found, model.errors_ if method == "dawid_skene" else None


def choose(family: str, frame: Any, truth: Mapping[str, str]) -> Choice:
    """The method for one family: ``frame`` holds its answers (``task``, ``worker``, ``label``), ``truth`` the
    known answers of some tasks (as labels)."""
    answered = frame.groupby("task").size()
    if (answered >= 2).sum() < MIN_TASKS:
        return Choice(family, "majority", f"fewer than {MIN_TASKS} questions with two or more answers", {},
                      int((answered >= 2).sum()))  # fmt: skip
    fitted = {m: _safely(m, frame) for m in CANDIDATES}
    fitted = {m: p for m, p in fitted.items() if p is not None}
    tasks = int((answered >= 2).sum())
    if frame["label"].nunique() < 2 or len(fitted) == 1:
        return Choice(family, "majority", "one answer only", {}, tasks)
    known = [t for t in truth if t in answered.index and answered[t] >= 2]
    if len(known) >= MIN_TRUTH:
        accuracy = {m: float(np.mean([p.loc[t].idxmax() == truth[t] for t in known])) for m, p in fitted.items()}
        best = max(accuracy.values())
        close = [m for m in fitted if accuracy[m] >= best - 1 / len(known)]
        if len(close) == 1:
            return Choice(family, close[0], f"accuracy on {len(known)} known answers", accuracy, tasks)
        likelihood = {m: held_out_likelihood(m, frame) for m in close}
        method = max(close, key=lambda m: (likelihood[m], -CANDIDATES.index(m)))
        return Choice(family, method, f"accuracy on {len(known)} known answers, then held-out likelihood",
                      {**accuracy, **{f"{m} likelihood": v for m, v in likelihood.items()}}, tasks)  # fmt: skip
    likelihood = {m: held_out_likelihood(m, frame) for m in fitted}
    method = max(likelihood, key=lambda m: (likelihood[m], -CANDIDATES.index(m)))
    return Choice(family, method, "held-out likelihood of people's answers", likelihood, tasks)


def held_out_likelihood(method: str, frame: Any, seed: int = 0) -> float:
    """Mean log probability of held-out answers (five folds; see the module docstring)."""
    fold = np.random.default_rng(seed).integers(0, FOLDS, len(frame))
    scores: list[float] = []
    for k in range(FOLDS):
        train, test = frame[fold != k], frame[fold == k]
        found = _safely(method, train)
        if found is None:
            return float("-inf")
        labels = list(found.columns)
        index = {label: j for j, label in enumerate(labels)}
        post = found.reindex(train["task"]).to_numpy()
        confusion: dict[Any, np.ndarray] = {}
        for worker, rows in train.groupby("worker").indices.items():
            counts = np.ones((len(labels), len(labels)))
            for row in rows:
                counts[:, index[train["label"].iat[row]]] += post[row]
            confusion[worker] = counts / counts.sum(axis=1, keepdims=True)
        flat = np.full((len(labels), len(labels)), 1 / len(labels))
        for task, worker, label in test[["task", "worker", "label"]].itertuples(index=False):
            if task in found.index and label in index:
                p = found.loc[task].to_numpy() @ confusion.get(worker, flat)[:, index[label]]
                scores.append(float(np.log(max(p, 1e-12))))
    return float(np.mean(scores)) if scores else float("-inf")


def _safely(method: str, frame: Any) -> Any:
    try:
        return posteriors(method, frame)
    except Exception:  # a method that cannot fit these answers (too few, one worker) is not a candidate
        return None


def frame_of(rows: list[tuple[str, str, Any]]) -> Any:
    """A crowd-kit frame from (task, worker, value) rows; values as JSON strings (one dtype)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    frame["label"] = frame["label"].map(lambda v: json.dumps(v, ensure_ascii=False))
    return frame
