"""Copy a project's store to another database (SQLite to PostgreSQL, or back) and prove the copy whole.

Every table is copied in one transaction on the target, parents before children so the target's foreign keys
hold at every row; ids are kept (and PostgreSQL's identity sequences moved past them). The proof is per table:
the row count and a content hash on both sides. The hash is order-free (the sum of the rows' SHA-256 digests,
modulo 2²⁵⁶), because the two databases sort text differently; a row's digest covers every column's value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ProjectError
from ._base import StoreBase

# parents first: a table comes after every table its foreign keys point to
TABLES = [
    "prompts",
    "items",
    "runs",
    "llm_calls",
    "predictions",
    "annotations",
    "audit_log",
    "reviewers",
    "labelstudio_tasks",
    "assignments",
    "gold",
    "aggregations",
    "embeddings",
    "models",
    "duplicates",
    "pii_findings",
    "pii_vault",
    "pii_key",
    "leases",
    "review_claims",
    "sources",
    "test_questions",
    "test_answers",
    "documents",
    "paragraphs",
]
NOT_COPIED = {"migrations"}  # each database records its own (the same names, checked)
_BATCH = 2000


@dataclass(frozen=True)
class TableCopy:
    """One table's proof: rows and content hash, on the source and on the target."""

    table: str
    source_rows: int
    target_rows: int
    source_hash: str
    target_hash: str

    @property
    def same(self) -> bool:
        return self.source_rows == self.target_rows and self.source_hash == self.target_hash


def table_names(store: StoreBase) -> set[str]:
    if store.dialect == "postgresql":
        rows = store.db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE'"
        )
    else:
        rows = store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {row[0] for row in rows}


def _columns(store: StoreBase, table: str) -> list[str]:
    cursor = store.db.execute(f"SELECT * FROM {table} LIMIT 0")
    return [column[0] for column in cursor.description]


def _digest(row: tuple) -> int:
    values = [value.hex() if isinstance(value, bytes | bytearray | memoryview) else value for value in row]
    encoded = json.dumps(values, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return int.from_bytes(hashlib.sha256(encoded).digest(), "big")


def content_hash(store: StoreBase, table: str, columns: list[str]) -> tuple[int, str]:
    """(rows, order-free content hash) of ``table`` over ``columns``."""
    quoted = ", ".join(f'"{column}"' for column in columns)
    total, rows = 0, 0
    for row in store.db.execute(f"SELECT {quoted} FROM {table}"):
        total = (total + _digest(tuple(row))) % (1 << 256)
        rows += 1
    return rows, f"{total:064x}"


def _move_identities(db: Any, table: str, columns: list[str]) -> None:
    """Set PostgreSQL's identity sequences of ``table`` past the copied ids, so new rows do not collide."""
    for column in columns:
        sequence = db.execute("SELECT pg_get_serial_sequence(?, ?)", (table, column)).fetchone()[0]
        if sequence is not None:
            db.execute(f'SELECT setval(?, coalesce(max("{column}"), 0) + 1, false) FROM {table}', (sequence,))


def copy_store(
    source: StoreBase, target: StoreBase, progress: Callable[[str, int], None] | None = None
) -> list[TableCopy]:
    """Copy every table of ``source`` into the empty ``target``; the per-table proof. Raises (and keeps
    nothing) if the target already holds items, if the two schemas differ, if a table the copy does not know
    exists, or if any table's count or hash differs after the copy."""
    unknown = table_names(source) - set(TABLES) - NOT_COPIED
    if unknown:
        raise ProjectError(f"{source.path}: tables this version cannot copy: {', '.join(sorted(unknown))}")
    mine = [row[0] for row in source.db.execute("SELECT name FROM migrations ORDER BY name")]
    theirs = [row[0] for row in target.db.execute("SELECT name FROM migrations ORDER BY name")]
    if mine != theirs:
        raise ProjectError(f"{target.path}: its schema differs from {source.path}'s; open both with one version")
    if target.db.execute("SELECT count(*) FROM items").fetchone()[0]:
        raise ProjectError(f"{target.path}: already holds items; copy into an empty database")
    plan = {table: _columns(source, table) for table in TABLES}
    for table, columns in plan.items():
        if _columns(target, table) != columns:
            raise ProjectError(f"{target.path}: table {table} has other columns than in {source.path}")
    with target.transaction() as db:
        for table, columns in plan.items():
            quoted = ", ".join(f'"{column}"' for column in columns)
            insert = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})"
            cursor = source.db.execute(f"SELECT {quoted} FROM {table}")
            copied = 0
            while batch := cursor.fetchmany(_BATCH):
                db.executemany(insert, [tuple(row) for row in batch])
                copied += len(batch)
                if progress is not None:
                    progress(table, copied)
            if target.dialect == "postgresql":
                _move_identities(db, table, columns)
        proofs = []  # checked before the commit (the target's reads see its own writes): a bad copy is undone
        for table, columns in plan.items():
            source_rows, source_hash = content_hash(source, table, columns)
            target_rows, target_hash = content_hash(target, table, columns)
            proofs.append(TableCopy(table, source_rows, target_rows, source_hash, target_hash))
        differ = [proof.table for proof in proofs if not proof.same]
        if differ:
            raise ProjectError(f"{target.path}: the copy differs from the source in {', '.join(differ)}; nothing kept")
    return proofs
