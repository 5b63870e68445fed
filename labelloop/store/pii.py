"""The store's PII vault: the project's key record (salt and check token), where each detector fired in
an item (offsets and type, never the value) and the sealed originals of masked items. Ingest writes
them through :meth:`~labelloop.store.items.ItemStore.add_items`; ``labelloop pii`` reads them back."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ._base import StoreBase
from .records import Item


class PiiStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about PII findings and the vault."""

    def pii_key(self) -> sqlite3.Row | None:
        return self.db.execute("SELECT salt, check_token FROM pii_key WHERE id = 1").fetchone()

    def save_pii_key(self, salt: bytes, check_token: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO pii_key (id, salt, check_token) VALUES (1, ?, ?)", (salt, check_token))

    def pii_entry(self, item_id: str) -> tuple[bytes | None, list[sqlite3.Row]]:
        """An item's sealed original (if any) and where PII was found in it."""
        sealed = self.db.execute("SELECT sealed FROM pii_vault WHERE item_id = ?", (item_id,)).fetchone()
        findings = self.db.execute(
            'SELECT type, start, "end", detector, action FROM pii_findings WHERE item_id = ? ORDER BY start', (item_id,)
        ).fetchall()
        return (sealed[0] if sealed else None), findings

    def _save_pii(self, items: Sequence[Item]) -> None:
        """Where each detector fired (offsets and type, never the value) and the sealed originals."""
        self.db.executemany(
            'INSERT INTO pii_findings (item_id, type, start, "end", detector, action) VALUES (?, ?, ?, ?, ?, ?)',
            [(i.id, f.type, f.start, f.end, f.detector, action) for i in items for f, action in i.prepared.findings],
        )
        self.db.executemany(
            "INSERT INTO pii_vault (item_id, sealed) VALUES (?, ?)",
            [(i.id, i.prepared.sealed) for i in items if i.prepared.sealed is not None],
        )
