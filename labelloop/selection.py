"""Which pending items a run takes: all of them, the first N, or a seeded random sample, read in chunks.

An item is pending for a job until the store holds its current, finished prediction for that job
and content; items the small model settled (``learn.policy.small_alone``) and duplicates waiting
for their representative (``dedup.label_one``) are left out.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TypeVar

from .job import Job, LabelOptions
from .store import Item, Store

CHUNK = 1000
FIRST_CHUNK = 64  # a small first chunk starts calls sooner

T = TypeVar("T")


def planned_count(store: Store, job: Job, options: LabelOptions) -> int:
    """How many items a run with ``options`` would take."""
    pending = store.count_pending(job.labeler, job.key, job.settled_by, job.representatives_only)
    for cap in (options.limit, options.sample):
        if cap is not None:
            pending = min(pending, cap)
    return pending


def selected_items(store: Store, job: Job, options: LabelOptions) -> Iterator[Item]:
    """The items a run with ``options`` takes, in ingest order (a sample: in sampled order)."""
    pending = store.iter_pending(job.labeler, job.key, CHUNK, job.settled_by, job.representatives_only)
    if options.sample is not None:
        pending = iter(reservoir(pending, options.sample, options.seed))
    for count, item in enumerate(pending):
        if options.limit is not None and count >= options.limit:
            return
        yield item


class Claims:
    """The items a worker leases, chunk by chunk, so that several ``label`` processes share a project's pending
    items (see :mod:`labelloop.store.leases`). One pass reads on from the last claimed item; when that runs
    dry it looks once more from the start (leases that expired meanwhile). ``claimed`` counts this pass."""

    def __init__(self, store: Store, job: Job, options: LabelOptions, run_id: int, seconds: float):
        self.store, self.job, self.options, self.run_id, self.seconds = store, job, options, run_id, seconds
        self.total = 0

    def items(self) -> Iterator[Item]:
        self.claimed, after, restarted = 0, 0, False
        while True:
            room = CHUNK if self.options.limit is None else min(CHUNK, self.options.limit - self.total)
            if room <= 0:
                return
            chunk = self.store.claim(
                self.run_id, self.job.labeler, self.job.key, room, self.seconds, after=after,
                settled_by=self.job.settled_by, representatives_only=self.job.representatives_only,
            )  # fmt: skip
            if not chunk:
                if restarted or after == 0:
                    return
                after, restarted = 0, True
                continue
            self.claimed += len(chunk)
            self.total += len(chunk)
            after = chunk[-1][0]
            for _, item in chunk:
                yield item


def reservoir(items: Iterator[T], size: int, seed: int) -> list[T]:
    """A uniform random sample of ``size`` items, reading the stream once."""
    rng = random.Random(seed)
    chosen: list[T] = []
    for seen, item in enumerate(items):
        if seen < size:
            chosen.append(item)
        else:
            slot = rng.randint(0, seen)
            if slot < size:
                chosen[slot] = item
    return chosen


def chunked(items: Iterator[T], size: int, first: int | None = None) -> Iterator[list[T]]:
    """Lists of ``size`` items (the first of ``first`` items, when given)."""
    chunk: list[T] = []
    limit = first or size
    for item in items:
        chunk.append(item)
        if len(chunk) >= limit:
            yield chunk
            chunk, limit = [], size
    if chunk:
        yield chunk
