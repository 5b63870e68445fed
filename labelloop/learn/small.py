"""The small model: logistic regression over item embeddings, trained on people's labels (classify tasks).

``train`` cross-validates (stratified folds: accuracy, macro F1, per label), fits a calibrator on the
out-of-fold confidences (isotonic by default), chooses the auto-accept threshold whose accepted items'
precision has a Clopper-Pearson lower bound at or above the target, then fits on all the gold and saves
the model with the version of the data it saw. ``predict`` makes it a labeler like the LLM: a label and
a calibrated confidence per item, stored as predictions of the labeler ``small``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .. import labelers
from ..errors import ProjectError
from ..spec import ClassifySpec, TaskSpec
from ..store import PredictionRecord, Store
from .calibrate import Calibrator, Threshold, expected_calibration_error, fit_calibrator, guaranteed_threshold
from .embed import Embeddings

LABELER = labelers.SMALL


@dataclass
class SmallModel:
    """A fitted classifier with its calibration and guaranteed threshold."""

    classifier: LogisticRegression
    calibrator: Calibrator
    threshold: Threshold
    embedder: str
    data_version: str

    def predict(self, vectors: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Labels, raw confidences and calibrated confidences for rows of embeddings."""
        probabilities = self.classifier.predict_proba(vectors)
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
    vectors: np.ndarray,
    labels: list[str],
    *,
    folds: int = 5,
    regularization: float = 1.0,
    calibration: str = "isotonic",
    target: float = 0.95,
    level: float = 0.9,
    embedder: str = "",
    version: str = "",
    seed: int = 0,
) -> tuple[SmallModel, TrainReport]:
    """Cross-validate, calibrate on out-of-fold confidences, choose the threshold, fit on everything."""
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2:
        raise ProjectError("the small model needs people's labels of at least two classes")
    n_splits = int(max(2, min(folds, counts.max(), len(y) // 2)))
    classifier = LogisticRegression(C=regularization, max_iter=2000, class_weight="balanced")
    with warnings.catch_warnings():  # classes rarer than the folds: sklearn warns, the fold just lacks them
        warnings.simplefilter("ignore", UserWarning)
        oof = cross_val_predict(
            classifier,
            vectors,
            y,
            cv=StratifiedKFold(n_splits, shuffle=True, random_state=seed),
            method="predict_proba",
        )
    classes = np.unique(y)
    predicted = classes[oof.argmax(axis=1)]
    raw = oof.max(axis=1)
    correct = predicted == y
    calibrator = fit_calibrator(raw, correct, method=calibration)
    calibrated = calibrator(raw)
    threshold = guaranteed_threshold(calibrated, correct, target=target, level=level)
    classifier.fit(vectors, y)
    model = SmallModel(classifier, calibrator, threshold, embedder, version)
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
    )
    if counts.min() < n_splits:
        report.notes.append(f"{int((counts < n_splits).sum())} labels have fewer than {n_splits} examples")
    return model, report


def data_version(ids: list[str], labels: list[str], embedder: str) -> str:
    """A short hash of the training data (ids and labels) and the embedder."""
    payload = json.dumps({"ids": ids, "labels": labels, "embedder": embedder}, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def train(store: Store, spec: TaskSpec, embeddings: Embeddings, models_dir: Path) -> TrainReport:
    """Train on the project's gold labels, save the model file and record it; the cross-validated report."""
    gold = gold_labels(store, spec)
    ids = [i for i in embeddings.ids if i in gold]
    settings = spec.learn
    if len(ids) < settings.small_model.min_examples:
        raise ProjectError(
            f"the small model needs {settings.small_model.min_examples} people-labeled items with"
            f" embeddings; there are {len(ids)} (learn.small_model.min_examples)"
        )
    labels = [gold[i] for i in ids]
    model, report = fit(
        embeddings.rows(ids),
        labels,
        folds=settings.small_model.folds,
        regularization=settings.small_model.regularization,
        calibration=settings.policy.calibration,
        target=settings.policy.target_precision,
        level=settings.policy.confidence_level,
        embedder=embeddings.model,
        version=data_version(ids, labels, embeddings.model),
    )
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{LABELER}-{model.data_version}.joblib"
    tmp = path.with_suffix(".tmp")
    joblib.dump(model, tmp)
    os.replace(tmp, path)
    report.path = str(path)
    store.save_model(LABELER, str(path), model.data_version, embeddings.model, len(ids), report.to_dict())
    return report


def load(store: Store) -> SmallModel:
    """The latest trained small model of the project."""
    row = store.latest_model(LABELER)
    if row is None:
        raise ProjectError("no small model yet: run 'labelloop train' first")
    try:
        return joblib.load(row["path"])
    except FileNotFoundError:
        raise ProjectError(f"{row['path']}: the model file is gone; run 'labelloop train' again") from None


def predict(store: Store, spec: TaskSpec, model: SmallModel, embeddings: Embeddings) -> dict[str, int]:
    """Label every embedded item with the small model (labeler ``small``); counts by route."""
    if not embeddings.ids:
        return {}
    labels, raw, calibrated = model.predict(embeddings.matrix)
    threshold = model.threshold.threshold
    version = f"{LABELER}-{model.data_version}"
    store.save_prompt(
        version, [{"role": "system", "content": f"logistic regression on {model.embedder}"}], "", spec.output_schema()
    )
    hashes = store.content_hashes(embeddings.ids)
    records = []
    routes: dict[str, int] = {}  # counts by route
    for item_id, label, conf_raw, conf in zip(embeddings.ids, labels, raw, calibrated):
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
