"""Who holds which item while answering it, so that reviewers working at once do not collide.

An item a reviewer opens is claimed for them for :data:`HOLD_SECONDS` (the page renews it while open and
gives it back on skip, answer or leave); :func:`next_item` hands a reviewer the first item in their queue
that nobody else holds, claiming it in the same step. With overlap ``k`` at most ``k`` people hold one item.
The web app, the terminal review and the API all take their items from here.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import labelers
from ..assign import need
from ..people.test_questions import is_test
from ..spec import TaskSpec
from ..store import Store
from . import QueueItem, review_queue

HOLD_SECONDS = 120.0
TEST_HOLDERS = 10_000  # a test question is everyone's to answer: any number may hold it at once
CANDIDATES = 25  # queue items tried per request for one nobody else holds


def hold(store: Store, spec: TaskSpec, item_id: str, reviewer: str, labeler: str = labelers.LLM) -> bool:
    """Claim (or renew) ``item_id`` for ``reviewer``; False when the answers it still needs are held by others."""
    needed = TEST_HOLDERS if is_test(store, item_id) else store.answers_needed(labeler, item_id, need(spec))
    return store.claim_review(item_id, reviewer, HOLD_SECONDS, needed)


def release(store: Store, item_id: str, reviewer: str) -> None:
    """Give ``item_id`` back (skipped, answered, or the page was left)."""
    store.release_review(item_id, reviewer)


def next_item(
    store: Store,
    spec: TaskSpec,
    reviewer: str,
    labeler: str = labelers.LLM,
    order: Callable[[list[QueueItem]], list[QueueItem]] = lambda items: items,
    extra: int = 0,
) -> QueueItem | None:
    """The first item of ``reviewer``'s queue (as ``order`` arranges it; ``extra`` more candidates for the
    items ``order`` puts last or leaves out) that they could claim, now theirs."""
    for item in order(review_queue(store, spec, reviewer, labeler, limit=CANDIDATES + extra)):
        if hold(store, spec, item.item_id, reviewer, labeler):
            return item
    return None
