"""Everything the report shows, read from the project once: progress, states, cost, the model's confidence
against people's decisions, each labeler's quality, people, prompt versions and comparisons, the flywheel's
simulated effort, and drift. Plots and the page (:mod:`.plots`, :mod:`.page`) only draw what is here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import labelers
from ..answers import comparable
from ..compare.quality import Quality, score
from ..learn.calibrate import expected_calibration_error, reliability_table
from ..monitor.batches import DriftReport, drift_report
from ..spec import TaskSpec
from ..status import StatusSummary, status_summary
from ..store import Store
from .people import People, people
from .timeline import Timeline, bucket


@dataclass
class Cost:
    calls: Timeline  # "calls", "errors", "prompt", "completion" per bucket
    latencies_ms: list[float]
    totals: dict[str, Any]

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None


@dataclass
class Confidence:
    values: list[float]  # the labeler's confidence on every current prediction
    threshold: float  # review.threshold: auto-accepted at or above
    checked: int = 0  # predictions with a confidence on items people decided
    reliability: list[dict[str, float]] = field(default_factory=list)
    ece: float | None = None


@dataclass
class LabelerQuality:
    """One labeler's answers against people's decisions."""

    name: str
    checked: int  # people-decided items it answered
    missing: int  # people-decided items it gave no valid answer for
    quality: Quality | None
    parts: dict[str, float] = field(default_factory=dict)  # per label (or field): accuracy, F1 or exact match
    parts_metric: str = ""


@dataclass
class ProjectReport:
    name: str
    kind: str
    generated_at: str
    labeler: str  # the labeler whose confidence, states and drift are shown
    status: StatusSummary
    progress: Timeline
    cost: Cost
    confidence: Confidence
    labelers: list[LabelerQuality]
    people: People
    prompts: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    simulation: dict[str, Any] | None
    drift: DriftReport | None


def gather(store: Store, spec: TaskSpec, labeler: str = labelers.LLM, root: Path | None = None) -> ProjectReport:
    """Read the project's report from its store (see the module docstring); ``root``, the project's directory,
    is where a relative ``monitor.reference`` is found."""
    activity = store.activity()
    calls = store.call_activity()
    cost = Cost(
        bucket({name: [(r["s"], r[name]) for r in calls] for name in ("calls", "errors", "prompt", "completion")}),
        store.call_latencies(),
        store.call_totals(),
    )
    confidence = _confidence(store, spec, labeler)
    return ProjectReport(
        name=spec.name,
        kind=spec.kind,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        labeler=labeler,
        status=status_summary(store),
        progress=bucket(activity),
        cost=cost,
        confidence=confidence,
        labelers=[_quality(store, spec, name) for name in store.labelers()],
        people=people(store, spec),
        prompts=[dict(row) for row in store.prompt_history()],
        comparisons=_logged(store, "compare"),
        simulation=next(iter(_logged(store, "simulate", limit=1)), None),
        drift=drift_report(store, spec, labeler, root) if store.count_items() else None,
    )


def _confidence(store: Store, spec: TaskSpec, labeler: str) -> Confidence:
    out = Confidence(store.confidences(labeler), spec.review.threshold)
    pairs = [(row["confidence"], _same(row["output"], row["people"]))
             for row in store.checked_predictions(labeler) if row["confidence"] is not None]  # fmt: skip
    if pairs:
        conf, right = zip(*pairs)
        out.checked = len(pairs)
        out.reliability = reliability_table(conf, right)
        out.ece = expected_calibration_error(conf, right)
    return out


def _same(output: str | None, people: str) -> bool:
    return output is not None and comparable(json.loads(output)) == comparable(json.loads(people))


def _quality(store: Store, spec: TaskSpec, name: str) -> LabelerQuality:
    gold, predicted, missing = [], [], 0
    for row in store.checked_predictions(name):
        if row["output"] is None:
            missing += 1
            continue
        gold.append(json.loads(row["people"]))
        predicted.append(json.loads(row["output"]))
    result = LabelerQuality(name, len(gold), missing, None)
    if not gold:
        return result
    try:
        result.quality = score(spec, gold, predicted)
    except ValueError:  # a kind with no answer to check (generate)
        return result
    details = result.quality.details
    if spec.kind == "classify":
        result.parts_metric = "accuracy on the items people gave this label"
        result.parts = {label: s["recall"] for label, s in details["per_label"].items() if s["support"]}
    elif "per_label" in details:
        result.parts_metric = "F1"
        result.parts = {label: s["f1"] for label, s in details["per_label"].items() if s["support"]}
    elif "per_field_exact_match" in details:
        result.parts_metric = "exact match"
        result.parts = dict(details["per_field_exact_match"])
    return result


def _logged(store: Store, action: str, limit: int = 50) -> list[dict[str, Any]]:
    """The audit log's ``action`` rows, oldest first, each its recorded detail with ``at`` and ``actor``."""
    rows = []
    for row in reversed(store.audit_rows(action=action, limit=limit)):
        try:
            detail = json.loads(row["detail"] or "{}")
        except json.JSONDecodeError:
            continue
        rows.append({**detail, "at": row["at"], "actor": row["actor"]})
    return rows
