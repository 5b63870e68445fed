"""The small model: logistic regression over item embeddings, trained on people's labels (classify tasks).

``train`` chooses the model — which embedders (each alone, or concatenated) and how much regularisation — by
cross-validated accuracy on people's labels (:mod:`.candidates`), cross-validates the winner (stratified folds:
accuracy, macro F1, per label), fits a calibrator on the out-of-fold confidences (isotonic by default),
chooses the auto-accept threshold whose accepted items' precision has a Clopper-Pearson lower bound at or
above the target, then fits on all the gold and saves the model with the version of the data it saw.
``predict`` makes it a labeler like the LLM: a label and a calibrated confidence per item, stored as
predictions of the labeler ``small``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score

from .. import labelers
from ..errors import ProjectError
from ..spec import ClassifySpec, TaskSpec
from ..store import PredictionRecord, Store
from .calibrate import Calibrator, Threshold, expected_calibration_error, fit_calibrator, guaranteed_threshold
from .candidates import STRENGTHS, candidates, choose, features, fitted, out_of_fold
from .embed import Embeddings

LABELER = labelers.SMALL


@dataclass
class SmallModel:
    """A fitted classifier with its calibration and guaranteed threshold."""

    classifier: LogisticRegression
    calibrator: Calibrator
    threshold: Threshold
    embedders: tuple[str, ...]
    data_version: str

    @property
    def embedder(self) -> str:
        return "+".join(self.embedders)

    def predict(self, vectors: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Labels, raw confidences and calibrated confidences for rows of embeddings (by embedder name)."""
        probabilities = self.classifier.predict_proba(features(vectors, self.embedders))
        best = probabilities.argmax(axis=1)
        raw = probabilities[np.arange(len(best)), best]
        return [str(self.classifier.classes_[i]) for i in best], raw, self.calibrator(raw)


@dataclass
class TrainReport:
    """What training measured (cross-validated) and where the model went."""

    examples: int
    labels: int
    folds: int
    accuracy: float
    macro_f1: float
    per_label: dict[str, dict[str, float]]
    ece_before: float
    ece_after: float
    threshold: dict[str, Any]
    data_version: str
    model: str = ""  # the winning candidate, e.g. "all-MiniLM-L6-v2+multilingual-e5-small C=10"
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)  # each one's CV accuracy and log loss
    path: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gold_labels(store: Store, spec: TaskSpec) -> dict[str, str]:
    """People's decided labels by item (classify tasks)."""
    if not isinstance(spec, ClassifySpec):
        raise ProjectError(f"the small model learns classify tasks; this task is {spec.kind}")
    return {item: output["label"] for item, output in store.gold_outputs().items() if output.get("label")}


def fit(
    vectors: Mapping[str, np.ndarray],
    labels: list[str],
    *,
    folds: int = 5,
    regularization: float | None = None,
    calibration: str = "isotonic",
    target: float = 0.95,
    level: float = 0.9,
    version: str = "",
    seed: int = 0,
) -> tuple[SmallModel, TrainReport]:
    """Choose the candidate (embedders x regularisation) by cross-validation, calibrate the winner on its
    out-of-fold confidences, choose the threshold, fit on everything. ``vectors``: rows per embedder name."""
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2:
        raise ProjectError("the small model needs people's labels of at least two classes")
    strengths = (regularization,) if regularization is not None else STRENGTHS
    options = candidates(list(vectors), strengths)
    picked = choose(vectors, y, options, folds, seed) if len(options) > 1 else None
    best = picked.best if picked is not None else options[0]
    x = features(vectors, best.embedders)
    n_splits = int(max(2, min(folds, counts.max(), len(y) // 2)))
    oof = out_of_fold(x, y, best.strength, folds, seed)
    classes = np.unique(y)
    predicted = classes[oof.argmax(axis=1)]
    raw = oof.max(axis=1)
    correct = predicted == y
    calibrator = fit_calibrator(raw, correct, method=calibration)
    calibrated = calibrator(raw)
    threshold = guaranteed_threshold(calibrated, correct, target=target, level=level)
    model = SmallModel(fitted(best.strength, x, y), calibrator, threshold, best.embedders, version)
    per_label = classification_report(y, predicted, output_dict=True, zero_division=0)
    report = TrainReport(
        examples=len(y),
        labels=len(classes),
        folds=n_splits,
        accuracy=float(accuracy_score(y, predicted)),
        macro_f1=float(f1_score(y, predicted, average="macro", zero_division=0)),
        per_label={k: {m: float(v) for m, v in row.items()} for k, row in per_label.items() if k in set(classes)},
        ece_before=expected_calibration_error(raw, correct),
        ece_after=expected_calibration_error(calibrated, correct),
        threshold=asdict(threshold),
        data_version=version,
        model=best.name,
        candidates=picked.scores if picked is not None else {},
    )
    if counts.min() < n_splits:
        report.notes.append(f"{int((counts < n_splits).sum())} labels have fewer than {n_splits} examples")
    return model, report


def data_version(ids: list[str], labels: list[str], embedder: str) -> str:
    """A short hash of the training data (ids and labels) and the embedder."""
    payload = json.dumps({"ids": ids, "labels": labels, "embedder": embedder}, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def train(store: Store, spec: TaskSpec, embeddings: Mapping[str, Embeddings], models_dir: Path) -> TrainReport:
    """Train on the project's gold labels (``embeddings``: every embedder's, by name), save the model file and
    record it; the cross-validated report."""
    gold = gold_labels(store, spec)
    ids = [i for i in common_ids(embeddings) if i in gold]
    settings = spec.learn
    if len(ids) < settings.small_model.min_examples:
        raise ProjectError(
            f"the small model needs {settings.small_model.min_examples} people-labeled items with"
            f" embeddings; there are {len(ids)} (learn.small_model.min_examples)"
        )
    labels = [gold[i] for i in ids]
    names = "+".join(embeddings)
    model, report = fit(
        {name: found.rows(ids) for name, found in embeddings.items()},
        labels,
        folds=settings.small_model.folds,
        regularization=settings.small_model.regularization,
        calibration=settings.policy.calibration,
        target=settings.policy.target_precision,
        level=settings.policy.confidence_level,
        version=data_version(ids, labels, names),
    )
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{LABELER}-{model.data_version}.joblib"
    tmp = path.with_suffix(".tmp")
    joblib.dump(model, tmp)
    os.replace(tmp, path)
    report.path = str(path)
    store.save_model(LABELER, str(path), model.data_version, model.embedder, len(ids), report.to_dict())
    return report


def common_ids(embeddings: Mapping[str, Embeddings]) -> list[str]:
    """Items every embedder has a vector of, in the first one's order."""
    if not embeddings:
        return []
    first, *others = embeddings.values()
    have = set(first.ids).intersection(*(set(e.ids) for e in others)) if others else set(first.ids)
    return [i for i in first.ids if i in have]


def load(store: Store) -> SmallModel:
    """The latest trained small model of the project."""
    row = store.latest_model(LABELER)
    if row is None:
        raise ProjectError("no small model yet: run 'labelloop train' first")
    try:
        return joblib.load(row["path"])
    except FileNotFoundError:
        raise ProjectError(f"{row['path']}: the model file is gone; run 'labelloop train' again") from None


def predict(store: Store, spec: TaskSpec, model: SmallModel, embeddings: Mapping[str, Embeddings]) -> dict[str, int]:
    """Label every item the model's embedders have embedded with the small model (labeler ``small``); counts
    by route."""
    missing = [name for name in model.embedders if name not in embeddings]
    if missing:
        raise ProjectError(
            f"the small model uses {', '.join(missing)}, which the project no longer embeds;"
            " run 'labelloop train' again"
        )
    ids = common_ids({name: embeddings[name] for name in model.embedders})
    if not ids:
        return {}
    labels, raw, calibrated = model.predict({name: embeddings[name].rows(ids) for name in model.embedders})
    threshold = model.threshold.threshold
    version = f"{LABELER}-{model.data_version}"
    store.save_prompt(
        version, [{"role": "system", "content": f"logistic regression on {model.embedder}"}], "", spec.output_schema()
    )
    hashes = store.content_hashes(ids)
    records = []
    routes: dict[str, int] = {}  # counts by route
    for item_id, label, conf_raw, conf in zip(ids, labels, raw, calibrated):
        accepted = threshold is not None and conf >= threshold
        route = "accepted" if accepted else "needs_review"
        routes[route] = routes.get(route, 0) + 1
        records.append(
            PredictionRecord(
                item_id,
                LABELER,
                version,
                hashes[item_id],
                version,
                version,
                "ok",
                output={"label": label},
                confidence=float(conf),
                confidence_method=f"{model.calibrator.method}(logreg {conf_raw:.3f})",
                field_confidence={"label": float(conf)},
                route=route,
                reasons=[] if accepted else ["small_model_unsure"],
            )
        )
    store.record_run(records, backend="small-model")
    return routes
