"""Move a project's data to another database: ``labelloop migrate-store --to postgresql://…``.

The copy (:func:`~labelloop.store.copy_store`) is all or nothing and proves itself table by table (rows and a
content hash on both sides); the source is only read. The target records the move in its audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._actor import actor_or_default
from .store import Store, TableCopy, copy_store, is_url, redact


@dataclass(frozen=True)
class Relocation:
    """Where the data went, and each table's proof."""

    source: str
    target: str
    tables: list[TableCopy]

    @property
    def rows(self) -> int:
        return sum(table.target_rows for table in self.tables)


def relocate(
    store: Store, to: str | Path, *, actor: str | None = None, progress: Callable[[str, int], None] | None = None
) -> Relocation:
    """Copy ``store`` into the empty database ``to`` (a ``postgresql://`` URL or a SQLite file)."""
    target = Store.open(to if isinstance(to, str) and is_url(to) else Path(to))
    try:
        tables = copy_store(store, target, progress)
        shown = redact(str(to))
        target.audit(actor_or_default(actor), "migrate-store", detail=f"copied from {store.path} to {shown}")
        return Relocation(str(store.path), shown, tables)
    finally:
        target.close()
