"""The labeling engine: every pending item through the backend, concurrently, exactly once.

Work is resumable by construction: an item is pending until the store holds its current
prediction for this job (model, prompt version, decoding parameters, item content), and each
batch of predictions commits with its calls in one transaction. A kill at any moment loses
only calls in flight; the rerun picks up the rest.

The stages, in order: duplicates grouped (``dedup.group``) → the job (:mod:`.job`) → the items it
takes (:mod:`.selection`) → cached answers re-judged (:mod:`.cache`) → the rest called
(:mod:`.calls`) and judged by the quality gate (:mod:`.gate`) → predictions written → duplicates
inherit their representative's answer → one audit row.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from ._actor import actor_or_default
from ._sync import run_sync
from .backends import Backend, CompletionRequest, CompletionResponse, create_backend
from .cache import cached_verdict
from .calls import Caller
from .confidence.extra_calls import ExtraCalls, extra_calls
from .dedup import find_duplicates, inherit_labels
from .errors import BackendError, BudgetExhausted, InputError
from .gate import Verdict, judge, with_confidence
from .job import Job, LabelOptions, fewshot_pool, model_known
from .prompt import build_prompt
from .selection import CHUNK, FIRST_CHUNK, chunked, planned_count, selected_items
from .spec import ModelSettings, TaskSpec
from .store import CallRecord, Item, PredictionRecord, RunCounts, Store


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


class ProgressSink(Protocol):
    """Receives progress; the CLI shows it as a rich progress bar."""

    def start(self, total: int) -> None: ...

    def advance(self, items: int, *, errors: int, tokens: int, calls: int) -> None: ...

    def stop(self) -> None: ...


def label(store: Store, spec: TaskSpec, settings: ModelSettings | None = None, *,
          options: LabelOptions | None = None, backend: Backend | None = None,
          progress: ProgressSink | None = None, actor: str | None = None) -> RunResult:
    """Label every pending item of the project (synchronous wrapper of :func:`label_async`)."""
    return run_sync(label_async(store, spec, settings, options=options, backend=backend, progress=progress,
                                actor=actor))


async def label_async(store: Store, spec: TaskSpec, settings: ModelSettings | None = None, *,
                      options: LabelOptions | None = None, backend: Backend | None = None,
                      progress: ProgressSink | None = None, actor: str | None = None) -> RunResult:
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
    store.audit(actor_or_default(actor), "label", detail=json.dumps(
        {"run": result.run_id, "status": result.status, "labeled": result.counts.items_done,
         "calls": result.counts.calls, "inherited": result.inherited, "settled_by_small": result.settled_by_small}))
    return result


async def _label_pending(store: Store, spec: TaskSpec, settings: ModelSettings, options: LabelOptions,
                         backend: Backend, progress: ProgressSink | None) -> RunResult:
    prompt = build_prompt(spec)
    store.save_prompt(prompt.version, list(prompt.shared), prompt.item_template_source, prompt.output_schema)
    store.mark_stale_runs()
    pool = fewshot_pool(store, spec)
    if model_known(backend):
        job = Job(spec, prompt, settings, backend.model_id, options.labeler, pool)
        planned = planned_count(store, job, options)
        if planned == 0:  # nothing to do: leave the backend closed
            return await _run(store, job, planned, backend, options, progress)
    async with backend:
        job = Job(spec, prompt, settings, backend.model_id, options.labeler, pool)
        return await _run(store, job, planned_count(store, job, options), backend, options, progress)


async def _run(store: Store, job: Job, planned: int, backend: Backend, options: LabelOptions,
               progress: ProgressSink | None) -> RunResult:
    run_id = store.start_run(labeler=job.labeler, backend=backend.name, model=job.model_id,
                             params=job.settings.decoding_params(), prompt_version=job.prompt.version,
                             job_key=job.key, items_planned=planned, pid=os.getpid())
    runner = _Runner(store, job, backend, options, run_id, progress)
    started = time.perf_counter()
    status, error = "finished", None
    if progress:
        progress.start(planned)
    try:
        await runner.run(selected_items(store, job, options))
    except asyncio.CancelledError:
        status, error = "interrupted", "interrupted by the user"
        raise
    except BaseException as exc:
        status, error = "failed", str(exc)
        raise
    finally:
        if progress:
            progress.stop()
        store.finish_run(run_id, status, runner.counts, error or runner.stop_reason)
    settled = store.count_settled(job.settled_by) if job.settled_by else 0
    return RunResult(run_id, planned, runner.counts, runner.unparsable, time.perf_counter() - started,
                     status, runner.stop_reason, settled)


@dataclass
class _Runner:
    """A producer serves cached answers and queues the rest; a pool of workers calls the backend; one
    writer commits each batch of results in one transaction."""

    store: Store
    job: Job
    backend: Backend
    options: LabelOptions
    run_id: int
    progress: ProgressSink | None
    counts: RunCounts = field(default_factory=RunCounts)
    unparsable: int = 0
    stop_reason: str | None = None

    async def run(self, items: Iterator[Item]) -> None:
        self._results: asyncio.Queue[PredictionRecord | None] = asyncio.Queue()
        self._caller = Caller(self.backend, self.job, self.counts, self.options.max_calls)
        work: asyncio.Queue[tuple[Item, str] | None] = asyncio.Queue(maxsize=2 * self._concurrency)
        writer = asyncio.create_task(self._write_results())
        tasks = [asyncio.create_task(self._produce(items, work)),
                 *(asyncio.create_task(self._worker(work)) for _ in range(self._concurrency))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._results.put(None)
            await writer

    async def _produce(self, items: Iterator[Item], work: asyncio.Queue[tuple[Item, str] | None]) -> None:
        for item_and_key in self._uncached(items):
            if self.stop_reason:
                break
            await work.put(item_and_key)
        for _ in range(self._concurrency):
            await work.put(None)

    @property
    def _concurrency(self) -> int:
        """Requests in flight: the setting, capped by what the backend can serve at once."""
        cap = getattr(self.backend, "max_concurrency", None)
        return min(self.job.settings.concurrency, cap or self.job.settings.concurrency)

    def _uncached(self, items: Iterator[Item]) -> Iterator[tuple[Item, str]]:
        """Items (with their cache keys) that need a call."""
        for chunk in chunked(items, CHUNK, first=FIRST_CHUNK):
            yield from self._serve_from_cache(chunk)

    def _serve_from_cache(self, chunk: list[Item]) -> list[tuple[Item, str]]:
        keyed = [(item, self.job.cache_key(item)) for item in chunk]
        if not self.options.use_cache:
            return keyed
        cached = self.store.cached_calls(key for _, key in keyed)
        uncached = []
        for item, key in keyed:
            row = cached.get(key)
            verdict = None if row is None else cached_verdict(self.store, self.job, item, key, row)
            if row is None or verdict is None:
                uncached.append((item, key))
                continue
            prediction = self.job.prediction(item, row["output_text"] or "", verdict)
            prediction.cached_call_id = row["id"]
            self.counts.cache_hits += 1
            self._results.put_nowait(prediction)
        return uncached

    async def _worker(self, work: asyncio.Queue[tuple[Item, str] | None]) -> None:
        while (item_and_key := await work.get()) is not None:
            if not self._budget_reached():  # past the budget, items stay pending
                await self._results.put(await self._label_one(*item_and_key))

    def _budget_reached(self) -> bool:
        if self._caller.budget_spent:
            self.stop_reason = f"call budget of {self.options.max_calls} reached"
        tokens = self.counts.prompt_tokens + self.counts.completion_tokens
        if self.options.max_tokens is not None and tokens >= self.options.max_tokens:
            self.stop_reason = f"token budget of {self.options.max_tokens} reached"
        return self.stop_reason is not None

    async def _label_one(self, item: Item, cache_key: str) -> PredictionRecord:
        calls: list[CallRecord] = []
        try:
            request = self.job.request(item)
            response = await self._caller.call(item, cache_key, request, calls)
        except (BackendError, BudgetExhausted, InputError) as exc:
            prediction = self.job.prediction(item, None, None, error=str(exc))
        else:
            verdict = judge(self.job.spec, item, response.text, response.token_logprobs)
            response, verdict = await self._ask_again(item, cache_key, request, response, verdict, calls)
            extra = extra_calls(self.job.spec, item, request, verdict.validation, verdict.confidence, cache_key)
            if extra is not None:
                verdict = await self._score_with_extra_calls(item, extra, verdict, calls)
            prediction = self.job.prediction(item, response.text, verdict)
        prediction.calls = calls
        return prediction

    async def _ask_again(self, item: Item, cache_key: str, request: CompletionRequest,
                         response: CompletionResponse, verdict: Verdict,
                         calls: list[CallRecord]) -> tuple[CompletionResponse, Verdict]:
        """Feed validation problems back to the model, up to ``review.feedback_retries`` times."""
        for _ in range(self.job.spec.review.feedback_retries):
            if verdict.validation.valid:
                break
            request = replace(request, messages=[
                *request.messages, {"role": "assistant", "content": response.text},
                {"role": "user", "content": verdict.validation.feedback()}])
            try:
                response = await self._caller.call(item, cache_key, request, calls)
            except (BackendError, BudgetExhausted):
                break  # keep the answer we have; its problems route it to review
            verdict = judge(self.job.spec, item, response.text, response.token_logprobs)
        return response, verdict

    async def _score_with_extra_calls(self, item: Item, extra: ExtraCalls, verdict: Verdict,
                                      calls: list[CallRecord]) -> Verdict:
        """Make the extra calls one after another (in-flight calls stay bounded) and re-route."""
        texts: list[str | None] = []
        for key, request in extra.requests:
            try:
                texts.append((await self._caller.call(item, key, request, calls)).text)
            except (BackendError, BudgetExhausted):
                texts.append(None)
        confidence = extra.combine(texts)
        return verdict if confidence is None else with_confidence(self.job.spec, verdict, confidence)

    async def _write_results(self) -> None:
        """Commit whatever results have arrived, one transaction per batch."""
        done = False
        while not done:
            batch = [await self._results.get()]
            while not self._results.empty() and len(batch) < CHUNK:
                batch.append(self._results.get_nowait())
            if batch[-1] is None:
                done = True
            predictions = [p for p in batch if p is not None]
            if predictions:
                self._count(predictions)
                self.store.save_predictions(self.run_id, predictions, self.counts)

    def _count(self, predictions: list[PredictionRecord]) -> None:
        failed = sum(p.status == "failed" for p in predictions)
        self.counts.items_done += len(predictions) - failed
        self.counts.items_failed += failed
        self.unparsable += sum(p.status == "unparsable" for p in predictions)
        calls = sum(len(p.calls) for p in predictions)
        self.counts.calls += calls
        if self.progress:
            self.progress.advance(len(predictions), errors=failed,
                                  tokens=self.counts.prompt_tokens + self.counts.completion_tokens, calls=calls)


__all__ = ["LabelOptions", "ProgressSink", "RunResult", "label", "label_async"]
