"""The base of every part of the store: :class:`StoreBase` holds the connection (SQLite, or PostgreSQL
through :class:`~labelloop.store._postgres.PgConnection`) and where the database is, opens write
transactions, and carries the private helpers more than one part uses (the audit-log insert and the lookup
of one column of items by id). Each concern's class derives from it, and :class:`~labelloop.store.Store`
brings them together."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._common import chunks, dumps


def begin_write(db: sqlite3.Connection) -> None:
    """Start a write transaction that waits for other writers: ``BEGIN IMMEDIATE`` on SQLite, an advisory
    lock on PostgreSQL (see :mod:`~labelloop.store._postgres`)."""
    if isinstance(db, sqlite3.Connection):
        db.execute("BEGIN IMMEDIATE")
    else:
        db.begin_write()


class StoreBase:
    """A project's connection (``db``), its dialect (``sqlite`` or ``postgresql``) and where it lives
    (``path``: the SQLite file, or the PostgreSQL URL without its password)."""

    def __init__(self, db: sqlite3.Connection, path: Path | str):
        self.db, self.path = db, path
        self.dialect = getattr(db, "dialect", "sqlite")

    @contextmanager
    def transaction(self, *, queue: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all. It waits for the
        project's other writers; with ``queue=False`` on PostgreSQL it does not, for work that passes other
        writers by row locks instead (claiming leases with ``SKIP LOCKED``)."""
        if queue or self.dialect != "postgresql":
            begin_write(self.db)
        else:
            self.db.execute("BEGIN")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @staticmethod
    def _audit(
        db: sqlite3.Connection,
        at: str,
        actor: str,
        action: str,
        item_id: str | None,
        before: Any,
        after: Any,
        detail: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO audit_log (at, actor, action, item_id, before, after, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                at,
                actor,
                action,
                item_id,
                None if before is None else dumps(before),
                None if after is None else dumps(after),
                detail,
            ),
        )

    def _item_column(self, ids: Iterable[str], column: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in chunks(list(dict.fromkeys(ids)), 500):
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT id, {column} FROM items WHERE id IN ({marks})", chunk).fetchall())
        return found
