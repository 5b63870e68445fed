"""The store's learning side: item embeddings (float32 bytes per item and embedding model), people's decided
gold labels as training data, trained small models and their reports, predictions a policy sends back to
review, the cost per item of a labeler, and near-duplicate groups with their representatives."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from ._base import StoreBase
from ._common import dumps, inserted_id, utc_now


class LearnStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; vectors are stored as float32 bytes."""

    # -- embeddings --------------------------------------------------------------------------

    def items_without_embedding(self, model: str, ids: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(id, text) of items (all, or those in ``ids``) with no vector from ``model``, in ingest order."""
        rows = self.db.execute(
            "SELECT i.id, i.text FROM items i WHERE NOT EXISTS (SELECT 1 FROM embeddings e"
            " WHERE e.item_id = i.id AND e.model = ?) ORDER BY i.seq",
            (model,),
        ).fetchall()
        wanted = None if ids is None else set(ids)
        return [(row[0], row[1]) for row in rows if wanted is None or row[0] in wanted]

    def save_embeddings(self, model: str, dim: int, vectors: Iterable[tuple[str, bytes]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO embeddings (item_id, model, dim, vector) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (item_id, model) DO UPDATE SET dim = excluded.dim, vector = excluded.vector",
                [(item_id, model, dim, blob) for item_id, blob in vectors],
            )

    def embedding_rows(self, model: str) -> Iterator[tuple[str, int, bytes]]:
        """(item id, dim, float32 bytes) of every stored vector of ``model``, in ingest order."""
        yield from self.db.execute(
            "SELECT e.item_id, e.dim, e.vector FROM embeddings e JOIN items i ON i.id = e.item_id"
            " WHERE e.model = ? ORDER BY i.seq",
            (model,),
        )

    # -- gold and models ---------------------------------------------------------------------

    def gold_outputs(self) -> dict[str, dict[str, Any]]:
        """Decided gold outputs by item (people's labels: single, aggregated or adjudicated)."""
        rows = self.db.execute("SELECT item_id, output FROM gold WHERE status = 'decided'")
        return {item_id: json.loads(output) for item_id, output in rows}

    def save_model(
        self, name: str, path: str, data_version: str, embedder: str, examples: int, report: dict[str, Any]
    ) -> int:
        with self.transaction() as db:
            return inserted_id(
                db.execute(
                    "INSERT INTO models (name, path, data_version, embedder, examples, report, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (name, path, data_version, embedder, examples, dumps(report), utc_now()),
                )
            )

    def latest_model(self, name: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM models WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)).fetchone()

    def send_to_review(self, prediction_ids: list[int], reason: str) -> None:
        """Route these predictions to review, adding ``reason`` (a policy overruled their gate)."""
        self._reroute(prediction_ids, "needs_review", reason)

    def accept_predictions(self, prediction_ids: list[int], reason: str) -> None:
        """Accept these predictions, adding ``reason`` (a policy with a guarantee of its own settled them)."""
        self._reroute(prediction_ids, "accepted", reason)

    def _reroute(self, prediction_ids: list[int], route: str, reason: str) -> None:
        with self.transaction() as db:
            for prediction_id in prediction_ids:
                row = db.execute("SELECT reasons FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
                reasons = [*json.loads(row[0] or "[]"), reason]
                db.execute(
                    "UPDATE predictions SET route = ?, reasons = ? WHERE id = ?", (route, dumps(reasons), prediction_id)
                )

    def cost_per_item(self, labeler: str) -> dict[str, float]:
        """Mean model calls and tokens per item ``labeler`` labeled (cache hits cost nothing)."""
        calls, tokens, items = self.db.execute(
            "SELECT count(c.id), coalesce(sum(c.prompt_tokens + c.completion_tokens), 0),"
            " (SELECT count(*) FROM predictions WHERE labeler = ? AND is_current = 1)"
            " FROM llm_calls c JOIN runs r ON r.id = c.run_id WHERE r.labeler = ?",
            (labeler, labeler),
        ).fetchone()
        return {"calls_per_item": calls / max(1, items), "tokens_per_item": tokens / max(1, items)}

    # -- duplicates --------------------------------------------------------------------------

    def replace_duplicates(self, rows: list[tuple[str, str, str, float]]) -> None:
        """Swap the duplicate groups for ``rows`` of (item, representative, kind, similarity)."""
        now = utc_now()
        with self.transaction() as db:
            db.execute("DELETE FROM duplicates")
            db.executemany(
                "INSERT INTO duplicates (item_id, representative, kind, similarity, found_at) VALUES (?, ?, ?, ?, ?)",
                [(*row, now) for row in rows],
            )

    def duplicate_rows(self) -> list[tuple[str, str, str, float]]:
        """(item, representative, kind, similarity) of every grouped item."""
        return [
            tuple(row)
            for row in self.db.execute(
                "SELECT item_id, representative, kind, similarity FROM duplicates ORDER BY representative, item_id"
            )
        ]

    def duplicate_members(self, representative: str) -> list[str]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT item_id FROM duplicates WHERE representative = ? AND item_id != ?",
                (representative, representative),
            )
        ]
