"""The records the store reads and writes as Python objects: an ingested :class:`Item`, one model call
(:class:`CallRecord`), a labeler's answer (:class:`PredictionRecord`) and a run's running totals
(:class:`RunCounts`). Plain dataclasses; no SQL here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    fields: dict[str, Any]
    content_hash: str
    source_file: str | None = None
    source_line: int | None = None
    prepared: Any = None  # ingest's cleaning and PII record (labelloop.prepare.Prepared), stored with the item


@dataclass
class CallRecord:
    """One model call, successful or not: the audit trail and the cache."""

    item_id: str
    cache_key: str
    backend: str
    model: str
    prompt_version: str
    request: dict[str, Any]
    attempt: int
    latency_ms: float
    response: str | None = None
    output_text: str | None = None
    status_code: int | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    endpoint: str | None = None  # the server that answered or failed (None: an embedded model)


@dataclass
class PredictionRecord:
    """A labeler's answer for one item; the newest per (item, labeler) is the current one."""

    item_id: str
    labeler: str
    job_key: str
    item_hash: str
    prompt_version: str
    model: str
    status: str
    output: Any = None
    raw_text: str | None = None
    error: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    repaired: bool = False
    confidence: float | None = None
    confidence_method: str | None = None
    field_confidence: dict[str, float] = field(default_factory=dict)
    route: str | None = None
    reasons: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    cached_call_id: int | None = None
    duplicate_of: str | None = None  # inherited from this item, its duplicate group's representative
    context: dict[str, Any] | None = None  # what the model saw beside the item: qa's retrieved passages


@dataclass
class RunCounts:
    items_done: int = 0
    items_failed: int = 0
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
