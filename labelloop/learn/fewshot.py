"""Few-shot from corrections: each prompt gets the people-labeled items most like the one being labeled.

The pool is the project's gold (every decided human label, corrections included) as it stands when a run
starts. For an item, the ``k`` nearest gold items by embedding cosine are taken label-diverse: the best
match of each distinct answer first, then the nearest of the rest. They go after the shared prefix (so the
fixed part still hits the server's prefix cache) and before the item; which ones were used is part of the
cache key, so an answer cached with other examples is not reused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..spec import TaskSpec
from ..store import Item, Store
from .embed import create_embedder, ensure_embeddings, load_embeddings


class FewShotPool:
    """The gold items with their vectors, and every item's vector, for choosing examples."""

    def __init__(self, store: Store, spec: TaskSpec, k: int):
        self.k, self.spec = k, spec
        embedder = create_embedder(spec.learn.embeddings)
        ensure_embeddings(store, embedder)
        embeddings = load_embeddings(store, embedder.name)
        self._row = {item_id: row for row, item_id in enumerate(embeddings.ids)}
        self._vectors = embeddings.matrix
        gold = store.gold_outputs()
        self._gold_ids = [i for i in embeddings.ids if i in gold]
        self._gold_outputs = [gold[i] for i in self._gold_ids]
        self._gold_texts = store.item_texts(self._gold_ids)
        self._gold_matrix = embeddings.rows(self._gold_ids) if self._gold_ids else np.zeros((0, 0))

    def examples(self, item: Item) -> list[tuple[str, Any]]:
        """Up to ``k`` (text, output) pairs near ``item``, one per distinct answer first; never the item."""
        if not self._gold_ids or item.id not in self._row:
            return []
        similarity = self._gold_matrix @ self._vectors[self._row[item.id]]
        order = [i for i in np.argsort(-similarity, kind="stable") if self._gold_ids[i] != item.id]
        chosen, answers = [], set()
        for i in order:  # the nearest of each distinct answer
            key = json.dumps(self._gold_outputs[i], sort_keys=True, ensure_ascii=False)
            if key not in answers:
                answers.add(key)
                chosen.append(i)
            if len(chosen) == self.k:
                break
        chosen += [i for i in order if i not in chosen][: self.k - len(chosen)]
        chosen.sort(key=lambda i: similarity[i])  # the most similar last, next to the item
        return [(self._gold_texts[self._gold_ids[i]], self._gold_outputs[i]) for i in chosen]

    def digest(self, examples: list[tuple[str, Any]]) -> str:
        """A short hash of the chosen examples (part of the cache key)."""
        payload = json.dumps(examples, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
