"""Who answers what: how many answers each item needs, and which items join the overlap (QC) sample.

With ``annotation.overlap.sample`` below 1 (or ``include_accepted``), each item sent to people is drawn
once, when it first reaches the queue: drawn items need ``annotators`` answers, the others one (and
accepted items not drawn, none). The draw is systematic over the new items sorted by stratum
(predicted label x confidence band), then by a seeded hash: the sample is exactly the requested share
overall and proportional within every stratum, and it never changes for an item once drawn.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .spec import TaskSpec
from .store import Need, Store

CONFIDENCE_BANDS = ((0.5, "<0.5"), (0.7, "0.5-0.7"), (0.9, "0.7-0.9"), (math.inf, ">=0.9"))


def need(spec: TaskSpec) -> Need:
    """How many answers the task's overlap policy asks for."""
    overlap = spec.annotation.overlap
    return Need(k=overlap.annotators, sampling=overlap.samples)


def stratum(spec: TaskSpec, output: dict[str, Any] | None, confidence: float | None) -> str:
    """The stratum of an item: its predicted label (the first categorical field) and confidence band."""
    parts = []
    if "label" in spec.annotation.overlap.stratify:
        parts.append(_predicted_label(spec, output))
    if "confidence" in spec.annotation.overlap.stratify:
        parts.append("none" if confidence is None else next(n for top, n in CONFIDENCE_BANDS if confidence < top))
    return "|".join(parts)


def _predicted_label(spec: TaskSpec, output: dict[str, Any] | None) -> str:
    if not output:
        return "(no answer)"
    for name, prop in spec.output_schema()["properties"].items():
        if prop.get("enum") is not None:
            return json.dumps(output.get(name), ensure_ascii=False)
        if (prop.get("items") or {}).get("enum") is not None:
            return json.dumps(sorted(output.get(name) or []), ensure_ascii=False)
    return ""


def draw_sample(store: Store, spec: TaskSpec, labeler: str) -> int:
    """Draw the items that reached the queue since the last draw; returns how many were drawn."""
    overlap = spec.annotation.overlap
    if not overlap.samples:
        return 0
    pool = store.unassigned_pool(labeler, overlap.include_accepted)
    if not pool:
        return 0
    keyed = sorted(
        (
            stratum(spec, json.loads(row["output"]) if row["output"] else None, row["confidence"]),
            _hash(overlap.seed, row["item_id"]),
            row["item_id"],
        )
        for row in pool
    )
    start = store.count_assignments()
    offset = _hash(overlap.seed, "start")
    rows = []
    for position, (name, _, item_id) in enumerate(keyed, start):
        drawn = math.floor(overlap.sample * (position + 1) + offset) > math.floor(overlap.sample * position + offset)
        rows.append((item_id, drawn, name))
    store.add_assignments(rows)
    return len(rows)


def _hash(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
