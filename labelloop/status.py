"""Where a project stands: items, predictions by status and route, reasons, confidences, calls and runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .store import Store


@dataclass
class StatusSummary:
    """Where a project stands."""

    items: int
    predictions: dict[str, int]
    routes: dict[str, int]
    reasons: dict[str, int]
    confidence_histogram: list[int]
    top_errors: list[tuple[str, int]]
    calls: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)  # labeling processes alive now, with their leases
    database: str = ""  # where the store lives (a SQLite file, or a PostgreSQL URL without its password)
    drift: list[str] = field(default_factory=list)  # the latest batch's drift alarms (labelloop.monitor)


def status_summary(store: Store, runs: int = 5) -> StatusSummary:
    """Counts of current predictions by status, frequent errors, call totals and recent runs."""
    recent = []
    for row in store.runs(runs):
        run = dict(row)
        run["items_per_s"] = _throughput(run)
        recent.append(run)
    routes, reasons = store.route_counts()
    return StatusSummary(
        items=store.count_items(),
        predictions=store.prediction_counts(),
        routes=routes,
        reasons=reasons,
        confidence_histogram=histogram(store.confidences()),
        top_errors=store.top_errors(),
        calls=store.call_totals(),
        runs=recent,
        workers=[{**worker, "items_per_s": _live_rate(worker)} for worker in store.workers()],
        database=str(store.path),
    )


def histogram(values: list[float], bins: int = 10) -> list[int]:
    """Counts of values in ``bins`` equal slices of [0, 1] (1.0 falls in the last)."""
    counts = [0] * bins
    for value in values:
        counts[min(int(value * bins), bins - 1)] += 1
    return counts


def _live_rate(worker: dict[str, Any]) -> float | None:
    started = datetime.fromisoformat(worker["started_at"]).timestamp()
    seconds = (worker["heartbeat_at"] or started) - started
    handled = worker["items_done"] + worker["items_failed"]
    return handled / seconds if seconds > 0 else None


def _throughput(run: dict[str, Any]) -> float | None:
    if not run.get("finished_at"):
        return None
    seconds = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    handled = run["items_done"] + run["items_failed"]
    return handled / seconds if seconds > 0 else None
