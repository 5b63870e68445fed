"""The flywheel inside a project: embed, train the small model, calibrate each labeler, cross-check them.

``train`` embeds what is missing, trains on people's labels, labels every item with the small model,
applies the policy (a disagreement between the small model and the LLM sends the LLM's answer to review),
combines the two into one labeler with its own guaranteed threshold (:func:`combine_labelers`; when it may
accept more than each alone, it decides which LLM answers are accepted) and reports the crossover: at the
current gold size, each labeler's accuracy, the share it may accept with the precision guarantee, and what it
costs per item.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import labelers
from ..errors import ProjectError
from ..spec import TaskSpec
from ..store import PredictionRecord, Store
from . import small
from .calibrate import expected_calibration_error, fit_calibrator, guaranteed_threshold, write_reliability_plot
from .candidates import features, out_of_fold
from .combine import combine
from .embed import Embeddings, create_embedder, embedder_settings, ensure_embeddings, load_embeddings


@dataclass
class Calibration:
    """One labeler's calibration on the gold items."""

    labeler: str
    items: int
    accuracy: float
    ece_before: float
    ece_after: float
    threshold: dict[str, Any]
    auto_accept_share: float  # share of all its predictions at or above the guaranteed threshold
    calibrator: dict[str, Any]
    plot: str | None = None


@dataclass
class Crossover:
    """Each labeler at the current gold size: accuracy, guaranteed auto-accept share, cost per item."""

    gold_items: int
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Combination:
    """The LLM and the small model as one labeler: its out-of-fold accuracy on people's labels, its guaranteed
    threshold and auto-accept share, and whether it beat each alone (then it routed the LLM's answers)."""

    gold_items: int
    accuracy: float
    threshold: dict[str, Any]
    auto_accept_share: float
    used: bool
    accepted: int = 0  # LLM answers it accepted
    sent_to_review: int = 0  # accepted LLM answers it sent to people


@dataclass
class TrainResult:
    report: small.TrainReport
    routes: dict[str, int]
    disagreements: int
    crossover: Crossover
    plot: str | None = None  # the small model's reliability diagram, when asked for
    combination: Combination | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "routes": self.routes,
            "disagreements": self.disagreements,
            "crossover": asdict(self.crossover),
            "plot": self.plot,
            "combination": asdict(self.combination) if self.combination else None,
        }


def embed_items(store: Store, spec: TaskSpec, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Embed, with every embedder of the project, the items that have no vector from it yet; items embedded
    now by embedder name (``learn.embeddings``'s first)."""
    done = {}
    for settings in embedder_settings(spec):
        embedder = create_embedder(settings)
        done[embedder.name] = ensure_embeddings(store, embedder, progress=progress)
    return done


def current_embeddings(store: Store, spec: TaskSpec) -> dict[str, Embeddings]:
    """Every item's vectors by embedder, embedding first what is missing."""
    return {name: load_embeddings(store, name) for name in embed_items(store, spec)}


def train(
    store: Store, spec: TaskSpec, models_dir: Path, labeler: str = labelers.LLM, *, plot: str | Path | None = None
) -> TrainResult:
    """Train the small model, label every item with it, cross-check it against ``labeler``; ``plot``
    writes the small model's reliability diagram (before and after calibration) as a PNG."""
    embeddings = current_embeddings(store, spec)
    report = small.train(store, spec, embeddings, models_dir)
    model = small.load(store)
    routes = small.predict(store, spec, model, embeddings)
    disagreements = cross_check(store, labeler) if spec.learn.policy.cross_check else 0
    combination = combine_labelers(store, spec, model, embeddings, labeler) if spec.learn.policy.combine else None
    result = TrainResult(report, routes, disagreements, crossover(store, spec, report, labeler), None, combination)
    if combination is not None:
        result.crossover.rows.append(
            {
                "labeler": labelers.COMBINED,
                "accuracy": combination.accuracy,
                "auto_accept_share": combination.auto_accept_share,
                **store.cost_per_item(labeler),
                "measured_on": f"{combination.gold_items} gold items, out of fold"
                + (", used" if combination.used else ""),
            }
        )
    if plot:
        result.plot = calibrate(store, spec, labelers.SMALL, plot).plot
    return result


def combine_labelers(
    store: Store, spec: TaskSpec, model: small.SmallModel, embeddings: dict[str, Embeddings], labeler: str
) -> Combination | None:
    """The LLM (``labeler``) and the small model as one labeler (:func:`.combine.combine`), stored as the labeler
    ``combined``: a stacker fitted on people-labeled items, where the small model's probabilities are out of
    fold; its threshold is guaranteed like every labeler's (Clopper-Pearson on its out-of-fold confidence).
    When it may accept a larger share than the LLM and the small model alone, it routes the LLM's answers:
    those it accepts with the LLM's label are accepted, the others go to review. None without enough LLM
    answers with a confidence on people-labeled items."""
    gold = small.gold_labels(store, spec)
    answers = {
        r["item_id"]: r for r in store.current_predictions(labeler) if r["output"] and r["confidence"] is not None
    }
    ids = [i for i in small.common_ids({n: embeddings[n] for n in model.embedders}) if i in answers]
    rows = np.array([i in gold for i in ids])
    if rows.sum() < spec.learn.small_model.min_examples:
        return None
    x = features({n: embeddings[n].rows(ids) for n in model.embedders}, model.embedders)
    classes = model.classifier.classes_
    probabilities = model.classifier.predict_proba(x)
    y = np.array([gold.get(i, "") for i in ids])
    oof = out_of_fold(x[rows], y[rows], float(model.classifier.C), spec.learn.small_model.folds)
    columns = {label: c for c, label in enumerate(np.unique(y[rows]))}
    probabilities[rows] = 0.0  # on people's items: the out-of-fold probabilities, not the fitted model's
    for label, c in columns.items():
        probabilities[rows, int(np.flatnonzero(classes == label)[0])] = oof[:, c]
    llm_labels = np.array([str(json.loads(answers[i]["output"]).get("label")) for i in ids])
    llm_conf = np.array([float(answers[i]["confidence"]) for i in ids])
    both = combine(classes, probabilities, llm_labels, llm_conf, np.flatnonzero(rows), y)
    right = both.audit_labels == y[rows]
    policy = spec.learn.policy
    calibrator = fit_calibrator(both.audit_confidence, right, method=policy.calibration)
    threshold = guaranteed_threshold(
        calibrator(both.audit_confidence), right, policy.target_precision, policy.confidence_level
    )
    confidence = calibrator(both.confidence)
    accepted = confidence >= threshold.threshold if threshold.threshold is not None else np.zeros(len(ids), bool)
    _store_combined(store, spec, model.data_version, ids, both.labels, confidence, accepted)
    share = float(accepted.mean())
    alone = max(
        store.count_settled(small.LABELER) / max(1, store.count_items()), _guaranteed_share(store, spec, labeler)
    )
    result = Combination(int(rows.sum()), float(right.mean()), asdict(threshold), share, share > alone)
    if result.used:
        agree = accepted & (both.labels == llm_labels)
        result.accepted = sum(answers[i]["route"] != "accepted" for i in np.array(ids)[agree])
        store.accept_predictions([answers[i]["id"] for i in np.array(ids)[agree]], "combined_accepts")
        unsure = [answers[i]["id"] for i in np.array(ids)[~agree] if answers[i]["route"] == "accepted"]
        result.sent_to_review = len(unsure)
        store.send_to_review(unsure, "combined_unsure")
    return result


def _guaranteed_share(store: Store, spec: TaskSpec, labeler: str) -> float:
    try:
        return calibrate(store, spec, labeler).auto_accept_share
    except ProjectError:
        return 0.0


def _store_combined(
    store: Store,
    spec: TaskSpec,
    data_version: str,
    ids: list[str],
    labels: np.ndarray,
    confidence: np.ndarray,
    accepted: np.ndarray,
) -> None:
    version = f"{labelers.COMBINED}-{data_version}"
    store.save_prompt(
        version, [{"role": "system", "content": "stacker on the LLM and the small model"}], "", spec.output_schema()
    )
    hashes = store.content_hashes(ids)
    store.record_run(
        [
            PredictionRecord(
                item_id,
                labelers.COMBINED,
                version,
                hashes[item_id],
                version,
                version,
                "ok",
                output={"label": str(label)},
                confidence=float(conf),
                confidence_method="stacker",
                field_confidence={"label": float(conf)},
                route="accepted" if ok else "needs_review",
                reasons=[] if ok else ["combined_unsure"],
            )
            for item_id, label, conf, ok in zip(ids, labels, confidence, accepted)
        ],
        backend="combined",
    )


def cross_check(store: Store, labeler: str = labelers.LLM) -> int:
    """Send ``labeler``'s accepted answers that the small model contradicts to review; how many."""
    theirs = {row["item_id"]: json.loads(row["output"] or "null") for row in store.current_predictions(small.LABELER)}
    flagged = []
    for row in store.current_predictions(labeler):
        other = theirs.get(row["item_id"])
        output = json.loads(row["output"]) if row["output"] else None
        if row["route"] == "accepted" and other and output and other.get("label") != output.get("label"):
            flagged.append(row["id"])
    store.send_to_review(flagged, "labelers_disagree")
    return len(flagged)


def calibrate(store: Store, spec: TaskSpec, labeler: str = labelers.LLM, plot: str | Path | None = None) -> Calibration:
    """Fit ``labeler``'s calibration on the gold items (was its label right?) and choose its threshold."""
    gold = small.gold_labels(store, spec)
    rows = [r for r in store.current_predictions(labeler) if r["confidence"] is not None]
    judged = [r for r in rows if r["item_id"] in gold and r["output"]]
    if len(judged) < 2:
        raise ProjectError(
            f"calibrating {labeler} needs its answers, with confidence, on people-labeled items;"
            f" {len(judged)} found (review some items first)"
        )
    raw = np.array([r["confidence"] for r in judged])
    correct = np.array([json.loads(r["output"]).get("label") == gold[r["item_id"]] for r in judged])
    settings = spec.learn.policy
    calibrator = fit_calibrator(raw, correct, method=settings.calibration)
    calibrated = calibrator(raw)
    threshold = guaranteed_threshold(calibrated, correct, settings.target_precision, settings.confidence_level)
    everyone = calibrator(np.array([r["confidence"] for r in rows]))
    share = float(np.mean(everyone >= threshold.threshold)) if threshold.threshold is not None and rows else 0.0
    result = Calibration(
        labeler,
        len(judged),
        float(correct.mean()),
        expected_calibration_error(raw, correct),
        expected_calibration_error(calibrated, correct),
        asdict(threshold),
        share,
        calibrator.to_dict(),
    )
    if plot:
        result.plot = write_reliability_plot(plot, {"before": (raw, correct), "after": (calibrated, correct)})
    return result


def crossover(store: Store, spec: TaskSpec, report: small.TrainReport, labeler: str) -> Crossover:
    """Accuracy, guaranteed auto-accept share and cost per item of the small model and ``labeler``."""
    result = Crossover(report.examples)
    small_share = store.count_settled(small.LABELER) / max(1, store.count_items())
    result.rows.append(
        {
            "labeler": small.LABELER,
            "accuracy": report.accuracy,
            "auto_accept_share": small_share,
            "tokens_per_item": 0.0,
            "calls_per_item": 0.0,
            "measured_on": "cross-validation",
        }
    )
    gold = small.gold_labels(store, spec)
    answers = [r for r in store.current_predictions(labeler) if r["item_id"] in gold and r["output"]]
    if not answers:
        result.rows.append({"labeler": labeler, "note": "no answers on people-labeled items yet"})
        return result
    accuracy = float(np.mean([json.loads(r["output"]).get("label") == gold[r["item_id"]] for r in answers]))
    try:
        share = calibrate(store, spec, labeler).auto_accept_share
        measured = f"{len(answers)} gold items, calibrated"
    except ProjectError:  # no confidences: its own quality gate decides
        share = store.count_settled(labeler) / max(1, len(store.current_predictions(labeler)))
        measured = f"{len(answers)} gold items, no confidence: its gate"
    result.rows.append(
        {
            "labeler": labeler,
            "accuracy": accuracy,
            "auto_accept_share": share,
            **store.cost_per_item(labeler),
            "measured_on": measured,
        }
    )
    return result
