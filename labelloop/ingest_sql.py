"""Ingest from a database: the rows of a query become items, incrementally and resumably.

``labelloop ingest --from-sql URL --query "SELECT id, text, updated_at FROM tickets" --since-column updated_at``
reads the rows (through SQLAlchemy: PostgreSQL, MySQL, SQLite, …) in chunks, in ``since`` order, from the
source's stored watermark on (``>=``: rows that share the watermark's value are read again, and rows whose
content is unchanged add nothing). Each chunk commits with its items and the watermark it reached, so a crash
or Ctrl-C loses nothing and a rerun goes on from there. A row whose id is known but whose content changed
replaces the item's text (see :mod:`labelloop.store.sources`), and the item is labeled and reviewed again.
Rows are cleaned and masked as the spec says, like a file's records; the ``since`` column is not a field.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._actor import actor_or_default
from .errors import InputError
from .ingest import to_item
from .prepare import Preparer
from .readers import Record
from .spec import TaskSpec
from .store import Item, Store, redact
from .store.external import source_rows

CHUNK = 1000


@dataclass
class SqlIngestResult:
    """What one pass over a database source did."""

    source: str
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    watermark: str | None = None


def ingest_sql(
    store: Store,
    spec: TaskSpec,
    url: str,
    query: str,
    *,
    since_column: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    chunk: int = CHUNK,
    actor: str | None = None,
) -> SqlIngestResult:
    """Add the rows of ``query`` on the database at ``url`` (a SQLAlchemy URL) as items; with ``since_column``,
    only rows at or after the stored watermark, in that column's order."""
    text_field = text_field or spec.input.text_field
    id_field = id_field or spec.input.id_field or "id"
    source, shown = f"{redact(url)} {query}", redact(url)
    result = SqlIngestResult(source)
    start = _decode(store.watermark(source)) if since_column else None
    preparer = Preparer(spec, store) if (spec.clean or spec.pii) else None
    prepare = preparer if preparer is not None and preparer.active else None
    who = actor_or_default(actor)
    with source_rows(url, query, since_column=since_column, since=start, chunk=chunk) as (columns, parts):
        for name in (text_field, id_field, *([since_column] if since_column else [])):
            if name not in columns:
                raise InputError(shown, None, f"the query has no column {name!r} (it has {', '.join(columns)})")
        line = 0
        for part in parts:
            items = []
            for row in part:
                line += 1
                data = {key: _plain(value) for key, value in zip(columns, row, strict=True)}
                if since_column:
                    data.pop(since_column)
                made = to_item(Record(line, data, json.dumps(data, default=str)), shown, text_field, id_field, prepare)
                if isinstance(made, InputError):
                    raise made
                if isinstance(made, Item):
                    items.append(made)
                mark = row[columns.index(since_column)] if since_column else None
                if mark is not None:
                    result.watermark = _encode(mark)
            _store_chunk(store, items, source, result, who)
    store.refresh_statistics()
    store.audit(who, "ingest", detail=json.dumps({"source": source, **_counts(result)}, ensure_ascii=False))
    return result


def _store_chunk(store: Store, items: list[Item], source: str, result: SqlIngestResult, actor: str) -> None:
    latest = {item.id: item for item in items}  # a row read twice in one chunk: its last version
    known = store.content_hashes(latest)
    fresh = [item for item in latest.values() if item.id not in known]
    changed = [item for item in latest.values() if item.id in known and known[item.id] != item.content_hash]
    with store.transaction() as db:
        store.add_items(fresh)
        store.replace_items(db, changed, actor)
        if result.watermark is not None:
            store.set_watermark(db, source, result.watermark)
    result.added += len(fresh)
    result.changed += len(changed)
    result.unchanged += len(latest) - len(fresh) - len(changed)


def _counts(result: SqlIngestResult) -> dict[str, Any]:
    return {"added": result.added, "changed": result.changed, "unchanged": result.unchanged}


def _plain(value: Any) -> Any:
    """A column's value as JSON can hold it."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _encode(value: Any) -> str:
    """A watermark, typed, so that it binds back as what the column holds."""
    if isinstance(value, dt.datetime):
        return json.dumps({"type": "datetime", "value": value.isoformat()})
    if isinstance(value, dt.date):
        return json.dumps({"type": "date", "value": value.isoformat()})
    if isinstance(value, Decimal):
        return json.dumps({"type": "decimal", "value": str(value)})
    if value is None or isinstance(value, int | float | str):
        return json.dumps({"type": "plain", "value": value})
    raise InputError("--since-column", None, f"cannot keep a watermark of type {type(value).__name__}")


def _decode(stored: str | None) -> Any:
    if stored is None:
        return None
    data = json.loads(stored)
    kind, value = data["type"], data["value"]
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return Decimal(value) if kind == "decimal" else value
