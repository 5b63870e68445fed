"""The flywheel inside a project: embed, train the small model, calibrate each labeler, cross-check them.

``train`` embeds what is missing, trains on people's labels, labels every item with the small model,
applies the policy (a disagreement between the small model and the LLM sends the LLM's answer to review)
and reports the crossover: at the current gold size, each labeler's accuracy, the share it may accept
with the precision guarantee, and what it costs per item.
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
from ..store import Store
from . import small
from .calibrate import expected_calibration_error, fit_calibrator, guaranteed_threshold, write_reliability_plot
from .embed import Embeddings, create_embedder, ensure_embeddings, load_embeddings


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
class TrainResult:
    report: small.TrainReport
    routes: dict[str, int]
    disagreements: int
    crossover: Crossover
    plot: str | None = None  # the small model's reliability diagram, when asked for

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "routes": self.routes,
            "disagreements": self.disagreements,
            "crossover": asdict(self.crossover),
            "plot": self.plot,
        }


def embed_items(store: Store, spec: TaskSpec, progress: Callable[[int, int], None] | None = None) -> tuple[str, int]:
    """Embed every item that has no vector yet; (embedder name, items embedded now)."""
    embedder = create_embedder(spec.learn.embeddings)
    return embedder.name, ensure_embeddings(store, embedder, progress=progress)


def current_embeddings(store: Store, spec: TaskSpec) -> Embeddings:
    """Every item's vector, embedding first what is missing."""
    name, _ = embed_items(store, spec)
    return load_embeddings(store, name)


def train(
    store: Store, spec: TaskSpec, models_dir: Path, labeler: str = labelers.LLM, *, plot: str | Path | None = None
) -> TrainResult:
    """Train the small model, label every item with it, cross-check it against ``labeler``; ``plot``
    writes the small model's reliability diagram (before and after calibration) as a PNG."""
    embeddings = current_embeddings(store, spec)
    report = small.train(store, spec, embeddings, models_dir)
    routes = small.predict(store, spec, small.load(store), embeddings)
    disagreements = cross_check(store, labeler) if spec.learn.policy.cross_check else 0
    result = TrainResult(report, routes, disagreements, crossover(store, spec, report, labeler))
    if plot:
        result.plot = calibrate(store, spec, labelers.SMALL, plot).plot
    return result


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
