"""Leases: several labeling processes share one project's pending items without calling any item twice.

A worker (one ``label`` run) claims a chunk of pending items nobody else holds, renews its leases while it
works, and gives each one up in the transaction that saves the item's prediction. A lease that is not renewed
expires, and its items go back to the pool for the next claim. On SQLite a claim runs under ``BEGIN IMMEDIATE``
(claims queue); on PostgreSQL claims run side by side, skipping each other's rows (``FOR UPDATE SKIP
LOCKED``), and the lease upsert takes only rows whose lease is free or expired, so two claims never share one.
"""

from __future__ import annotations

import socket
import time

from .items import ITEM_COLUMNS, ItemStore, item_of_row, pending_condition
from .records import Item

WINDOW = 2048  # items of ingest order a claim looks at per query


class LeaseStore(ItemStore):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about leases and live workers."""

    def claim(
        self,
        run_id: int,
        labeler: str,
        job_key: str,
        limit: int,
        seconds: float,
        *,
        after: int = 0,
        settled_by: str | None = None,
        representatives_only: bool = False,
    ) -> list[tuple[int, Item]]:
        """Lease up to ``limit`` pending items (in ingest order, past ``after``) that no live lease holds and
        this run has not tried yet, for ``seconds``; (seq, item) of those this run now holds. Empty only when
        no such item is left: a claim that lost every row it read to another one that committed meanwhile (on
        PostgreSQL, a row locked by a claim that commits while this one reads passes this one's filter, read
        before that commit) reads again, and the rows just leased are no longer among what it reads."""
        where, extra = pending_condition(settled_by, representatives_only)
        postgres = self.dialect == "postgresql"
        while True:  # until this claim wins a row or finds none to read
            now = time.time()
            with self.transaction(queue=False) as db:  # claims pass each other by SKIP LOCKED
                last = db.execute("SELECT coalesce(max(seq), 0) FROM items").fetchone()[0]
                rows: list = []
                start = after
                while len(rows) < limit and start < last:  # a window of ingest order at a time: bounded work
                    end = start + WINDOW
                    rows += db.execute(
                        f"SELECT {ITEM_COLUMNS} FROM items WHERE seq > ? AND seq <= ? AND {where}"
                        " AND (SELECT 1 FROM leases l WHERE l.item_id = items.id AND l.labeler = ?"
                        "   AND (l.expires_at > ? OR l.run_id = ?) LIMIT 1) IS NULL"
                        " AND (SELECT 1 FROM predictions t WHERE t.item_id = items.id AND t.labeler = ?"
                        "   AND t.is_current = 1 AND t.run_id = ? LIMIT 1) IS NULL"
                        " ORDER BY seq LIMIT ?" + (" FOR UPDATE OF items SKIP LOCKED" if postgres else ""),
                        (start, end, labeler, job_key, *extra, labeler, now, run_id, labeler, run_id,
                         limit - len(rows)),
                    ).fetchall()  # fmt: skip
                    start = end
                if not rows:
                    return []
                upsert = (
                    "INSERT INTO leases (item_id, labeler, run_id, expires_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (item_id, labeler) DO UPDATE SET run_id = excluded.run_id,"
                    " expires_at = excluded.expires_at WHERE leases.expires_at <= ?"
                )
                if postgres:  # one statement for the chunk; RETURNING says which leases this claim won
                    won = {
                        row[0]
                        for row in db.execute(
                            "INSERT INTO leases (item_id, labeler, run_id, expires_at)"
                            " SELECT unnest(?::text[]), ?, ?, ?"
                            " ON CONFLICT (item_id, labeler) DO UPDATE SET run_id = excluded.run_id,"
                            " expires_at = excluded.expires_at WHERE leases.expires_at <= ? RETURNING item_id",
                            ([row["id"] for row in rows], labeler, run_id, now + seconds, now),
                        )
                    }
                else:  # claims queue under BEGIN IMMEDIATE: every row read is free
                    db.executemany(upsert, [(row["id"], labeler, run_id, now + seconds, now) for row in rows])
                    won = {row["id"] for row in rows}
            if won:
                return [(row["seq"], item_of_row(row)) for row in rows if row["id"] in won]
            # every row it read went to a claim that committed while this one read: read again

    def renew(self, run_id: int, seconds: float) -> int:
        """Extend every lease of ``run_id`` and record its heartbeat; how many leases it holds."""
        now = time.time()
        with self.transaction() as db:
            db.execute("UPDATE runs SET heartbeat_at = ?, host = ? WHERE id = ?", (now, socket.gethostname(), run_id))
            return db.execute("UPDATE leases SET expires_at = ? WHERE run_id = ?", (now + seconds, run_id)).rowcount

    def release(self, run_id: int) -> None:
        """Give up every lease of ``run_id`` (its items go back to the pool at once)."""
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))

    def leases_held_by_others(self, run_id: int, labeler: str) -> int:
        """Live leases of ``labeler``'s items held by other runs."""
        return self.db.execute(
            "SELECT count(*) FROM leases WHERE labeler = ? AND run_id != ? AND expires_at > ?",
            (labeler, run_id, time.time()),
        ).fetchone()[0]

    def workers(self, within: float = 120.0) -> list[dict[str, object]]:
        """Runs still labeling (a heartbeat in the last ``within`` seconds): who, where, how fast, what held."""
        now = time.time()
        rows = self.db.execute(
            "SELECT r.id, r.labeler, r.host, r.pid, r.started_at, r.heartbeat_at, r.items_done, r.items_failed,"
            " r.calls, (SELECT count(*) FROM leases l WHERE l.run_id = r.id AND l.expires_at > ?) AS leases"
            " FROM runs r WHERE r.status = 'running' AND r.heartbeat_at > ? ORDER BY r.id",
            (now, now - within),
        ).fetchall()
        return [dict(row) for row in rows]
