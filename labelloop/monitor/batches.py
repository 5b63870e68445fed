"""The drift alarm over a project: its items cut into batches (by ingested file, or by ingest-time window with
``monitor.window``), the first ``monitor.reference_batches`` taken together as the reference (or the file
``monitor.reference``), and each later batch tested against it (:mod:`.drift`): the predicted labels, the
confidence, the review rate, the model's disagreement with people's decided answers, and the texts themselves
(length, unknown characters, and the embedding centroid where the flywheel stored embeddings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import labelers
from ..answers import canonical
from ..errors import InputError
from ..learn.embed import embedder_name, load_embeddings
from ..readers import read_records
from ..route import NEEDS_REVIEW
from ..spec import TaskSpec
from ..store import Store
from .drift import Statistic, Thresholds, centroid_shift, distribution_shift, input_shift, label_shift, rate_shift

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
    ids: list[str] = field(default_factory=list)  # the items (none for a reference read from a file)
    vectors: np.ndarray | None = None  # their embeddings, where stored

    def add(self, other: Batch) -> None:
        for name in ("labels", "confidence", "texts", "ids"):
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


def drift_report(store: Store, spec: TaskSpec, labeler: str = labelers.LLM, root: Path | None = None) -> DriftReport:
    """Every batch of the project, the reference batches marked, the others tested against them; ``root`` (the
    project's directory) is where a relative ``monitor.reference`` is found."""
    settings = spec.monitor
    t = Thresholds(settings.p_value, settings.psi, settings.ks_distance, settings.rate_change,
                   settings.unknown_change, settings.min_items, settings.centroid_distance)  # fmt: skip
    if settings.reference is None:
        batches = _batches(store, spec, labeler, settings.window)
        reference_count = settings.reference_batches
    else:
        path = Path(settings.reference)
        path = path if path.is_absolute() or root is None else root / path
        batches = _batches(store, spec, labeler, settings.window, (str(path), _same_file(path, root)))
        if not batches or batches[0].name != str(path):  # never ingested: the file's texts as they are
            batches.insert(0, _read_reference(spec, path))
        reference_count = 1
    embedded = _attach_vectors(store, spec, batches)
    reference = Batch("reference")
    for batch in batches[:reference_count]:
        reference.add(batch)
    reference.vectors = _stacked([b.vectors for b in batches[:reference_count]])
    report = []
    for number, batch in enumerate(batches):
        is_reference = number < reference_count
        stats = [] if is_reference else _statistics(reference, batch, t, embedded)
        report.append(BatchDrift(batch.name, len(batch.texts), is_reference, stats))
    return DriftReport(report)


def _statistics(reference: Batch, batch: Batch, t: Thresholds, embedded: bool) -> list[Statistic]:
    found = [
        label_shift(reference.labels, batch.labels, t),
        distribution_shift("confidence", reference.confidence, batch.confidence, t),
        rate_shift("review rate", (reference.to_review, reference.predicted), (batch.to_review, batch.predicted),
                   t.rate_change, t),
        rate_shift("disagreement with people", (reference.disagreed, reference.checked),
                   (batch.disagreed, batch.checked), t.rate_change, t),
        *input_shift(reference.texts, batch.texts, t),
    ]  # fmt: skip
    if embedded:
        empty = np.zeros((0, 1))
        found.append(centroid_shift(_or(reference.vectors, empty), _or(batch.vectors, empty), t))
    return found


def _batches(
    store: Store,
    spec: TaskSpec,
    labeler: str,
    window: str | None,
    reference: tuple[str, Callable[[str], bool]] | None = None,
) -> list[Batch]:
    """The project's items in batches, in ingest order; with ``reference`` (a name, and which source files are
    the reference file), the reference file's items form the first batch whatever their time."""
    seconds = _SECONDS[window[-1]] * int(window[:-1]) if window else None
    label_field = _label_field(spec)
    batches: dict[str, Batch] = {}
    if reference is not None:
        batches[reference[0]] = Batch(reference[0])
    for row in store.monitored_items(labeler):
        if reference is not None and row["source_file"] and reference[1](row["source_file"]):
            name = reference[0]
        elif seconds is None:
            name = row["source_file"] or "(no file)"
        else:
            start = int(datetime.fromisoformat(row["ingested_at"]).timestamp()) // seconds * seconds
            name = datetime.fromtimestamp(start).astimezone().isoformat(timespec="minutes")
        batch = batches.setdefault(name, Batch(name))
        batch.texts.append(row["text"])
        batch.ids.append(row["id"])
        if row["route"] is None:
            continue
        batch.predicted += 1
        batch.to_review += row["route"] == NEEDS_REVIEW
        if row["confidence"] is not None:
            batch.confidence.append(row["confidence"])
        output = json.loads(row["output"]) if row["output"] else None
        if output is not None and label_field is not None:
            batch.labels.extend(_values(output.get(label_field)))
        if output is not None and row["people"] is not None:
            batch.checked += 1
            batch.disagreed += canonical(output) != canonical(json.loads(row["people"]))
    return [b for b in batches.values() if b.texts]


def _same_file(path: Path, root: Path | None) -> Callable[[str], bool]:
    """Whether an item's recorded source file is ``path`` (recorded as given: absolute, or relative to where
    ``ingest`` ran, which may have been the project's directory)."""
    wanted = path.resolve()
    known: dict[str, bool] = {}

    def accepts(source: str) -> bool:
        if source not in known:  # each file's items share its name: resolve it once
            found = Path(source)
            known[source] = found.resolve() == wanted or (root is not None and (root / found).resolve() == wanted)
        return known[source]

    return accepts


def _read_reference(spec: TaskSpec, path: Path) -> Batch:
    """A reference file never ingested: its texts and, where its rows carry the task's label field, its labels."""
    if not path.is_file():
        raise InputError(str(path), None, "file not found", field="monitor.reference")
    batch = Batch(str(path))
    label_field = _label_field(spec)
    for record in read_records(path):
        if record.error is not None:
            raise record.error
        data = record.data or {}
        text = data.get(spec.input.text_field)
        if not isinstance(text, str):
            raise InputError(str(path), record.line, "missing or not text", field=spec.input.text_field)
        batch.texts.append(text)
        if label_field is not None and data.get(label_field) is not None:
            batch.labels.extend(_values(data[label_field]))
    return batch


def _attach_vectors(store: Store, spec: TaskSpec, batches: list[Batch]) -> bool:
    """Each batch's stored embeddings (of ``learn.embeddings``' model); whether the project has any."""
    stored = load_embeddings(store, embedder_name(spec.learn.embeddings))
    if not stored.ids:
        return False
    index = {item_id: row for row, item_id in enumerate(stored.ids)}
    for batch in batches:
        rows = [index[i] for i in batch.ids if i in index]
        batch.vectors = stored.matrix[rows] if rows else None
    return True


def _stacked(parts: list[np.ndarray | None]) -> np.ndarray | None:
    found = [p for p in parts if p is not None]
    return np.vstack(found) if found else None


def _or(vectors: np.ndarray | None, empty: np.ndarray) -> np.ndarray:
    return empty if vectors is None else vectors


def _values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _label_field(spec: TaskSpec) -> str | None:
    """The output field whose values are categories (a label, labels, an intent, a rating), if any."""
    for name, prop in spec.output_schema()["properties"].items():
        if "enum" in prop or "enum" in (prop.get("items") or {}):
            return str(name)
    return None
