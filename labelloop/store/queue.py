"""The review queue: which items still need people's answers, in what order, and how far along review is;
and the overlap assignments of the QC sample. :class:`Need` says how many answers an item needs."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ._base import StoreBase
from ._common import utc_now
from .known_answers import NOT_A_TEST

# Queue orders by name; later issues add active-learning and disagreement orders.
QUEUE_ORDERS = {"confidence": "p.confidence IS NOT NULL, p.confidence, i.seq", "ingest": "i.seq"}


_ROUTED = "p.route IN ('needs_review', 'failed')"
_ANSWERS = "(SELECT count(*) FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1 AND a.kind = 'answer')"
_ADJUDICATED = (
    "EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1 AND a.kind = 'adjudication')"
)


@dataclass(frozen=True)
class Need:
    """How many answers an item needs: ``k`` for sampled items (all routed ones when not ``sampling``), else 1."""

    k: int = 1
    sampling: bool = False

    def required_sql(self) -> str:
        """A SQL expression over ``p`` (prediction) and ``s`` (assignment) giving an item's answers needed."""
        k = int(self.k)
        if self.sampling:
            return f"(CASE WHEN s.qc = 1 THEN {k} WHEN {_ROUTED} THEN 1 ELSE 0 END)"
        return f"(CASE WHEN {_ROUTED} THEN {k} ELSE 0 END)"


class QueueStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`: the queue's SQL and the QC sample's draws."""

    def review_queue(
        self,
        labeler: str,
        annotator: str | None = None,
        limit: int = 50,
        order: str = "confidence",
        need: Need | None = None,
    ) -> list[sqlite3.Row]:
        """Items that still need answers (``annotator``'s own answered ones left out, and those whose missing
        answers others hold open: see :mod:`~labelloop.store.claims`), with ``answers`` given."""
        need = need or Need()
        # people's answers and live holds are counted once per item and joined (a hash join on PostgreSQL),
        # not looked up per prediction: the queue reads every current prediction of the labeler
        return self.db.execute(
            "SELECT p.*, i.text, i.fields, i.source_file, i.source_line, i.review_version, i.seq, i.changed_at,"
            f" {need.required_sql()} AS required, coalesce(a.answers, 0) AS answers FROM predictions p"
            " JOIN items i ON i.id = p.item_id LEFT JOIN assignments s ON s.item_id = p.item_id"
            " LEFT JOIN (SELECT item_id, sum(CASE WHEN kind = 'answer' THEN 1 ELSE 0 END) AS answers,"
            "   max(CASE WHEN kind = 'answer' AND annotator = :annotator THEN 1 ELSE 0 END) AS mine,"
            "   max(CASE WHEN kind = 'adjudication' THEN 1 ELSE 0 END) AS adjudicated"
            "   FROM annotations WHERE is_current = 1 GROUP BY item_id) a ON a.item_id = p.item_id"
            " LEFT JOIN (SELECT item_id, count(*) AS held FROM review_claims"
            "   WHERE expires_at > :now AND reviewer != :annotator GROUP BY item_id) c ON c.item_id = p.item_id"
            f" WHERE p.is_current = 1 AND p.labeler = :labeler AND coalesce(a.adjudicated, 0) = 0 AND {NOT_A_TEST}"
            " AND coalesce(a.mine, 0) = 0"
            f" AND coalesce(a.answers, 0) + coalesce(c.held, 0) < {need.required_sql()}"
            f" ORDER BY {QUEUE_ORDERS[order]} LIMIT :limit",
            {"labeler": labeler, "annotator": annotator or "", "limit": limit, "now": time.time()},
        ).fetchall()

    def review_item(self, labeler: str, item_id: str) -> sqlite3.Row | None:
        """One item with its current prediction (if any) and review version."""
        return self.db.execute(
            "SELECT i.id AS item_id, i.text, i.fields, i.review_version, i.changed_at, p.id, p.output, p.confidence,"
            " p.field_confidence, p.reasons, p.route FROM items i"
            " LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?"
            " WHERE i.id = ?",
            (labeler, item_id),
        ).fetchone()

    def review_progress(self, labeler: str, need: Need | None = None) -> dict[str, Any]:
        """Items sent to people that have all their answers (done) or not (left), and what is left by reason."""
        need = need or Need()
        rows = self.db.execute(
            f"SELECT p.reasons, p.route, {need.required_sql()} AS required, {_ANSWERS} AS answers,"
            f" {_ADJUDICATED} AS adjudicated FROM predictions p LEFT JOIN assignments s ON s.item_id = p.item_id"
            f" WHERE p.is_current = 1 AND p.labeler = ? AND {NOT_A_TEST}",
            (labeler,),
        ).fetchall()
        done = left = 0
        reasons: dict[str, int] = {}
        for row in rows:
            if row["required"] == 0:
                continue
            if row["adjudicated"] or row["answers"] >= row["required"]:
                done += 1
                continue
            left += 1
            routed = row["route"] in ("needs_review", "failed")
            for reason in json.loads(row["reasons"] or "[]") if routed else ["qc_sample"]:
                reasons[reason] = reasons.get(reason, 0) + 1
        return {"done": done, "left": left, "by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}

    # -- overlap assignments ---------------------------------------------------------------

    def unassigned_pool(self, labeler: str, include_accepted: bool) -> list[sqlite3.Row]:
        """Items with a current prediction that may join the QC sample and have not been drawn yet."""
        routes = "('needs_review', 'failed', 'accepted')" if include_accepted else "('needs_review', 'failed')"
        return self.db.execute(
            "SELECT p.item_id, p.output, p.confidence FROM predictions p JOIN items i ON i.id = p.item_id"
            f" WHERE p.is_current = 1 AND p.labeler = ? AND p.route IN {routes}"
            " AND NOT EXISTS (SELECT 1 FROM assignments s WHERE s.item_id = p.item_id) ORDER BY i.seq",
            (labeler,),
        ).fetchall()

    def count_assignments(self) -> int:
        return self.db.execute("SELECT count(*) FROM assignments").fetchone()[0]

    def answers_needed(self, labeler: str, item_id: str, need: Need) -> int:
        """How many answers the overlap policy wants for one item (0 if it was not sent to people)."""
        row = self.db.execute(
            f"SELECT {need.required_sql()} FROM predictions p LEFT JOIN assignments s"
            " ON s.item_id = p.item_id WHERE p.item_id = ? AND p.labeler = ? AND p.is_current = 1",
            (item_id, labeler),
        ).fetchone()
        return 1 if row is None else max(1, row[0])

    def add_assignments(self, rows: list[tuple[str, bool, str]]) -> None:
        """Record draws: (item id, in the sample, stratum)."""
        now = utc_now()
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO assignments (item_id, qc, stratum, assigned_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(item_id, int(qc), stratum, now) for item_id, qc, stratum in rows],
            )
