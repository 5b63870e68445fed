"""What the web app exchanges with browsers and scripts: request bodies, the item form's fields, and
annotations as JSON."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from . import QueueItem


class Decision(BaseModel):
    """A reviewer's decision on one item, made on the item page at ``version``."""

    action: Literal["accept", "edit", "label", "skip"]
    version: int
    output: dict[str, Any] | None = None


class Adjudication(BaseModel):
    """An expert's final decision on a disputed item, or ``skip`` to pass it over for now."""

    output: dict[str, Any] | None = None
    skip: bool = False


def form_fields(spec: Any, item: QueueItem) -> list[dict[str, Any]]:
    """What the item page shows per output field: value, confidence and colour, the input to edit it."""
    schema = spec.output_schema()
    rows = []
    for name, prop in schema["properties"].items():
        types = prop.get("type", "string")
        types = types if isinstance(types, list) else [types]
        confidence = item.field_confidence.get(name)
        threshold = spec.review.threshold_for(name)
        rows.append(
            {
                "name": name,
                "value": (item.output or {}).get(name),
                "confidence": confidence,
                "level": _level(confidence, threshold),
                "enum": prop.get("enum") or (getattr(spec, "label_names", None) if name == "label" else None),
                "options": (prop.get("items") or {}).get("enum") if "array" in types else None,
                "input": "number" if {"integer", "number"} & set(types) else "text",
                "integer": "integer" in types,
                "nullable": "null" in types,
                "multiline": spec.kind == "generate" and name == "output",
            }
        )
    return rows


def annotation_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "item_id": row["item_id"],
        "annotator": row["annotator"],
        "output": json.loads(row["output"]),
        "action": row["action"],
        "current": bool(row["is_current"]),
        "at": row["created_at"],
    }


def _level(confidence: float | None, threshold: float) -> str:
    """How a field's confidence is coloured against its threshold."""
    if confidence is None:
        return "unknown"
    if confidence >= threshold:
        return "high"
    return "medium" if confidence >= threshold / 2 else "low"
