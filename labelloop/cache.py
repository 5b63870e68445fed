"""The call log as a cache: a cached answer costs no call, and today's quality gate judges it again.

A cached answer's extra calls (self-consistency samples, a judge) have cache keys of their own; an
answer is served from the cache only when all of them are cached too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .backends.base import response_from_body
from .gate import Verdict, judge
from .job import Job
from .store import Item, PredictionRecord, Store


class CallCache(Protocol):
    """Where cached answers come from: the store's call log, or (on a Ray worker) a unit's journal."""

    def cached_calls(self, cache_keys: Iterable[str]) -> Mapping[str, Any]: ...


@dataclass
class AdoptingCache:
    """The store's own call log first, then another store's (``compare``: the project's, for gold items): an
    answer found only there is copied into the own log as a call of run ``run_id`` and served from it."""

    own: Store
    other: Store
    run_id: int

    def cached_calls(self, cache_keys: Iterable[str]) -> Mapping[str, Any]:
        keys = list(cache_keys)
        found = dict(self.own.cached_calls(keys))
        foreign = self.other.calls_to_adopt(k for k in keys if k not in found)
        if foreign:
            adopted = self.own.adopt_calls(self.run_id, list(foreign.values()))
            found.update(self.own.cached_calls(adopted))
        return found


def cached_verdict(store: CallCache, job: Job, item: Item, key: str, row: Any) -> Verdict | None:
    """Judge the cached answer ``row`` (a call-log row of cache key ``key``), with its cached extra calls;
    None when one of those is not cached."""
    text = row["output_text"] or ""
    logprobs = _logprobs(row)
    verdict = judge(job.spec, item, text, logprobs)
    extra = job.extra_calls(item, job.request(item), verdict, key)
    if extra is None:
        return verdict
    found = store.cached_calls(extra_key for extra_key, _ in extra.requests)
    rows = [found[extra_key] for extra_key, _ in extra.requests if extra_key in found]
    if len(rows) < len(extra.requests):
        return None
    answers = [(r["output_text"] or "", _logprobs(r)) for r in rows]
    return job.with_extra(verdict, extra, answers)


def _logprobs(row: Any) -> list[dict] | None:
    return response_from_body(row["response"], json.loads(row["response"])).token_logprobs


def serve_cached(
    cache: CallCache, job: Job, chunk: list[Item]
) -> tuple[list[PredictionRecord], list[tuple[Item, str]]]:
    """The chunk's items answered from the cache (judged again), and the rest with their cache keys."""
    keyed = [(item, job.cache_key(item)) for item in chunk]
    cached = cache.cached_calls(key for _, key in keyed)
    hits, uncached = [], []
    for item, key in keyed:
        row = cached.get(key)
        verdict = None if row is None else cached_verdict(cache, job, item, key, row)
        if row is None or verdict is None:
            uncached.append((item, key))
            continue
        prediction = job.prediction(item, row["output_text"] or "", verdict)
        prediction.cached_call_id = row["id"]
        hits.append(prediction)
    return hits, uncached
