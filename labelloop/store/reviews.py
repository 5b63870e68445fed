"""The store's human side: reviewers, annotations, the review queue, undo and the audit log."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from typing import Any

from ._common import dumps, utc_now

# Queue orders by name; later issues add active-learning and disagreement orders.
QUEUE_ORDERS = {"confidence": "p.confidence IS NOT NULL, p.confidence, i.seq", "ingest": "i.seq"}


class Conflict(Exception):
    """Someone answered the item since the reviewer loaded it (optimistic concurrency)."""

    def __init__(self, item_id: str, annotator: str | None, output: Any, at: str | None):
        self.item_id, self.annotator, self.output, self.at = item_id, annotator, output, at
        super().__init__(f"{item_id}: {annotator} answered first")


class ReviewStore:
    """Mixed into :class:`~labelloop.store.Store`; all SQL about people lives here."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by Store

    # -- reviewers -------------------------------------------------------------------------

    def add_reviewer(self, name: str, role: str, token_hash: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO reviewers (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT(name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash,"
                       " disabled = 0", (name, role, token_hash, utc_now()))
            self._audit(db, utc_now(), "admin", "reviewer-add", None, None, {"name": name, "role": role})

    def reviewer_by_token_hash(self, token_hash: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT name, role FROM reviewers WHERE token_hash = ? AND disabled = 0",
                               (token_hash,)).fetchone()

    def reviewers(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT name, role, created_at, disabled FROM reviewers ORDER BY name").fetchall()

    # -- annotations -----------------------------------------------------------------------

    def add_annotation(self, item_id: str, annotator: str, output: dict[str, Any], action: str,
                       prediction_id: int | None, before: Any = None, expected_version: int | None = None) -> int:
        """Record a person's answer and its audit-log row, atomically.

        With ``expected_version``, the answer is saved only if nobody answered the item since
        that version was read; otherwise :class:`Conflict` names who did, and what they answered.
        """
        now = utc_now()
        with self.transaction() as db:
            self._bump_version(db, item_id, expected_version)
            db.execute("UPDATE annotations SET is_current = 0 WHERE item_id = ? AND annotator = ? AND is_current = 1",
                       (item_id, annotator))
            annotation_id = db.execute(
                "INSERT INTO annotations (item_id, annotator, output, action, prediction_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (item_id, annotator, dumps(output), action, prediction_id, now),
            ).lastrowid
            self._audit(db, now, annotator, action, item_id, before, output)
        return int(annotation_id)

    def _bump_version(self, db: sqlite3.Connection, item_id: str, expected: int | None) -> None:
        if expected is None:
            db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
            return
        updated = db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?"
                             " AND review_version = ?", (item_id, expected)).rowcount
        if not updated:
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

    def annotations(self, item_id: str | None = None, limit: int = 1000) -> list[sqlite3.Row]:
        if item_id is None:
            return self.db.execute("SELECT * FROM annotations WHERE is_current = 1 ORDER BY id LIMIT ?",
                                   (limit,)).fetchall()
        return self.db.execute("SELECT * FROM annotations WHERE item_id = ? ORDER BY id", (item_id,)).fetchall()

    # -- the queue -------------------------------------------------------------------------

    def review_queue(self, labeler: str, annotator: str | None = None, limit: int = 50,
                     order: str = "confidence") -> list[sqlite3.Row]:
        """Items whose current prediction needs review or failed and that nobody has answered yet."""
        del annotator  # one answer per item for now; several annotators per item come with overlap policies
        return self.db.execute(
            "SELECT p.*, i.text, i.fields, i.source_file, i.source_line, i.review_version FROM predictions p"
            " JOIN items i ON i.id = p.item_id"
            " WHERE p.is_current = 1 AND p.labeler = ? AND p.route IN ('needs_review', 'failed')"
            " AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1)"
            f" ORDER BY {QUEUE_ORDERS[order]} LIMIT ?", (labeler, limit)).fetchall()

    def review_item(self, labeler: str, item_id: str) -> sqlite3.Row | None:
        """One item with its current prediction (if any) and review version."""
        return self.db.execute(
            "SELECT i.id AS item_id, i.text, i.fields, i.review_version, p.id, p.output, p.confidence,"
            " p.field_confidence, p.reasons, p.route FROM items i"
            " LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?"
            " WHERE i.id = ?", (labeler, item_id)).fetchone()

    def review_progress(self, labeler: str) -> dict[str, Any]:
        """Done and left among items routed to people, and what is left by reason."""
        routed = "p.is_current = 1 AND p.labeler = ? AND p.route IN ('needs_review', 'failed')"
        answered = "EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = p.item_id AND a.is_current = 1)"
        done = self.db.execute(f"SELECT count(*) FROM predictions p WHERE {routed} AND {answered}",
                               (labeler,)).fetchone()[0]
        left = self.db.execute(f"SELECT count(*) FROM predictions p WHERE {routed} AND NOT {answered}",
                               (labeler,)).fetchone()[0]
        reasons = dict(self.db.execute(
            f"SELECT r.value, count(*) FROM predictions p, json_each(p.reasons) r WHERE {routed}"
            f" AND NOT {answered} GROUP BY r.value ORDER BY count(*) DESC", (labeler,)))
        return {"done": done, "left": left, "by_reason": reasons}

    # -- the audit log ---------------------------------------------------------------------

    def audit(self, actor: str, action: str, item_id: str | None = None, before: Any = None, after: Any = None,
              detail: str | None = None) -> None:
        """Append one row to the audit log."""
        with self.transaction() as db:
            self._audit(db, utc_now(), actor, action, item_id, before, after, detail)

    @staticmethod
    def _audit(db: sqlite3.Connection, at: str, actor: str, action: str, item_id: str | None, before: Any,
               after: Any, detail: str | None = None) -> None:
        db.execute("INSERT INTO audit_log (at, actor, action, item_id, before, after, detail)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (at, actor, action, item_id, None if before is None else dumps(before),
                    None if after is None else dumps(after), detail))

    def audit_log(self, item_id: str | None = None) -> list[sqlite3.Row]:
        if item_id is None:
            return self.db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        return self.db.execute("SELECT * FROM audit_log WHERE item_id = ? ORDER BY id", (item_id,)).fetchall()
