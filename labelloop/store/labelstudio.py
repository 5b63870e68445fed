"""SQL of the Label Studio bridge: which items were pushed as tasks, and annotations imported from it.

Imported annotations carry ``source = 'labelstudio'`` and the Label Studio annotation id as
``external_id``; the unique index on (source, external_id) makes every import idempotent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from ._common import utc_now
from .known_answers import NOT_A_FILE_TEST, NOT_A_TEST
from .reviews import ReviewStore

SOURCE = "labelstudio"

_ITEM_WITH_PREDICTION = (
    "SELECT i.seq, i.id, i.text, p.output, p.model, p.prompt_version, p.confidence"
    " FROM items i LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?"
)


class LabelStudioStore(ReviewStore):
    """Mixed into :class:`~labelloop.store.Store`; an imported annotation is stored like any other answer,
    hence the base :class:`~labelloop.store.reviews.ReviewStore`."""

    def labelstudio_items(self, labeler: str, chunk: int = 1000) -> Iterator[sqlite3.Row]:
        """Every item in ingest order with its current prediction of ``labeler`` (NULL columns if none)."""
        last = 0
        while rows := self.db.execute(
            f"{_ITEM_WITH_PREDICTION} WHERE i.seq > ? AND {NOT_A_FILE_TEST} ORDER BY i.seq LIMIT ?",
            (labeler, last, chunk),
        ).fetchall():
            yield from rows
            last = rows[-1]["seq"]

    def unpushed_review_items(self, labeler: str, ls_url: str, ls_project_id: int) -> list[sqlite3.Row]:
        """Items whose current prediction needs review, that no person has answered and that are not
        yet tasks of this Label Studio project, in ingest order."""
        return self.db.execute(
            f"{_ITEM_WITH_PREDICTION} WHERE p.route = 'needs_review' AND {NOT_A_TEST}"
            " AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id AND a.is_current = 1)"
            " AND NOT EXISTS (SELECT 1 FROM labelstudio_tasks t WHERE t.item_id = i.id AND t.ls_url = ?"
            "   AND t.ls_project_id = ?) ORDER BY i.seq",
            (labeler, ls_url, ls_project_id),
        ).fetchall()

    def pushed_items(self, ls_url: str, ls_project_id: int) -> dict[str, int]:
        """Item id -> Label Studio task id, for the tasks recorded for this server and project."""
        return dict(
            self.db.execute(
                "SELECT item_id, ls_task_id FROM labelstudio_tasks WHERE ls_url = ? AND ls_project_id = ?",
                (ls_url, ls_project_id),
            ).fetchall()
        )

    def record_pushed(self, ls_url: str, ls_project_id: int, pairs: Iterable[tuple[str, int]]) -> None:
        """Record (item id, task id) pairs as tasks of this project, in one transaction."""
        now = utc_now()
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO labelstudio_tasks (item_id, ls_url, ls_project_id, ls_task_id, pushed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(item_id, ls_url, ls_project_id, task_id, now) for item_id, task_id in pairs],
            )

    def add_labelstudio_annotation(
        self, *, item_id: str, annotator: str, output: dict[str, Any], external_id: str, labeler: str, action: str
    ) -> bool:
        """Store a Label Studio annotation as ``annotator``'s current answer, atomically with its audit-log
        row and a bump of the item's ``review_version``. False (and nothing written) if it was imported before.

        The item's current prediction of ``labeler`` (if any) is linked and logged as the "before" value.
        """
        with self.transaction() as db:
            return self.insert_imported(
                db,
                item_id=item_id,
                annotator=annotator,
                output=output,
                external_id=external_id,
                labeler=labeler,
                action=action,
                source=SOURCE,
                detail=f"labelstudio annotation {external_id}",
            )
