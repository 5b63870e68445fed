"""What ``labelloop report`` reads: activity per second (items in, labels, people's answers, calls), recent
call latencies, every answer people gave, the prompt versions' runs, and each labeler's answers beside
people's decisions. Per-second counts keep the rows few however many items a project holds; the report
groups them into as many buckets as a plot can show."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ._base import StoreBase


class ReportStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; the read-only queries of the project report."""

    def activity(self) -> dict[str, list[tuple[str, int]]]:
        """(second, count) per kind of event: ``ingested``, ``labeled:<labeler>`` (current predictions),
        ``answered`` and ``adjudicated`` (people), in time order."""
        out: dict[str, list[tuple[str, int]]] = {"ingested": [], "answered": [], "adjudicated": []}
        rows = self.db.execute("SELECT substr(ingested_at, 1, 19) AS s, count(*) FROM items GROUP BY s")
        out["ingested"] = [(s, n) for s, n in rows]
        rows = self.db.execute(
            "SELECT substr(created_at, 1, 19) AS s, labeler, count(*) FROM predictions WHERE is_current = 1"
            " GROUP BY s, labeler"
        )
        for s, labeler, n in rows:
            out.setdefault(f"labeled:{labeler}", []).append((s, n))
        for s, kind, n in self.db.execute(
            "SELECT substr(created_at, 1, 19) AS s, kind, count(*) FROM annotations GROUP BY s, kind"
        ):
            out["answered" if kind == "answer" else "adjudicated"].append((s, n))
        return {name: sorted(rows) for name, rows in out.items()}

    def call_activity(self) -> list[sqlite3.Row]:
        """Per second: calls, failed calls, prompt and completion tokens."""
        return self.db.execute(
            "SELECT substr(created_at, 1, 19) AS s, count(*) AS calls, count(error) AS errors,"
            " coalesce(sum(prompt_tokens), 0) AS prompt, coalesce(sum(completion_tokens), 0) AS completion"
            " FROM llm_calls GROUP BY s ORDER BY s"
        ).fetchall()

    def call_latencies(self, limit: int = 100_000) -> list[float]:
        """Latency (ms) of the newest ``limit`` answered calls."""
        rows = self.db.execute(
            "SELECT latency_ms FROM llm_calls WHERE error IS NULL ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [row[0] for row in rows]

    def answer_log(self) -> list[sqlite3.Row]:
        """Every answer and adjudication people gave, current or not, oldest first."""
        return self.db.execute(
            "SELECT item_id, annotator, output, kind, is_current, created_at FROM annotations ORDER BY id"
        ).fetchall()

    def gold_counts(self) -> dict[tuple[str, str], int]:
        """Gold rows by (status, method)."""
        return {(s, m): n for s, m, n in self.db.execute("SELECT status, method, count(*) FROM gold GROUP BY 1, 2")}

    def prompt_history(self) -> list[sqlite3.Row]:
        """Per prompt version, labeler and model: when it ran first and last, its runs, items and calls."""
        return self.db.execute(
            "SELECT r.prompt_version, r.labeler, r.model, p.created_at, min(r.started_at) AS first_run,"
            " max(coalesce(r.finished_at, r.started_at)) AS last_run, count(*) AS runs,"
            " sum(r.items_done) AS items, sum(r.calls) AS calls, sum(r.cache_hits) AS cache_hits,"
            " sum(r.prompt_tokens) AS prompt_tokens, sum(r.completion_tokens) AS completion_tokens"
            " FROM runs r JOIN prompts p ON p.version = r.prompt_version"
            " GROUP BY r.prompt_version, r.labeler, r.model, p.created_at ORDER BY first_run"
        ).fetchall()

    def checked_predictions(self, labeler: str) -> Iterator[sqlite3.Row]:
        """``labeler``'s current answers (output, confidence; none where it failed) on every item that has
        people's decided answer (``people``)."""
        yield from self.db.execute(
            "SELECT g.item_id, p.output, p.confidence, g.output AS people FROM gold g"
            " JOIN items i ON i.id = g.item_id"
            " LEFT JOIN predictions p ON p.item_id = g.item_id AND p.is_current = 1 AND p.labeler = ?"
            " AND p.status = 'ok' WHERE g.status = 'decided' ORDER BY i.seq",
            (labeler,),
        )
