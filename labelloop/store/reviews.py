"""The store's human side: reviewers and their tokens, and people's annotations (answers and experts'
adjudications, made here or imported from elsewhere) with undo and rework. A stale answer raises
:class:`~labelloop.errors.Conflict`. Every change writes its audit-log row. The queue that hands items to
people is :mod:`.queue`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from ..errors import Conflict
from ._base import StoreBase
from ._common import dumps, inserted_id, utc_now


class ReviewStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about people lives here (the audit log's own
    queries are in :class:`~labelloop.store.audit.AuditStore`)."""

    # -- reviewers -------------------------------------------------------------------------

    def add_reviewer(self, name: str, role: str, token_hash: str, actor: str) -> None:
        """Add a reviewer (or re-issue their token and role), with an audit-log row naming ``actor``."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO reviewers (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash,"
                " disabled = 0",
                (name, role, token_hash, utc_now()),
            )
            self._audit(db, utc_now(), actor, "reviewer-add", None, None, {"name": name, "role": role})

    def reviewer_by_token_hash(self, token_hash: str) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT name, role FROM reviewers WHERE token_hash = ? AND disabled = 0", (token_hash,)
        ).fetchone()

    def reviewer_role(self, name: str) -> str | None:
        row = self.db.execute("SELECT role FROM reviewers WHERE name = ? AND disabled = 0", (name,)).fetchone()
        return None if row is None else row[0]

    def reviewers(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT name, role, created_at, disabled FROM reviewers ORDER BY name").fetchall()

    # -- annotations -----------------------------------------------------------------------

    def add_annotation(
        self,
        item_id: str,
        annotator: str,
        output: dict[str, Any],
        action: str,
        prediction_id: int | None,
        before: Any = None,
        expected_version: int | None = None,
        *,
        kind: str = "answer",
        capacity: int = 1,
    ) -> int:
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
            annotation_id = inserted_id(
                db.execute(
                    "INSERT INTO annotations (item_id, annotator, output, action, prediction_id, created_at, kind)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (item_id, annotator, dumps(output), action, prediction_id, now, kind),
                )
            )
            self._audit(db, now, annotator, action, item_id, before, output)
        return annotation_id

    def add_imported_annotations(self, rows: list[dict[str, Any]], *, source: str, labeler: str) -> int:
        """Store annotations made elsewhere (keys: item_id, annotator, output, action, external_id) in one
        transaction; those imported before (same ``source`` and ``external_id``) are skipped. The count added."""
        with self.transaction() as db:
            return sum(self.insert_imported(db, source=source, labeler=labeler, **row) for row in rows)

    def insert_imported(
        self,
        db: sqlite3.Connection,
        *,
        item_id: str,
        annotator: str,
        output: dict[str, Any],
        external_id: str,
        labeler: str,
        action: str,
        source: str,
        detail: str | None = None,
    ) -> bool:
        """One imported answer inside the caller's transaction, with its audit row; False if seen before.

        The item's current prediction of ``labeler`` (if any) is linked and logged as the "before" value.
        """
        if db.execute(
            "SELECT 1 FROM annotations WHERE source = ? AND external_id = ?", (source, external_id)
        ).fetchone():
            return False
        now = utc_now()
        prediction = db.execute(
            "SELECT id, output FROM predictions WHERE item_id = ? AND labeler = ? AND is_current = 1",
            (item_id, labeler),
        ).fetchone()
        self._retire(db, item_id, annotator, "answer")
        db.execute(
            "INSERT INTO annotations (item_id, annotator, output, action, prediction_id, created_at,"
            " source, external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item_id,
                annotator,
                dumps(output),
                action,
                None if prediction is None else prediction["id"],
                now,
                source,
                external_id,
            ),
        )
        db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
        before = None if prediction is None or prediction["output"] is None else json.loads(prediction["output"])
        self._audit(db, now, annotator, action, item_id, before, output, detail=detail or f"{source} {external_id}")
        return True

    @staticmethod
    def _retire(db: sqlite3.Connection, item_id: str, annotator: str, kind: str) -> None:
        db.execute(
            "UPDATE annotations SET is_current = 0 WHERE item_id = ? AND annotator = ? AND kind = ? AND is_current = 1",
            (item_id, annotator, kind),
        )

    def _check_capacity(
        self, db: sqlite3.Connection, item_id: str, annotator: str, expected: int, capacity: int
    ) -> None:
        version = db.execute("SELECT review_version FROM items WHERE id = ?", (item_id,)).fetchone()
        if version is None or version[0] == expected:
            return
        others = db.execute(
            "SELECT count(*) FROM annotations WHERE item_id = ? AND is_current = 1"
            " AND kind = 'answer' AND annotator != ?",
            (item_id, annotator),
        ).fetchone()[0]
        if others >= capacity:
            latest = self.latest_annotation(item_id)
            raise Conflict(
                item_id,
                latest["annotator"] if latest else None,
                json.loads(latest["output"]) if latest else None,
                latest["created_at"] if latest else None,
            )

    def latest_annotation(self, item_id: str) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM annotations WHERE item_id = ? AND is_current = 1 ORDER BY id DESC LIMIT 1", (item_id,)
        ).fetchone()

    def review_version(self, item_id: str) -> int | None:
        row = self.db.execute("SELECT review_version FROM items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else row[0]

    def undo_last(self, annotator: str) -> str | None:
        """Withdraw ``annotator``'s latest current answer (restoring their previous one); the item id."""
        now = utc_now()
        with self.transaction() as db:
            last = db.execute(
                "SELECT * FROM annotations WHERE annotator = ? AND is_current = 1 AND source = 'labelloop'"
                " ORDER BY id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if last is None:
                return None
            db.execute("UPDATE annotations SET is_current = 0 WHERE id = ?", (last["id"],))
            db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (last["item_id"],))
            self._audit(db, now, annotator, "undo", last["item_id"], json.loads(last["output"]), None)
        return last["item_id"]

    def annotations(
        self, item_id: str | None = None, limit: int = 1000, annotator: str | None = None
    ) -> list[sqlite3.Row]:
        """Current annotations (all, or ``annotator``'s), or every annotation of one item, oldest first."""
        who = "" if annotator is None else " AND annotator = ?"
        params: tuple = () if annotator is None else (annotator,)
        if item_id is None:
            return self.db.execute(
                f"SELECT * FROM annotations WHERE is_current = 1{who} ORDER BY id LIMIT ?", (*params, limit)
            ).fetchall()
        return self.db.execute(
            f"SELECT * FROM annotations WHERE item_id = ?{who} ORDER BY id", (item_id, *params)
        ).fetchall()

    def current_answers(self) -> Iterator[sqlite3.Row]:
        """Every current answer (adjudications left out) with its item's source file, by item."""
        yield from self.db.execute(
            "SELECT a.item_id, a.annotator, a.output, a.source, a.created_at, i.source_file FROM annotations a"
            " JOIN items i ON i.id = a.item_id WHERE a.is_current = 1 AND a.kind = 'answer' ORDER BY i.seq, a.id"
        )

    def corrections(self, labeler: str) -> list[sqlite3.Row]:
        """People's current answers to items ``labeler`` answered, each with that answer (``model``)."""
        return self.db.execute(
            "SELECT a.item_id, a.annotator, a.output, p.output AS model FROM annotations a"
            " JOIN predictions p ON p.id = a.prediction_id WHERE a.is_current = 1 AND a.kind = 'answer'"
            " AND p.labeler = ? AND p.output IS NOT NULL ORDER BY a.id",
            (labeler,),
        ).fetchall()

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
                rows = db.execute(
                    "SELECT id, annotator, output FROM annotations WHERE item_id = ? AND is_current = 1"
                    " AND kind = 'answer'",
                    (item_id,),
                ).fetchall()
                for row in rows:
                    db.execute("UPDATE annotations SET is_current = 0 WHERE id = ?", (row["id"],))
                    self._audit(
                        db,
                        now,
                        actor,
                        "rework",
                        item_id,
                        json.loads(row["output"]),
                        None,
                        f"{row['annotator']}: {detail}",
                    )
                db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
                retired += len(rows)
        return retired
