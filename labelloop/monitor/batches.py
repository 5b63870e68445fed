"""The drift alarm over a project: its items cut into batches (by ingested file, or by ingest-time window with
``monitor.window``), the first ``monitor.reference_batches`` taken together as the reference, and each later
batch tested against it (:mod:`.drift`): the predicted labels, the confidence, the review rate, the model's
disagreement with people's decided answers, and the texts themselves (length, unknown characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import labelers
from ..answers import canonical
from ..route import NEEDS_REVIEW
from ..spec import TaskSpec
from ..store import Store
from .drift import Statistic, Thresholds, distribution_shift, input_shift, label_shift, rate_shift

_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Batch:
    """What the alarm reads of one batch."""

    name: str
    labels: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    predicted: int = 0
    to_review: int = 0
    checked: int = 0  # items with a prediction and people's decided answer
    disagreed: int = 0
    texts: list[str] = field(default_factory=list)

    def add(self, other: Batch) -> None:
        for name in ("labels", "confidence", "texts"):
            getattr(self, name).extend(getattr(other, name))
        for name in ("predicted", "to_review", "checked", "disagreed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class BatchDrift:
    name: str
    items: int
    reference: bool
    statistics: list[Statistic]

    @property
    def alarms(self) -> list[Statistic]:
        return [s for s in self.statistics if s.alarm]


@dataclass
class DriftReport:
    batches: list[BatchDrift]

    @property
    def latest_alarms(self) -> list[str]:
        """The latest batch's alarms, one line each (what ``status`` shows and ``--fail-on-drift`` acts on)."""
        if not self.batches or self.batches[-1].reference:
            return []
        latest = self.batches[-1]
        return [f"{latest.name}: {describe(s)}" for s in latest.alarms]

    def to_dict(self) -> dict[str, Any]:
        return {"batches": [{"name": b.name, "items": b.items, "reference": b.reference,
                             "statistics": [s.__dict__ for s in b.statistics]} for b in self.batches]}  # fmt: skip


def describe(s: Statistic) -> str:
    value = "–" if s.value is None else f"{s.value:+.3f}"
    p = "" if s.p_value is None else f", p = {s.p_value:.2g}"
    return f"{s.name} {value} (alarm beyond {s.threshold:g}{p})"


def drift_report(store: Store, spec: TaskSpec, labeler: str = labelers.LLM) -> DriftReport:
    """Every batch of the project, the reference batches marked, the others tested against them."""
    settings = spec.monitor
    t = Thresholds(settings.p_value, settings.psi, settings.ks_distance, settings.rate_change,
                   settings.unknown_change, settings.min_items)  # fmt: skip
    batches = _batches(store, spec, labeler, settings.window)
    reference = Batch("reference")
    for batch in batches[: settings.reference_batches]:
        reference.add(batch)
    report = []
    for number, batch in enumerate(batches):
        is_reference = number < settings.reference_batches
        stats = [] if is_reference else _statistics(reference, batch, t)
        report.append(BatchDrift(batch.name, len(batch.texts), is_reference, stats))
    return DriftReport(report)


def _statistics(reference: Batch, batch: Batch, t: Thresholds) -> list[Statistic]:
    return [
        label_shift(reference.labels, batch.labels, t),
        distribution_shift("confidence", reference.confidence, batch.confidence, t),
        rate_shift("review rate", (reference.to_review, reference.predicted), (batch.to_review, batch.predicted),
                   t.rate_change, t),
        rate_shift("disagreement with people", (reference.disagreed, reference.checked),
                   (batch.disagreed, batch.checked), t.rate_change, t),
        *input_shift(reference.texts, batch.texts, t),
    ]  # fmt: skip


def _batches(store: Store, spec: TaskSpec, labeler: str, window: str | None) -> list[Batch]:
    seconds = _SECONDS[window[-1]] * int(window[:-1]) if window else None
    label_field = _label_field(spec)
    batches: dict[str, Batch] = {}
    for row in store.monitored_items(labeler):
        if seconds is None:
            name = row["source_file"] or "(no file)"
        else:
            start = int(datetime.fromisoformat(row["ingested_at"]).timestamp()) // seconds * seconds
            name = datetime.fromtimestamp(start).astimezone().isoformat(timespec="minutes")
        batch = batches.setdefault(name, Batch(name))
        batch.texts.append(row["text"])
        if row["route"] is None:
            continue
        batch.predicted += 1
        batch.to_review += row["route"] == NEEDS_REVIEW
        if row["confidence"] is not None:
            batch.confidence.append(row["confidence"])
        output = json.loads(row["output"]) if row["output"] else None
        if output is not None and label_field is not None:
            value = output.get(label_field)
            batch.labels.extend(map(str, value) if isinstance(value, list) else [str(value)])
        if output is not None and row["people"] is not None:
            batch.checked += 1
            batch.disagreed += canonical(output) != canonical(json.loads(row["people"]))
    return list(batches.values())


def _label_field(spec: TaskSpec) -> str | None:
    """The output field whose values are categories (a label, labels, an intent, a rating), if any."""
    for name, prop in spec.output_schema()["properties"].items():
        if "enum" in prop or "enum" in (prop.get("items") or {}):
            return str(name)
    return None
