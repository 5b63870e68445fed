"""Test questions: items whose answer is known, answered by people exactly like other items.

They are items of the project (labeled by the model like any other, so they carry a pre-label), marked in
``test_questions`` and left out of the ordinary review queue, Label Studio and review progress; items added
from a file are left out of exports too. :func:`mixed_in` puts one at the head of an annotator's queue at the
task's rate (a seeded draw per annotator and answer count), or only them while the annotator qualifies; a
test question is shown like its neighbours (their routing reasons, not its own). :func:`answer` records the
answer in ``test_answers``, apart from ``annotations``, so it never reaches agreement, aggregation or exports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._actor import actor_or_default
from ..annotations import read_gold
from ..answers import comparable
from ..errors import InputError
from ..ingest import to_item
from ..prepare import Preparer
from ..readers import Record, read_records
from ..route import NEEDS_REVIEW
from ..spec import TaskSpec
from ..store import Item, Store
from .qualification import Qualification, qualification


def add_from_file(store: Store, spec: TaskSpec, path: str | Path, *, actor: str | None = None) -> int:
    """Add the file's rows as test questions: each an ``id`` (or ``item``), the input fields and the right
    answer's fields (or ``output``). Texts are cleaned and masked as ingest does; the answer never becomes an
    item field. All of the file or nothing; how many were new."""
    path = Path(path)
    answers = read_gold(spec, path)
    answer_keys = {"output", *spec.output_fields}
    preparer = Preparer(spec, store, None) if (spec.clean or spec.pii) else None
    prepare = preparer if preparer is not None and preparer.active else None
    items: list[Item] = []
    for record in read_records(path):
        if record.error is not None:
            raise record.error
        data = {k: v for k, v in (record.data or {}).items() if k not in answer_keys}
        id_field = "item" if "item" in data else "id"
        item = to_item(Record(record.line, data, record.raw), str(path), spec.input.text_field, id_field, prepare)
        if not isinstance(item, Item):
            raise item if isinstance(item, InputError) else InputError(str(path), record.line, item)
        items.append(item)
    clash = store.check_collisions(items)
    if clash:
        item, reason = clash[0]
        raise InputError(str(path), item.source_line, reason, field="id")
    with store.transaction():
        store.add_items(items)
    if preparer is not None:
        preparer.finish()
    return store.add_test_questions({i.id: answers[i.id] for i in items}, "file", actor_or_default(actor))


def add_from_experts(store: Store, *, actor: str | None = None) -> int:
    """Make every item an expert decided (adjudicated) a test question with the expert's answer; how many
    were new. The item stays data: its decision is still exported; later answers to it are tests only."""
    decided = {item: json.loads(row["output"]) for item, row in store.adjudications().items()}
    if not decided:
        raise InputError("test-questions", None, "no expert decisions yet: experts settle disputes first")
    return store.add_test_questions(decided, "experts", actor_or_default(actor))


def is_test(store: Store, item_id: str) -> bool:
    return item_id in store.test_questions()


def answer(
    store: Store, spec: TaskSpec, item_id: str, reviewer: str, role: str, output: dict[str, Any], action: str
) -> int:
    """Record ``reviewer``'s (already checked) answer to a test question: right or wrong, and whether it was
    part of their qualification."""
    known = store.test_questions()[item_id]["answer"]
    state = qualification(store, spec, reviewer, role)
    purpose = "qualify" if state.qualifying_now else "check"
    right = comparable(output) == comparable(known)
    return store.record_test_answer(item_id, reviewer, output, action, right, purpose)


def mixed_in(store: Store, spec: TaskSpec, reviewer: str, role: str, queue: list[Any], make: Any) -> list[Any]:
    """``queue`` (QueueItems) with a test question first when the draw says so, or only test questions while
    ``reviewer`` qualifies; ``make(item_id)`` builds a test question's QueueItem."""
    tests = store.test_questions()
    if not tests or role == "expert":
        return queue
    state = qualification(store, spec, reviewer, role)
    given = store.test_answers(reviewer)
    seed = spec.annotation.test_questions.seed
    if state.required and not state.qualified:
        if not state.qualifying_now:
            return []  # a round just failed: the feedback page comes first
        taken = {r["item_id"] for r in given if r["purpose"] == "qualify"}
        order = sorted(tests, key=lambda i: (i in taken, _draw(seed, reviewer, i)))  # unseen first
        return [like(make(i), queue) for i in order[: state.left_in_round]]
    answered = {r["item_id"] for r in given}
    unseen = [i for i in tests if i not in answered]
    position = len(given) + store.answers_given(reviewer)
    if not unseen or _draw(seed, reviewer, str(position)) >= spec.annotation.test_questions.rate:
        return queue
    return [like(make(min(unseen, key=lambda i: _draw(seed, reviewer, i))), queue), *queue]


def like(item: Any, queue: list[Any]) -> Any:
    """A test question shown as a queue item is: sent to review, with its neighbours' reasons."""
    reasons = (
        item.reasons
        if item.route == NEEDS_REVIEW and item.reasons
        else next((q.reasons for q in queue if q.reasons), ["low_confidence"])
    )
    return replace(item, route=NEEDS_REVIEW, reasons=reasons)


def _draw(seed: int, reviewer: str, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{reviewer}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


__all__ = ["Qualification", "add_from_experts", "add_from_file", "answer", "is_test", "like", "mixed_in"]
