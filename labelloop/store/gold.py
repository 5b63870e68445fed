"""The store's gold side: model answers as votes, the labelers with current predictions, the aggregated gold
table (swapped whole by each aggregation, with its log row) and the watermark that says whether answers or
predictions changed since, and the disputed items an expert adjudicates."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

from ._base import StoreBase
from ._common import dumps, utc_now


class GoldStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; SQL of aggregation and adjudication."""

    def model_answers(self, labeler: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(item id, output) of every valid current prediction of ``labeler``."""
        rows = self.db.execute(
            "SELECT item_id, output FROM predictions WHERE is_current = 1 AND labeler = ?"
            " AND status = 'ok' AND output IS NOT NULL AND route != 'failed'",
            (labeler,),
        )
        for item_id, output in rows:
            yield item_id, json.loads(output)

    def labelers(self) -> list[str]:
        """Every labeler with current predictions (``label --as NAME``), by name."""
        return [
            row[0]
            for row in self.db.execute("SELECT DISTINCT labeler FROM predictions WHERE is_current = 1 ORDER BY labeler")
        ]

    def change_watermark(self) -> str:
        """Changes whenever an answer or a prediction does (every answer change writes an audit row)."""
        audit, prediction = self.db.execute(
            "SELECT (SELECT max(id) FROM audit_log), (SELECT max(id) FROM predictions)"
        ).fetchone()
        return f"{audit}:{prediction}"

    def last_aggregation(self) -> sqlite3.Row | None:
        """The newest aggregation's log row (method, details such as annotators' confusion matrices)."""
        return self.db.execute("SELECT * FROM aggregations ORDER BY id DESC LIMIT 1").fetchone()

    def last_aggregation_watermark(self) -> str | None:
        row = self.db.execute("SELECT watermark FROM aggregations ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else row[0]

    def replace_gold(
        self, decisions: Mapping[str, Any], method: str, watermark: str, details: dict[str, Any] | None = None
    ) -> None:
        """Swap the whole gold table for ``decisions`` (``aggregate.Decision`` by item) in one transaction;
        ``details`` (e.g. annotators' confusion matrices) are kept with the aggregation's log row."""
        now = utc_now()
        with self.transaction() as db:
            db.execute("DELETE FROM gold")
            db.executemany(
                "INSERT INTO gold (item_id, status, output, method, decided_by, confidence, votes, decided_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        item,
                        "disputed" if d.disputed else "decided",
                        dumps(d.output),
                        d.method,
                        dumps(d.decided_by),
                        d.confidence,
                        d.votes,
                        now,
                    )
                    for item, d in decisions.items()
                ],
            )
            db.execute(
                "INSERT INTO aggregations (method, watermark, items, disputed, details, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    method,
                    watermark,
                    len(decisions),
                    sum(d.disputed for d in decisions.values()),
                    dumps(details or {}),
                    now,
                ),
            )

    def gold(self, item_id: str | None = None) -> list[sqlite3.Row]:
        """Gold records (all, or one item's)."""
        if item_id is None:
            return self.db.execute("SELECT g.* FROM gold g JOIN items i ON i.id = g.item_id ORDER BY i.seq").fetchall()
        return self.db.execute("SELECT * FROM gold WHERE item_id = ?", (item_id,)).fetchall()

    def disputed(self, labeler: str, limit: int) -> list[sqlite3.Row]:
        """Disputed items with their text and current prediction of ``labeler``, lowest confidence first."""
        return self.db.execute(
            "SELECT i.id AS item_id, i.text, i.fields, i.review_version, i.changed_at, p.id, p.output,"
            " p.confidence, p.field_confidence, p.reasons, p.route, g.confidence AS agreement FROM gold g"
            " JOIN items i ON i.id = g.item_id"
            " LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?"
            " WHERE g.status = 'disputed' ORDER BY g.confidence, i.seq LIMIT ?",
            (labeler, limit),
        ).fetchall()
