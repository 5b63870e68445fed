"""The store's audit log: appending a row on its own (for actions that change nothing else, such as an
export) and reading rows back, filtered or by item. Changes that touch other tables write their audit row
inside their own transaction with :meth:`~labelloop.store._base.StoreBase._audit`."""

from __future__ import annotations

import sqlite3
from typing import Any

from ._base import StoreBase
from ._common import utc_now


class AuditStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; the audit log's queries."""

    def audit(
        self,
        actor: str,
        action: str,
        item_id: str | None = None,
        before: Any = None,
        after: Any = None,
        detail: str | None = None,
    ) -> None:
        """Append one row to the audit log."""
        with self.transaction() as db:
            self._audit(db, utc_now(), actor, action, item_id, before, after, detail)

    def audit_rows(
        self, *, action: str | None = None, actor: str | None = None, item_id: str | None = None, limit: int = 50
    ) -> list[sqlite3.Row]:
        """The newest audit-log rows matching every filter given."""
        where, params = [], []
        for column, value in (("action", action), ("actor", actor), ("item_id", item_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.db.execute(f"SELECT * FROM audit_log{clause} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()

    def audit_log(self, item_id: str | None = None) -> list[sqlite3.Row]:
        if item_id is None:
            return self.db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        return self.db.execute("SELECT * FROM audit_log WHERE item_id = ? ORDER BY id", (item_id,)).fetchall()
