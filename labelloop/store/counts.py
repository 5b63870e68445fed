"""What ``status`` and ``logs`` report: current predictions by status, route and reason, confidences, the most
frequent errors, call totals, recent runs and calls."""

from __future__ import annotations

import sqlite3
from typing import Any

from .items import ItemStore


class CountStore(ItemStore):
    """Mixed into :class:`~labelloop.store.Store`; the read-only counts of runs and predictions."""

    def prediction_counts(self, labeler: str | None = None) -> dict[str, int]:
        """Current predictions by status (and 'unlabeled' for items with none)."""
        params: tuple = ()
        filter_ = ""
        if labeler is not None:
            filter_, params = " AND labeler = ?", (labeler,)
        counts = dict(
            self.db.execute(
                f"SELECT status, count(*) FROM predictions WHERE is_current = 1{filter_} GROUP BY status", params
            )
        )
        labeled_items = self.db.execute(
            f"SELECT count(DISTINCT item_id) FROM predictions WHERE is_current = 1{filter_}", params
        ).fetchone()[0]
        counts["unlabeled"] = self.count_items() - labeled_items
        return counts

    def route_counts(self, labeler: str | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """Current predictions by routing state, and by reason."""
        filter_, params = ("AND labeler = ?", (labeler,)) if labeler else ("", ())
        states = dict(
            self.db.execute(
                f"SELECT coalesce(route, 'unrouted'), count(*) FROM predictions WHERE is_current = 1 {filter_}"
                " GROUP BY 1",
                params,
            )
        )
        each = (
            "json_array_elements_text(p.reasons::json) r(value)"
            if self.dialect == "postgresql"
            else "json_each(p.reasons) r"
        )
        reasons = dict(
            self.db.execute(
                f"SELECT r.value, count(*) FROM predictions p, {each}"
                f" WHERE p.is_current = 1 {filter_} GROUP BY r.value ORDER BY count(*) DESC",
                params,
            )
        )
        return states, reasons

    def confidences(self, labeler: str | None = None) -> list[float]:
        filter_, params = ("AND labeler = ?", (labeler,)) if labeler else ("", ())
        return [
            row[0]
            for row in self.db.execute(
                f"SELECT confidence FROM predictions WHERE is_current = 1 AND confidence IS NOT NULL {filter_}", params
            )
        ]

    def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        return [
            (row[0], row[1])
            for row in self.db.execute(
                "SELECT error, count(*) AS n FROM predictions WHERE is_current = 1 AND error IS NOT NULL"
                " GROUP BY error ORDER BY n DESC LIMIT ?",
                (limit,),
            )
        ]

    def call_totals(self) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT count(*) AS calls, count(error) AS errors, coalesce(sum(prompt_tokens), 0) AS prompt,"
            " coalesce(sum(completion_tokens), 0) AS completion, avg(latency_ms) AS latency FROM llm_calls"
        ).fetchone()
        return dict(row)

    def runs(self, limit: int = 10) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def recent_calls(self, limit: int = 10) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM llm_calls ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
