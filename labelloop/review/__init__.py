"""Human review: the queue of doubtful predictions and the decisions people make on them.

The terminal UI (``terminal.py``) and, later, the web app are views over these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from ..errors import InputError
from ..spec import ClassifySpec, TaskSpec
from ..store import Store

__all__ = ["QueueItem", "ReviewError", "field_choices", "parse_field_value", "review_queue", "submit", "skip"]


class ReviewError(InputError):
    """A reviewer's answer that does not fit the task (the UI asks again)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__("review", None, message, field=field)


@dataclass(frozen=True)
class QueueItem:
    """One item waiting for a person: the text, the model's answer and why it was routed here."""

    item_id: str
    text: str
    prediction_id: int
    output: dict[str, Any] | None
    confidence: float | None
    field_confidence: dict[str, float]
    reasons: list[str]
    route: str


def review_queue(store: Store, reviewer: str, labeler: str = "llm", limit: int = 50) -> list[QueueItem]:
    """Items routed to review (or failed) that ``reviewer`` has not answered, lowest confidence first."""
    return [QueueItem(item_id=row["item_id"], text=row["text"], prediction_id=row["id"],
                      output=json.loads(row["output"]) if row["output"] else None,
                      confidence=row["confidence"], field_confidence=json.loads(row["field_confidence"] or "{}"),
                      reasons=json.loads(row["reasons"] or "[]"), route=row["route"])
            for row in store.review_queue(labeler, reviewer, limit)]


def submit(store: Store, spec: TaskSpec, item: QueueItem, reviewer: str, output: dict[str, Any],
           action: str) -> int:
    """Store a reviewer's answer (it must satisfy the task schema) with an audit-log row."""
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(spec.output_schema()).iter_errors(output))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or None
        raise ReviewError(error.message, field)
    return store.add_annotation(item.item_id, reviewer, output, action, item.prediction_id, before=item.output)


def skip(store: Store, item: QueueItem, reviewer: str) -> None:
    """Record that a reviewer passed over an item (it stays in the queue)."""
    store.audit(reviewer, "skip", item.item_id, before=item.output)


def field_choices(spec: TaskSpec, field: str) -> list[Any] | None:
    """The allowed values of a field, when the schema lists them (classify: the labels)."""
    if isinstance(spec, ClassifySpec) and field == "label":
        return spec.label_names
    return spec.output_schema()["properties"][field].get("enum")


def parse_field_value(spec: TaskSpec, field: str, raw: str) -> Any:
    """Turn what a reviewer typed into a value of the field's JSON type (empty = null where allowed)."""
    prop = spec.output_schema()["properties"][field]
    types = prop.get("type", "string")
    types = types if isinstance(types, list) else [types]
    raw = raw.strip()
    choices = field_choices(spec, field)
    if choices is not None and raw.isdigit() and 1 <= int(raw) <= len(choices):
        return choices[int(raw) - 1]
    if raw == "" or raw.lower() == "null":
        if "null" in types:
            return None
        raise ReviewError("a value is required", field)
    for kind in types:
        value = _convert(kind, raw)
        if value is not _NO_VALUE:
            return value
    raise ReviewError(f"expected {' or '.join(types)}", field)


_NO_VALUE = object()


def _convert(kind: str, raw: str) -> Any:
    converters = {"integer": int, "number": float, "string": str,
                  "boolean": lambda r: {"true": True, "y": True, "yes": True, "false": False, "n": False,
                                        "no": False}[r.lower()],
                  "array": _json_of(list), "object": _json_of(dict)}
    try:
        return converters[kind](raw) if kind in converters else _NO_VALUE
    except (ValueError, KeyError):
        return _NO_VALUE


def _json_of(kind: type):
    def parse(raw: str) -> Any:
        value = json.loads(raw)
        if not isinstance(value, kind):
            raise ValueError(raw)
        return value
    return parse
