"""Active learning: which items people should look at next.

Uncertainty alone picks many near-identical hard items; diversity alone ignores what the labelers already
know. :func:`select_batch` takes the most uncertain candidates (``1 - confidence``, plus one for every pair
of labelers that disagree), several times the batch size, and among them runs k-center greedy over the
embeddings: each next pick is the candidate farthest from everything already labeled or picked.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .. import labelers


def k_center_greedy(vectors: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, k: int) -> list[int]:
    """Pick ``k`` of ``candidates`` (row indices), each farthest (cosine) from ``anchors`` and earlier picks."""
    if k <= 0 or len(candidates) == 0:
        return []
    pool = vectors[candidates]
    if len(anchors):
        distance = 1.0 - (pool @ vectors[anchors].T).max(axis=1)
    else:
        distance = np.full(len(candidates), np.inf)
    picks: list[int] = []
    for _ in range(min(k, len(candidates))):
        best = int(np.argmax(distance))
        picks.append(int(candidates[best]))
        distance = np.minimum(distance, 1.0 - pool @ pool[best])
        distance[best] = -np.inf
    return picks


def uncertainty(confidence: np.ndarray, disagreements: np.ndarray | None = None) -> np.ndarray:
    """``1 - confidence`` (unknown confidence counts as 0), plus the number of disagreeing labeler pairs."""
    score = 1.0 - np.nan_to_num(np.asarray(confidence, dtype=float), nan=0.0)
    return score if disagreements is None else score + np.asarray(disagreements, dtype=float)


def select_batch(
    vectors: np.ndarray, scores: np.ndarray, candidates: np.ndarray, labeled: np.ndarray, k: int, widen: int = 5
) -> list[int]:
    """The next ``k`` items: k-center greedy among the ``widen * k`` most uncertain candidates."""
    if len(candidates) == 0:
        return []
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return k_center_greedy(vectors, order[: max(k, widen * k)], labeled, k)


def active_order(store: Any, spec: Any, rows: list[Any], limit: int) -> list[Any]:
    """Review-queue rows (lowest confidence first) reordered by :func:`select_batch`: uncertainty, the small
    model's disagreement with the prediction, and diversity against the items people already labeled.
    Rows without an embedding keep their order, after the others."""
    from .embed import embedder_name, load_embeddings

    embeddings = load_embeddings(store, embedder_name(spec.learn.embeddings))
    index = {item_id: row for row, item_id in enumerate(embeddings.ids)}
    known = [r for r in rows if r["item_id"] in index]
    if not known:
        return rows[:limit]
    small = {r["item_id"]: json.loads(r["output"] or "null") for r in store.current_predictions(labelers.SMALL)}
    confidence = np.array([r["confidence"] if r["confidence"] is not None else np.nan for r in known], dtype=float)
    disagree = np.array(
        [bool(small.get(r["item_id"])) and small[r["item_id"]] != json.loads(r["output"] or "null") for r in known]
    )
    scores = np.zeros(len(embeddings.ids))
    scores[[index[r["item_id"]] for r in known]] = uncertainty(confidence, disagree)
    candidates = np.array([index[r["item_id"]] for r in known])
    labeled = np.array([index[i] for i in store.gold_outputs() if i in index], dtype=int)
    picked = select_batch(embeddings.matrix, scores, candidates, labeled, min(limit, len(known)))
    by_row = {index[r["item_id"]]: r for r in known}
    ordered = [by_row[i] for i in picked]
    return (ordered + [r for r in rows if r["item_id"] not in index])[:limit]
