"""Database sources of items: each source's watermark, and items whose text changed at the source.

A changed item keeps its id; its new text replaces the old (which stays in the audit log), its review version
moves on, and people's answers to the old text stop counting (they stay as history, no longer current), as
does any gold decided from them. Its predictions stay too: the old content hash makes the item pending again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ._common import dumps, utc_now
from .items import ItemStore
from .records import Item


class SourceStore(ItemStore):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about sources and changed items."""

    def watermark(self, source: str) -> str | None:
        row = self.db.execute("SELECT watermark FROM sources WHERE name = ?", (source,)).fetchone()
        return None if row is None else row[0]

    def set_watermark(self, db: sqlite3.Connection, source: str, watermark: str) -> None:
        """Inside the caller's transaction, with the items of the chunk that reached it."""
        db.execute(
            "INSERT INTO sources (name, watermark, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark, updated_at = excluded.updated_at",
            (source, watermark, utc_now()),
        )

    def replace_items(self, db: sqlite3.Connection, items: Sequence[Item], actor: str) -> None:
        """New content for existing items (inside the caller's transaction), each with an audit row."""
        now = utc_now()
        before = self._item_column((item.id for item in items), "text")
        for item in items:
            db.execute(
                "UPDATE items SET text = ?, fields = ?, content_hash = ?, review_version = review_version + 1,"
                " changed_at = ? WHERE id = ?",
                (item.text, dumps(item.fields), item.content_hash, now, item.id),
            )
            db.execute("UPDATE annotations SET is_current = 0 WHERE item_id = ? AND is_current = 1", (item.id,))
            db.execute("DELETE FROM gold WHERE item_id = ?", (item.id,))
            self._audit(db, now, actor, "item-changed", item.id, {"text": before.get(item.id)}, {"text": item.text})

    def sources(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.db.execute("SELECT * FROM sources ORDER BY name")]
