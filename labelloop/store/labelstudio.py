"""SQL of the Label Studio bridge: which items were pushed as tasks, and annotations imported from it.

Imported annotations carry ``source = 'labelstudio'`` and the Label Studio annotation id as
``external_id``; the unique index on (source, external_id) makes every import idempotent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from . import Store
from ._common import chunks, dumps, utc_now

SOURCE = "labelstudio"

_ITEM_WITH_PREDICTION = (
    "SELECT i.seq, i.id, i.text, p.output, p.model, p.prompt_version, p.confidence"
    " FROM items i LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?")


def items_with_predictions(store: Store, labeler: str, chunk: int = 1000) -> Iterator[sqlite3.Row]:
    """Every item in ingest order with its current prediction of ``labeler`` (NULL columns if none)."""
    last = 0
    while rows := store.db.execute(f"{_ITEM_WITH_PREDICTION} WHERE i.seq > ? ORDER BY i.seq LIMIT ?",
                                   (labeler, last, chunk)).fetchall():
        yield from rows
        last = rows[-1]["seq"]


def unpushed_review_items(store: Store, labeler: str, ls_url: str, ls_project_id: int) -> list[sqlite3.Row]:
    """Items whose current prediction needs review, that no person has answered and that are not
    yet tasks of this Label Studio project, in ingest order."""
    return store.db.execute(
        f"{_ITEM_WITH_PREDICTION} WHERE p.route = 'needs_review'"
        " AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id AND a.is_current = 1)"
        " AND NOT EXISTS (SELECT 1 FROM labelstudio_tasks t WHERE t.item_id = i.id AND t.ls_url = ?"
        "   AND t.ls_project_id = ?) ORDER BY i.seq", (labeler, ls_url, ls_project_id)).fetchall()


def pushed_items(store: Store, ls_url: str, ls_project_id: int) -> dict[str, int]:
    """Item id -> Label Studio task id, for the tasks recorded for this server and project."""
    return dict(store.db.execute("SELECT item_id, ls_task_id FROM labelstudio_tasks"
                                 " WHERE ls_url = ? AND ls_project_id = ?", (ls_url, ls_project_id)).fetchall())


def record_pushed(store: Store, ls_url: str, ls_project_id: int, pairs: Iterable[tuple[str, int]]) -> None:
    """Record (item id, task id) pairs as tasks of this project, in one transaction."""
    now = utc_now()
    with store.transaction() as db:
        db.executemany("INSERT INTO labelstudio_tasks (item_id, ls_url, ls_project_id, ls_task_id, pushed_at)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [(item_id, ls_url, ls_project_id, task_id, now) for item_id, task_id in pairs])


def item_ids_present(store: Store, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are items of this project."""
    found: set[str] = set()
    for chunk in chunks(list(dict.fromkeys(ids)), 500):
        marks = ",".join("?" * len(chunk))
        found.update(row[0] for row in store.db.execute(f"SELECT id FROM items WHERE id IN ({marks})", chunk))
    return found


def item_texts(store: Store, ids: Iterable[str]) -> dict[str, str]:
    """The text of each of ``ids`` that is an item of this project."""
    found: dict[str, str] = {}
    for chunk in chunks(list(dict.fromkeys(ids)), 500):
        marks = ",".join("?" * len(chunk))
        found.update(store.db.execute(f"SELECT id, text FROM items WHERE id IN ({marks})", chunk).fetchall())
    return found


def add_imported_annotation(store: Store, *, item_id: str, annotator: str, output: dict[str, Any],
                            external_id: str, labeler: str, action: str) -> bool:
    """Store a Label Studio annotation as ``annotator``'s current answer, atomically with its audit-log
    row and a bump of the item's ``review_version``. False (and nothing written) if it was imported before.

    The item's current prediction of ``labeler`` (if any) is linked and logged as the "before" value.
    """
    now = utc_now()
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM annotations WHERE source = ? AND external_id = ?",
                      (SOURCE, external_id)).fetchone():
            return False
        prediction = db.execute("SELECT id, output FROM predictions WHERE item_id = ? AND labeler = ?"
                                " AND is_current = 1", (item_id, labeler)).fetchone()
        db.execute("UPDATE annotations SET is_current = 0 WHERE item_id = ? AND annotator = ? AND is_current = 1",
                   (item_id, annotator))
        db.execute("INSERT INTO annotations (item_id, annotator, output, action, prediction_id, created_at,"
                   " source, external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (item_id, annotator, dumps(output), action, None if prediction is None else prediction["id"], now,
                    SOURCE, external_id))
        db.execute("UPDATE items SET review_version = review_version + 1 WHERE id = ?", (item_id,))
        before = None if prediction is None or prediction["output"] is None else json.loads(prediction["output"])
        Store._audit(db, now, annotator, action, item_id, before, output,
                     detail=f"labelstudio annotation {external_id}")
    return True
