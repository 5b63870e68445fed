"""Pure helpers shared by the store's modules (no connection needed): the UTC timestamp every row
carries, the compact JSON the store writes, splitting long id lists into chunks for ``IN (...)``, and
the id of the row an INSERT wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def chunks(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def inserted_id(cursor: Any) -> int:
    """The id of the row that ``cursor``'s ``INSERT … RETURNING id`` wrote (the same SQL on both databases)."""
    row = cursor.fetchone()
    assert row is not None, "not the cursor of an INSERT … RETURNING id"
    return int(row[0])
