"""The project store: one SQLite file (WAL) by default, or a PostgreSQL database named by URL. Every read and
write of project data lives here, in one SQL for both (see :mod:`~labelloop.store._postgres`).

:class:`Store` is the one facade; each concern is a class of its own module (items and ingest, runs and
predictions, reviews, the review queue, the audit log, gold, learning, PII, Label Studio), all deriving from
:class:`~labelloop.store._base.StoreBase`, which holds the connection and opens transactions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import Conflict, ProjectError
from ._common import utc_now
from ._postgres import PgConnection, is_url, redact
from .adopt import AdoptStore
from .audit import AuditStore
from .claims import ClaimStore
from .copy import TableCopy, copy_store
from .counts import CountStore
from .documents import DocumentStore
from .gold import GoldStore
from .items import ItemStore
from .known_answers import KnownAnswerStore
from .labelstudio import LabelStudioStore
from .learn import LearnStore
from .leases import LeaseStore
from .migrations import MIGRATIONS, apply_migrations
from .pii import PiiStore
from .queue import Need, QueueStore
from .records import CallRecord, Item, PredictionRecord, RunCounts
from .report import ReportStore
from .reviews import ReviewStore
from .runs import RunStore, process_alive
from .sources import SourceStore

__all__ = [
    "Store",
    "Item",
    "CallRecord",
    "PredictionRecord",
    "RunCounts",
    "Conflict",
    "Need",
    "MIGRATIONS",
    "utc_now",
    "process_alive",
    "is_url",
    "redact",
    "TableCopy",
    "copy_store",
]


class Store(
    RunStore,
    CountStore,
    ClaimStore,
    SourceStore,
    LeaseStore,
    ItemStore,
    PiiStore,
    LabelStudioStore,
    ReviewStore,
    QueueStore,
    AuditStore,
    GoldStore,
    LearnStore,
    ReportStore,
    AdoptStore,
    KnownAnswerStore,
    DocumentStore,
):
    """A project's database. Open with :meth:`open`; close with :meth:`close`."""

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) the database at ``path`` (a SQLite file, or a ``postgresql://`` URL)
        and bring its schema up to date."""
        if isinstance(path, str) and is_url(path):
            pg = PgConnection(path)
            apply_migrations(pg)  # type: ignore[arg-type]  # PgConnection speaks like sqlite3.Connection
            return cls(pg, redact(path))  # type: ignore[arg-type]
        path = Path(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise ProjectError(f"{path}: cannot open the project database ({exc})") from None
        db.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
            db.execute(f"PRAGMA {pragma}")
        apply_migrations(db)
        return cls(db, path)

    def reopen(self) -> Store:
        """A second connection to the same database (for a thread of its own: the engine's writer)."""
        return Store.open(self.db.url if self.dialect == "postgresql" else Path(self.path))  # type: ignore[attr-defined]

    def import_labeled(self, run_id: int, items: list[Item], predictions: list[PredictionRecord]) -> int:
        """Add items labeled elsewhere (by the Ray runner) with their predictions and calls, in one transaction;
        how many items were new."""
        with self.transaction() as db:
            added, _ = self.add_items(items)
            self._save_in(db, run_id, predictions, None)
        return added

    def refresh_statistics(self) -> None:
        """After a bulk change (an ingest, a labeling run): PostgreSQL's planner statistics brought up to date
        now rather than when autovacuum gets to it (plans made for empty tables read every row one by one)."""
        if self.dialect == "postgresql":
            self.db.execute("ANALYZE")

    def close(self) -> None:
        self.db.close()
