"""The store's test questions: items with known answers (from a file, or an expert's decision) that people
answer like any other item, and their answers, kept apart from the ``annotations`` table so that they never
reach agreement, aggregation or exports as data."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ._base import StoreBase
from ._common import dumps, inserted_id, utc_now

# excludes test questions from a query over predictions ``p`` (the review queue, Label Studio, progress)
NOT_A_TEST = "NOT EXISTS (SELECT 1 FROM test_questions t WHERE t.item_id = p.item_id)"
# excludes the items added from a file only to test people (the export)
NOT_A_FILE_TEST = "NOT EXISTS (SELECT 1 FROM test_questions t WHERE t.item_id = i.id AND t.source = 'file')"


class KnownAnswerStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; the SQL of test questions and their answers."""

    def add_test_questions(self, answers: dict[str, Any], source: str, actor: str) -> int:
        """Make items test questions with these known answers (item id -> output); an item already one gets
        the new answer. One audit row; how many were new."""
        now = utc_now()
        with self.transaction() as db:
            known = {r[0] for r in db.execute("SELECT item_id FROM test_questions")}
            db.executemany(
                "INSERT INTO test_questions (item_id, answer, source, added_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (item_id) DO UPDATE SET answer = excluded.answer",
                [(item_id, dumps(answer), source, now) for item_id, answer in answers.items()],
            )
            added = len(set(answers) - known)
            self._audit(db, now, actor, "test-questions-add", None, None, None,
                        detail=dumps({"source": source, "added": added, "updated": len(answers) - added}))  # fmt: skip
        return added

    def test_questions(self) -> dict[str, dict[str, Any]]:
        """Every test question: item id -> ``answer`` (the known output) and ``source``."""
        rows = self.db.execute("SELECT item_id, answer, source FROM test_questions ORDER BY added_at, item_id")
        return {r[0]: {"answer": json.loads(r[1]), "source": r[2]} for r in rows}

    def record_test_answer(
        self, item_id: str, annotator: str, output: Any, action: str, correct: bool, purpose: str
    ) -> int:
        """A person's answer to a test question (and its audit row)."""
        now = utc_now()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO test_answers (item_id, annotator, output, action, correct, purpose, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (item_id, annotator, dumps(output), action, int(correct), purpose, now),
            )
            answer_id = inserted_id(cursor)
            self._audit(db, now, annotator, "test-answer", item_id, None, output,
                        detail=dumps({"correct": bool(correct), "purpose": purpose}))  # fmt: skip
        return answer_id

    def test_answers(self, annotator: str | None = None) -> list[sqlite3.Row]:
        """Answers to test questions (everyone's, or ``annotator``'s), oldest first."""
        who, params = ("", ()) if annotator is None else (" WHERE annotator = ?", (annotator,))
        return self.db.execute(
            f"SELECT id, item_id, annotator, output, action, correct, purpose, created_at, 1 AS is_current"
            f" FROM test_answers{who} ORDER BY id",
            params,
        ).fetchall()

    def answers_given(self, annotator: str) -> int:
        """Every answer ``annotator`` gave to an ordinary item (current or since replaced)."""
        row = self.db.execute("SELECT count(*) FROM annotations WHERE annotator = ? AND kind = 'answer'", (annotator,))
        return int(row.fetchone()[0])
