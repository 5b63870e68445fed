"""The store's human side: reviewers and their tokens, people's annotations (answers and experts'
adjudications, made here or imported from elsewhere) with undo and rework, the review queue with its
progress, and the overlap assignments of the QC sample. :class:`Need` says how many answers an item needs;
a stale answer raises :class:`~labelloop.errors.Conflict`. Every change writes its audit-log row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict
from ._base import StoreBase
from ._common import dumps, utc_now

# Queue orders by name; later issues add active-learning and disagreement orders.
QUEUE_ORDERS = {"confidence": "p.confidence IS NOT NULL, p.confidence, i.seq", "ingest": "i.seq"}


_ROUTED = "p.route IN ('needs_review', 'failed')"
_ANSWERS = ("(SELECT count(*) FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1"
            " AND a.kind = 'answer')")
_ADJUDICATED = ("EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1"
                " AND a.kind = 'adjudication')")


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


class ReviewStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about people lives here (the audit log's own
    queries are in :class:`~labelloop.store.audit.AuditStore`)."""

    # -- reviewers -------------------------------------------------------------------------

    def add_reviewer(self, name: str, role: str, token_hash: str, actor: str) -> None:
        """Add a reviewer (or re-issue their token and role), with an audit-log row naming ``actor``."""
        with self.transaction() as db:
            db.execute("INSERT INTO reviewers (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT(name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash,"
                       " disabled = 0", (name, role, token_hash, utc_now()))
            self._audit(db, utc_now(), actor, "reviewer-add", None, None, {"name": name, "role": role})

    def reviewer_by_token_hash(self, token_hash: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT name, role FROM reviewers WHERE token_hash = ? AND disabled = 0",
                               (token_hash,)).fetchone()

    def reviewer_role(self, name: str) -> str | None:
        row = self.db.execute("SELECT role FROM reviewers WHERE name = ? AND disabled = 0", (name,)).fetchone()
        return None if row is None else row[0]

    def reviewers(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT name, role, created_at, disabled FROM reviewers ORDER BY name").fetchall()

    # -- annotations -----------------------------------------------------------------------

    def add_annotation(self, item_id: str, annotator: str, output: dict[str, Any], action: str,
                       prediction_id: int | None, before: Any = None, expected_version: int | None = None,
                       *, kind: str = "answer", capacity: int = 1) -> int:
        """Record a person's answer (or an expert's adjudication) and its audit-log row, atomically.

        With ``expected_version``: if the item changed since that version was read and others already
        gave ``capacity`` answers, nothing is saved and :class:`~labelloop.errors.Conflict` names who
        answered last.
        """
        now = utc_now()
        with self.transaction() as db:
            if expected_version is not None and kind == "answer":
                self._check_capacity(db, item_id, annotator, expected_version, capacity)
            db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
            self._retire(db, item_id, annotator, kind)
            annotation_id = db.execute(
                "INSERT INTO annotations (item_id, annotator, output, action, prediction_id, created_at, kind)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (item_id, annotator, dumps(output), action, prediction_id, now, kind),
            ).lastrowid
            self._audit(db, now, annotator, action, item_id, before, output)
        return int(annotation_id)

    def add_imported_annotations(self, rows: list[dict[str, Any]], *, source: str, labeler: str) -> int:
        """Store annotations made elsewhere (keys: item_id, annotator, output, action, external_id) in one
        transaction; those imported before (same ``source`` and ``external_id``) are skipped. The count added."""
        with self.transaction() as db:
            return sum(self.insert_imported(db, source=source, labeler=labeler, **row) for row in rows)

    def insert_imported(self, db: sqlite3.Connection, *, item_id: str, annotator: str, output: dict[str, Any],
                        external_id: str, labeler: str, action: str, source: str, detail: str | None = None) -> bool:
        """One imported answer inside the caller's transaction, with its audit row; False if seen before.

        The item's current prediction of ``labeler`` (if any) is linked and logged as the "before" value.
        """
        if db.execute("SELECT 1 FROM annotations WHERE source = ? AND external_id = ?",
                      (source, external_id)).fetchone():
            return False
        now = utc_now()
        prediction = db.execute("SELECT id, output FROM predictions WHERE item_id = ? AND labeler = ?"
                                " AND is_current = 1", (item_id, labeler)).fetchone()
        self._retire(db, item_id, annotator, "answer")
        db.execute("INSERT INTO annotations (item_id, annotator, output, action, prediction_id, created_at,"
                   " source, external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (item_id, annotator, dumps(output), action, None if prediction is None else prediction["id"], now,
                    source, external_id))
        db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
        before = None if prediction is None or prediction["output"] is None else json.loads(prediction["output"])
        self._audit(db, now, annotator, action, item_id, before, output, detail=detail or f"{source} {external_id}")
        return True

    @staticmethod
    def _retire(db: sqlite3.Connection, item_id: str, annotator: str, kind: str) -> None:
        db.execute("UPDATE annotations SET is_current = 0 WHERE item_id = ? AND annotator = ? AND kind = ?"
                   " AND is_current = 1", (item_id, annotator, kind))

    def _check_capacity(self, db: sqlite3.Connection, item_id: str, annotator: str, expected: int,
                        capacity: int) -> None:
        version = db.execute("SELECT review_version FROM items WHERE id = ?", (item_id,)).fetchone()
        if version is None or version[0] == expected:
            return
        others = db.execute("SELECT count(*) FROM annotations WHERE item_id = ? AND is_current = 1"
                            " AND kind = 'answer' AND annotator != ?", (item_id, annotator)).fetchone()[0]
        if others >= capacity:
            latest = self.latest_annotation(item_id)
            raise Conflict(item_id, latest["annotator"] if latest else None,
                           json.loads(latest["output"]) if latest else None, latest["created_at"] if latest else None)

    def latest_annotation(self, item_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM annotations WHERE item_id = ? AND is_current = 1"
                               " ORDER BY id DESC LIMIT 1", (item_id,)).fetchone()

    def review_version(self, item_id: str) -> int | None:
        row = self.db.execute("SELECT review_version FROM items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else row[0]

    def undo_last(self, annotator: str) -> str | None:
        """Withdraw ``annotator``'s latest current answer (restoring their previous one); the item id."""
        now = utc_now()
        with self.transaction() as db:
            last = db.execute("SELECT * FROM annotations WHERE annotator = ? AND is_current = 1 AND source = 'labelloop'"
                              " ORDER BY id DESC LIMIT 1", (annotator,)).fetchone()
            if last is None:
                return None
            db.execute("UPDATE annotations SET is_current = 0 WHERE id = ?", (last["id"],))
            db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (last["item_id"],))
            self._audit(db, now, annotator, "undo", last["item_id"], json.loads(last["output"]), None)
        return last["item_id"]

    def annotations(self, item_id: str | None = None, limit: int = 1000,
                    annotator: str | None = None) -> list[sqlite3.Row]:
        """Current annotations (all, or ``annotator``'s), or every annotation of one item, oldest first."""
        who = "" if annotator is None else " AND annotator = ?"
        params: tuple = () if annotator is None else (annotator,)
        if item_id is None:
            return self.db.execute(f"SELECT * FROM annotations WHERE is_current = 1{who} ORDER BY id LIMIT ?",
                                   (*params, limit)).fetchall()
        return self.db.execute(f"SELECT * FROM annotations WHERE item_id = ?{who} ORDER BY id",
                               (item_id, *params)).fetchall()

    def current_answers(self) -> Iterator[sqlite3.Row]:
        """Every current answer (adjudications left out) with its item's source file, by item."""
        yield from self.db.execute(
            "SELECT a.item_id, a.annotator, a.output, a.source, i.source_file FROM annotations a"
            " JOIN items i ON i.id = a.item_id WHERE a.is_current = 1 AND a.kind = 'answer' ORDER BY i.seq, a.id")

    def adjudications(self) -> dict[str, sqlite3.Row]:
        """The current expert decision per item."""
        rows = self.db.execute("SELECT * FROM annotations WHERE is_current = 1 AND kind = 'adjudication'")
        return {row["item_id"]: row for row in rows}

    def retire_answers(self, item_ids: list[str], actor: str, detail: str) -> int:
        """Send items back for rework: their current answers stop counting (history and audit log keep them)."""
        now = utc_now()
        retired = 0
        with self.transaction() as db:
            for item_id in item_ids:
                rows = db.execute("SELECT id, annotator, output FROM annotations WHERE item_id = ? AND is_current = 1"
                                  " AND kind = 'answer'", (item_id,)).fetchall()
                for row in rows:
                    db.execute("UPDATE annotations SET is_current = 0 WHERE id = ?", (row["id"],))
                    self._audit(db, now, actor, "rework", item_id, json.loads(row["output"]), None,
                                f"{row['annotator']}: {detail}")
                db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
                retired += len(rows)
        return retired

    # -- the queue -------------------------------------------------------------------------

    def review_queue(self, labeler: str, annotator: str | None = None, limit: int = 50,
                     order: str = "confidence", need: "Need | None" = None) -> list[sqlite3.Row]:
        """Items that still need answers (``annotator``'s own answered ones left out), with ``answers`` given."""
        need = need or Need()
        mine = "" if annotator is None else (
            " AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1"
            " AND a.kind = 'answer' AND a.annotator = :annotator)")
        return self.db.execute(
            f"SELECT p.* FROM (SELECT p.*, i.text, i.fields, i.source_file, i.source_line, i.review_version, i.seq,"
            f" {need.required_sql()} AS required, {_ANSWERS} AS answers FROM predictions p"
            f" JOIN items i ON i.id = p.item_id LEFT JOIN assignments s ON s.item_id = p.item_id"
            f" WHERE p.is_current = 1 AND p.labeler = :labeler AND NOT {_ADJUDICATED}{mine}) p"
            f" JOIN items i ON i.id = p.item_id WHERE p.answers < p.required"
            f" ORDER BY {QUEUE_ORDERS[order]} LIMIT :limit",
            {"labeler": labeler, "annotator": annotator, "limit": limit}).fetchall()

    def review_item(self, labeler: str, item_id: str) -> sqlite3.Row | None:
        """One item with its current prediction (if any) and review version."""
        return self.db.execute(
            "SELECT i.id AS item_id, i.text, i.fields, i.review_version, p.id, p.output, p.confidence,"
            " p.field_confidence, p.reasons, p.route FROM items i"
            " LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?"
            " WHERE i.id = ?", (labeler, item_id)).fetchone()

    def review_progress(self, labeler: str, need: "Need | None" = None) -> dict[str, Any]:
        """Items sent to people that have all their answers (done) or not (left), and what is left by reason."""
        need = need or Need()
        rows = self.db.execute(
            f"SELECT p.reasons, p.route, {need.required_sql()} AS required, {_ANSWERS} AS answers,"
            f" {_ADJUDICATED} AS adjudicated FROM predictions p LEFT JOIN assignments s ON s.item_id = p.item_id"
            " WHERE p.is_current = 1 AND p.labeler = ?", (labeler,)).fetchall()
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
            (labeler,)).fetchall()

    def count_assignments(self) -> int:
        return self.db.execute("SELECT count(*) FROM assignments").fetchone()[0]

    def answers_needed(self, labeler: str, item_id: str, need: Need) -> int:
        """How many answers the overlap policy wants for one item (0 if it was not sent to people)."""
        row = self.db.execute(f"SELECT {need.required_sql()} FROM predictions p LEFT JOIN assignments s"
                              " ON s.item_id = p.item_id WHERE p.item_id = ? AND p.labeler = ? AND p.is_current = 1",
                              (item_id, labeler)).fetchone()
        return 1 if row is None else max(1, row[0])

    def add_assignments(self, rows: list[tuple[str, bool, str]]) -> None:
        """Record draws: (item id, in the sample, stratum)."""
        now = utc_now()
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO assignments (item_id, qc, stratum, assigned_at) VALUES (?, ?, ?, ?)",
                           [(item_id, int(qc), stratum, now) for item_id, qc, stratum in rows])
