"""Calls written outside a labeling run's predictions: answers adopted from another project's call log, and
calls that answer no item's task (the guideline digest's proposals).

``compare`` labels gold items in a store of their own, and the project may already have asked the same model
the same prompt about the same texts. Those calls are read whole from the project's log and copied into the
gold store's, as calls of the run that serves them, so each prediction there points at a call of its own store
and the project's answers cost nothing again."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import StoreBase
from ._common import chunks, dumps, inserted_id, utc_now

_COLUMNS = ("item_id, cache_key, backend, model, prompt_version, request, response, output_text, status_code, error,"
            " attempt, latency_ms, prompt_tokens, completion_tokens, created_at, endpoint")  # fmt: skip
_NAMES = [c.strip() for c in _COLUMNS.split(",")]
_INSERT = f"INSERT INTO llm_calls (run_id, {_COLUMNS}) VALUES (?, {', '.join('?' * len(_NAMES))}) RETURNING id"


class AdoptStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; reading calls to copy, and copying them in."""

    def record_calls(self, run_id: int, calls: Sequence[Any]) -> None:
        """Log ``calls`` (CallRecords) as calls of run ``run_id``."""
        now = utc_now()
        with self.transaction() as db:
            for call in calls:
                values = {**vars(call), "request": dumps(call.request), "created_at": now}
                db.execute(_INSERT, (run_id, *(values[n] for n in _NAMES))).fetchone()

    def calls_to_adopt(self, cache_keys: Iterable[str]) -> dict[str, sqlite3.Row]:
        """The newest successful call for each cache key that has one, every column, with its item's content
        hash (``content_hash``)."""
        found: dict[str, sqlite3.Row] = {}
        for chunk in chunks(list(cache_keys), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT c.id, {', '.join('c.' + n for n in _NAMES)}, i.content_hash"
                f" FROM llm_calls c JOIN items i ON i.id = c.item_id"
                f" WHERE c.error IS NULL AND c.cache_key IN ({marks}) ORDER BY c.id",
                chunk,
            ):
                found[row["cache_key"]] = row
        return found

    def adopt_calls(self, run_id: int, rows: Sequence[Any]) -> dict[str, int]:
        """Copy another store's call rows (from :meth:`calls_to_adopt`) into this log as calls of run ``run_id``,
        each given to this store's item of the same content; their new ids by cache key. A row whose item or
        prompt version this store lacks is left out (the answer is then asked for again)."""
        hashes = list({row["content_hash"] for row in rows})
        items: dict[str, str] = {}
        for chunk in chunks(hashes, 500):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT content_hash, min(id) FROM items WHERE content_hash IN ({marks}) GROUP BY content_hash"
            items.update(self.db.execute(query, chunk).fetchall())
        versions = {r[0] for r in self.db.execute("SELECT version FROM prompts")}
        adopted: dict[str, int] = {}
        with self.transaction() as db:
            for row in rows:
                if row["content_hash"] not in items or row["prompt_version"] not in versions:
                    continue
                values = [items[row["content_hash"]] if n == "item_id" else row[n] for n in _NAMES]
                adopted[row["cache_key"]] = inserted_id(db.execute(_INSERT, (run_id, *values)))
        return adopted
