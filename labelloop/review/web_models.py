"""What the web app exchanges with browsers and scripts: request bodies, the item form's fields, a ``qa`` answer's
cited passages, and annotations as JSON."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel

from . import QueueItem

SHORT_DOCUMENT = 4000  # a cited document shorter than this (characters) is shown whole, else its cited paragraphs


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
        if spec.kind == "qa" and name == "citations":  # edited by selecting text in the passages (qa_view)
            continue
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
                "enum": prop.get("enum")
                or (getattr(spec, "label_names", None) if name == "label" else None)
                or ([True, False] if "boolean" in types else None),
                "options": (prop.get("items") or {}).get("enum") if "array" in types else None,
                "input": _input(types, prop),
                "integer": "integer" in types,
                "nullable": "null" in types,
                "multiline": (spec.kind, name) in {("generate", "output"), ("qa", "answer")},
            }
        )
    return rows


def qa_view(
    store: Any, spec: Any, output: dict[str, Any] | None, seen: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """A ``qa`` answer's citations and the passages they cite (None for other kinds): each cited document whole
    when short, else its paragraphs that hold a citation; then the other passages the model was shown (``seen``:
    the prediction's context), so there is text to cite from when the answer cites none. A passage is (text,
    cited) segments, ``cited`` the numbers of the citations marking that text; the page escapes the text and
    selects in it to cite anew."""
    if spec.kind != "qa":
        return None
    citations = [c for c in (output or {}).get("citations") or [] if isinstance(c, dict)]
    cited: dict[tuple[str, int | None], list[int]] = {}
    for number, citation in enumerate(citations):
        if isinstance(citation.get("start"), int) and isinstance(citation.get("end"), int):
            cited.setdefault((str(citation.get("doc")), citation.get("version")), []).append(number)
    passages = []
    for (doc_id, version), numbers in cited.items():
        doc = store.document(doc_id, version)
        if doc is None:
            continue
        text = doc["text"]
        marks = [(citations[n]["start"], citations[n]["end"], n) for n in numbers]
        marks = [(start, end, n) for start, end, n in marks if 0 <= start < end <= len(text)]
        if len(text) < SHORT_DOCUMENT:
            shown = [(0, len(text))] if marks else []
        else:
            paragraphs = [(p["start"], p["end"]) for p in store.paragraphs(doc_id, doc["version"])]
            shown = [(a, b) for a, b in paragraphs if any(start < b and a < end for start, end, _ in marks)]
        for a, b in shown:
            passages.append({"doc": doc_id, "title": doc["title"], "version": doc["version"], "start": a,
                             "whole": (a, b) == (0, len(text)), "segments": _segments(text, a, b, marks)})  # fmt: skip
    return {"citations": citations, "passages": passages + _retrieved(store, passages, seen)}


def _retrieved(store: Any, shown: list[dict[str, Any]], seen: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The passages the model was shown and the page does not show yet, in their retrieval order."""
    covered = [(p["doc"], p["version"], p["start"], p["start"] + sum(len(s["text"]) for s in p["segments"]))
               for p in shown]  # fmt: skip
    found = []
    for passage in (seen or {}).get("passages", []):
        doc_id, version, start, end = passage["doc"], passage["version"], passage["start"], passage["end"]
        if any(d == doc_id and v == version and a <= start and end <= b for d, v, a, b in covered):
            continue
        doc = store.document(doc_id, version)
        if doc is None or not 0 <= start < end <= len(doc["text"]):
            continue
        found.append({"doc": doc_id, "title": doc["title"], "version": version, "start": start, "whole": False,
                      "rank": passage.get("rank"), "segments": _segments(doc["text"], start, end, [])})  # fmt: skip
    return found


def _segments(text: str, start: int, end: int, marks: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """``text[start:end]`` cut where a citation starts or ends, each piece with the citations covering it."""
    cuts = sorted({start, end, *(min(max(x, start), end) for s, e, _ in marks for x in (s, e))})
    return [{"text": text[a:b], "cited": [n for s, e, n in marks if s <= a and b <= e]} for a, b in pairwise(cuts)]


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


def _input(types: list[str], prop: dict[str, Any]) -> str:
    """The input a field is edited in: a number, JSON (objects, and arrays of anything but fixed options), text."""
    if {"integer", "number"} & set(types):
        return "number"
    if "object" in types or ("array" in types and "enum" not in (prop.get("items") or {})):
        return "json"
    return "text"


def _level(confidence: float | None, threshold: float) -> str:
    """How a field's confidence is coloured against its threshold."""
    if confidence is None:
        return "unknown"
    if confidence >= threshold:
        return "high"
    return "medium" if confidence >= threshold / 2 else "low"
