"""The labeling engine: every pending item through the backend, concurrently, exactly once.

Work is resumable by construction: an item is pending until the store holds its current
prediction for this job (model, prompt version, decoding parameters, item content), and each
batch of predictions commits with its calls in one transaction. A kill at any moment loses
only calls in flight; the rerun picks up the rest.

The stages, in order: duplicates grouped (``dedup.group``) → the job (:mod:`.job`) → the items it
takes (:mod:`.selection`) → the run (:mod:`.runner`): cached answers re-judged (:mod:`.cache`), the
rest called (:mod:`.calls`) and judged by the quality gate (:mod:`.gate`), predictions written →
duplicates inherit their representative's answer → one audit row.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from ._actor import actor_or_default
from ._sync import run_sync
from .backends import Backend, create_backend
from .cache import AdoptingCache
from .context import context_for
from .dedup import find_duplicates, inherit_labels
from .job import Job, LabelOptions, fewshot_pool, model_known
from .prompt import build_prompt
from .runner import ProgressSink, Runner
from .selection import Claims, planned_count, selected_items
from .spec import ModelSettings, TaskSpec
from .store import RunCounts, Store


@dataclass
class RunResult:
    """What a labeling run did."""

    run_id: int
    planned: int
    counts: RunCounts
    unparsable: int
    elapsed_s: float
    status: str
    stop_reason: str | None = None
    settled_by_small: int = 0  # items the small model settled: no LLM call (learn.policy.small_alone)
    inherited: int = 0  # duplicates given their group representative's answer (dedup.label_one)

    @property
    def items_per_s(self) -> float:
        return (self.counts.items_done + self.counts.items_failed) / self.elapsed_s if self.elapsed_s else 0.0


def label(
    store: Store,
    spec: TaskSpec,
    settings: ModelSettings | None = None,
    *,
    options: LabelOptions | None = None,
    backend: Backend | None = None,
    progress: ProgressSink | None = None,
    actor: str | None = None,
) -> RunResult:
    """Label every pending item of the project (synchronous wrapper of :func:`label_async`)."""
    return run_sync(
        label_async(store, spec, settings, options=options, backend=backend, progress=progress, actor=actor)
    )


async def label_async(
    store: Store,
    spec: TaskSpec,
    settings: ModelSettings | None = None,
    *,
    options: LabelOptions | None = None,
    backend: Backend | None = None,
    progress: ProgressSink | None = None,
    actor: str | None = None,
) -> RunResult:
    """Label the pending items with the backend ``settings`` names (resumable; cached answers cost no call).

    With ``dedup.group``, duplicates are grouped first and, with ``dedup.label_one``, only one per group
    is sent; the rest inherit its answer. The run is recorded in the audit log as ``actor`` (default: the
    OS user).
    """
    settings = settings or spec.model
    options = options or LabelOptions()
    if spec.dedup.group:
        find_duplicates(store, near=spec.dedup.near, threshold=spec.dedup.threshold)
    result = await _label_pending(store, spec, settings, options, backend or create_backend(settings), progress)
    if spec.dedup.group and spec.dedup.label_one:
        result.inherited = inherit_labels(store, options.labeler)
    store.audit(
        actor_or_default(actor),
        "label",
        detail=json.dumps(
            {
                "run": result.run_id,
                "status": result.status,
                "labeled": result.counts.items_done,
                "calls": result.counts.calls,
                "inherited": result.inherited,
                "settled_by_small": result.settled_by_small,
            }
        ),
    )
    return result


async def _label_pending(
    store: Store,
    spec: TaskSpec,
    settings: ModelSettings,
    options: LabelOptions,
    backend: Backend,
    progress: ProgressSink | None,
) -> RunResult:
    prompt = build_prompt(spec)
    store.save_prompt(prompt.version, list(prompt.shared), prompt.item_template_source, prompt.output_schema)
    store.mark_stale_runs()
    pool, context = fewshot_pool(store, spec), context_for(spec, store)
    if model_known(backend):
        job = Job(spec, prompt, settings, backend.model_id, options.labeler, pool, context)
        planned = planned_count(store, job, options)
        if planned == 0:  # nothing to do: leave the backend closed
            return await _run(store, job, planned, backend, options, progress)
    async with backend:
        job = Job(spec, prompt, settings, backend.model_id, options.labeler, pool, context)
        return await _run(store, job, planned_count(store, job, options), backend, options, progress)


async def _run(
    store: Store, job: Job, planned: int, backend: Backend, options: LabelOptions, progress: ProgressSink | None
) -> RunResult:
    run_id = job.start_run(store, backend.name, planned)
    cache = None if options.known_calls is None else AdoptingCache(store, options.known_calls, run_id)
    runner = Runner(store, job, backend, options, run_id, progress, cache=cache)
    started = time.perf_counter()
    status, error = "finished", None
    if progress:
        progress.start(planned)
    try:
        if options.sample is not None:  # a sample is this run's own draw: no sharing
            await runner.run(selected_items(store, job, options))
        else:
            await _run_leased(store, job, options, run_id, runner)
    except asyncio.CancelledError:
        status, error = "interrupted", "interrupted by the user"
        raise
    except BaseException as exc:
        status, error = "failed", str(exc)
        raise
    finally:
        if progress:
            progress.stop()
        store.release(run_id)
        store.finish_run(run_id, status, runner.counts, error or runner.stop_reason)
    store.refresh_statistics()
    settled = store.count_settled(job.settled_by) if job.settled_by else 0
    return RunResult(
        run_id,
        planned,
        runner.counts,
        runner.unparsable,
        time.perf_counter() - started,
        status,
        runner.stop_reason,
        settled,
    )


async def _run_leased(store: Store, job: Job, options: LabelOptions, run_id: int, runner: Runner) -> None:
    """Label what this run can lease, pass after pass, renewing its leases meanwhile; while other workers hold
    items, wait for them (a crashed one's leases expire and the next pass takes its items over)."""
    seconds = options.lease_seconds
    claims = Claims(store, job, options, run_id, seconds)
    store.renew(run_id, seconds)

    async def keep_leases() -> None:
        while True:
            await asyncio.sleep(seconds / 3)
            store.renew(run_id, seconds)

    renewing = asyncio.create_task(keep_leases())
    try:
        while True:
            await runner.run(claims.items())
            if runner.stop_reason or (options.limit is not None and claims.total >= options.limit):
                return
            if claims.claimed:
                continue
            if not store.leases_held_by_others(run_id, job.labeler):
                return
            await asyncio.sleep(min(seconds / 4, 1.0))  # a count query a second; a late exit would idle the tail
    finally:
        renewing.cancel()


__all__ = ["LabelOptions", "ProgressSink", "RunResult", "label", "label_async"]
