"""The store's items: ingest (inserting new items, refusing ids reused with other content), reading items
back in ingest order, and the pending queries a labeling run starts from (items without a current answer
of a labeler, optionally leaving out items another labeler settled and members of duplicate groups)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import IdCollisionError
from ._common import dumps, utc_now
from .pii import PiiStore
from .records import Item

# Each condition is a scalar subquery ("(SELECT 1 … LIMIT 1) IS NULL") rather than NOT EXISTS: both databases
# then probe the item's index entry row by row. PostgreSQL turns NOT EXISTS into an anti-join planned from
# table statistics, and while a run is filling predictions and leases those lag far behind (a plan for 7
# rows met 3,000 and took 300 ms per claim of 1,000 items).
_PENDING = (
    "(SELECT 1 FROM predictions p WHERE p.item_id = items.id"
    " AND p.labeler = ? AND p.is_current = 1 AND p.job_key = ?"
    " AND p.item_hash = items.content_hash AND p.status != 'failed' LIMIT 1) IS NULL"
)
_SETTLED = (
    "(SELECT 1 FROM predictions s WHERE s.item_id = items.id"
    " AND s.labeler = ? AND s.is_current = 1 AND s.route = 'accepted' LIMIT 1) IS NULL"
)


_MEMBER = "(SELECT 1 FROM duplicates d WHERE d.item_id = items.id AND d.representative != items.id LIMIT 1) IS NULL"


class ItemStore(PiiStore):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about items (an item's PII findings are written
    with it, hence the base :class:`~labelloop.store.pii.PiiStore`)."""

    def add_items(self, items: Sequence[Item]) -> tuple[int, list[Item]]:
        """Insert new items inside the caller's transaction.

        Returns the number added and the items already present with the same content.
        Raises :class:`IdCollisionError` for an id that exists with other content.
        """
        existing = self.content_hashes(item.id for item in items)
        fresh: dict[str, Item] = {}
        repeats: list[Item] = []
        for item in items:
            known = existing.get(item.id) or (fresh[item.id].content_hash if item.id in fresh else None)
            if known is None:
                fresh[item.id] = item
            elif known == item.content_hash:
                repeats.append(item)
            else:
                raise IdCollisionError(
                    item.source_file or "?",
                    item.source_line,
                    f"id {item.id!r} already exists with different content",
                    field="id",
                )
        now = utc_now()
        self.db.executemany(
            "INSERT INTO items (id, text, fields, content_hash, source_file, source_line, ingested_at, original,"
            " cleaning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i.id,
                    i.text,
                    dumps(i.fields),
                    i.content_hash,
                    i.source_file,
                    i.source_line,
                    now,
                    i.prepared.original if i.prepared else None,
                    dumps(i.prepared.cleaning) if i.prepared and i.prepared.cleaning else None,
                )
                for i in fresh.values()
            ],
        )
        self._save_pii([i for i in fresh.values() if i.prepared is not None])
        return len(fresh), repeats

    def check_collisions(self, items: Sequence[Item]) -> list[tuple[Item, str]]:
        """Items whose id exists with other content, with the reason (used to skip bad lines)."""
        existing = self.content_hashes(item.id for item in items)
        return [
            (i, f"id {i.id!r} already exists with different content")
            for i in items
            if i.id in existing and existing[i.id] != i.content_hash
        ]

    def fields_present(self, names: list[str]) -> set[str]:
        """Which of ``names`` are a field of at least one item."""
        marks = ",".join("?" * len(names))
        keys = "json_each(items.fields::json)" if self.dialect == "postgresql" else "json_each(items.fields)"
        return {
            row[0]
            for row in self.db.execute(f"SELECT DISTINCT j.key FROM items, {keys} j WHERE j.key IN ({marks})", names)
        }

    def count_items(self) -> int:
        return self.db.execute("SELECT count(*) FROM items").fetchone()[0]

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are items of this project."""
        return set(self._item_column(ids, "id"))

    def item_texts(self, ids: Iterable[str]) -> dict[str, str]:
        """The text of each of ``ids`` that is an item of this project."""
        return self._item_column(ids, "text")

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        return self._item_column(ids, "content_hash")

    def all_texts(self) -> list[tuple[str, str]]:
        """(id, text) of every item, in ingest order."""
        return [(row[0], row[1]) for row in self.db.execute("SELECT id, text FROM items ORDER BY seq")]

    # -- reading items in ingest order ----------------------------------------------------

    def iter_items(self, chunk: int = 1000) -> Iterator[Item]:
        """Every item in ingest order, read in chunks."""
        yield from self._iter_items_where("", (), chunk)

    def first_item(self) -> Item | None:
        return next(self._iter_items_where("", (), 1), None)

    def iter_pending(
        self,
        labeler: str,
        job_key: str,
        chunk: int = 1000,
        settled_by: str | None = None,
        representatives_only: bool = False,
    ) -> Iterator[Item]:
        """Items without a current, finished prediction of ``labeler`` for this job and content (with
        ``settled_by``, also without an accepted prediction of that labeler; with ``representatives_only``,
        not a non-representative member of a duplicate group)."""
        where, extra = pending_condition(settled_by, representatives_only)
        yield from self._iter_items_where("AND " + where, (labeler, job_key, *extra), chunk)

    def count_pending(
        self, labeler: str, job_key: str, settled_by: str | None = None, representatives_only: bool = False
    ) -> int:
        where, extra = pending_condition(settled_by, representatives_only)
        return self.db.execute(f"SELECT count(*) FROM items WHERE {where}", (labeler, job_key, *extra)).fetchone()[0]

    def count_settled(self, labeler: str) -> int:
        """Items ``labeler`` (e.g. the small model) settled: its current prediction is accepted."""
        return self.db.execute(
            "SELECT count(*) FROM predictions WHERE labeler = ? AND is_current = 1 AND route = 'accepted'", (labeler,)
        ).fetchone()[0]

    def _iter_items_where(self, where: str, params: tuple, chunk: int) -> Iterator[Item]:
        last = 0
        while True:
            rows = self.db.execute(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE seq > ? {where} ORDER BY seq LIMIT ?", (last, *params, chunk)
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield item_of_row(row)
            last = rows[-1]["seq"]


ITEM_COLUMNS = "seq, id, text, fields, content_hash, source_file, source_line"


def item_of_row(row: Any) -> Item:
    """The :class:`Item` of a row holding :data:`ITEM_COLUMNS`."""
    return Item(
        row["id"], row["text"], json.loads(row["fields"]), row["content_hash"], row["source_file"], row["source_line"]
    )


def pending_condition(settled_by: str | None, representatives_only: bool) -> tuple[str, tuple[str, ...]]:
    """The pending condition and its extra parameters (items another labeler settled, and duplicates that
    will inherit their representative's label, are left out)."""
    where = _PENDING + (f" AND {_MEMBER}" if representatives_only else "")
    return (where, ()) if settled_by is None else (f"{where} AND {_SETTLED}", (settled_by,))
