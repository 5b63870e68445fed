"""The labeling engine: every pending item through the backend, concurrently, exactly once.

Work is resumable by construction: an item is pending until the store holds its current
prediction for this job (model, prompt version, decoding parameters, item content), and each
batch of predictions commits with its calls in one transaction. A kill at any moment loses
only calls in flight; the rerun picks up the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ._sync import run_sync
from .backends import Backend, CompletionRequest, CompletionResponse, create_backend
from .backends.base import response_from_body
from .errors import BackendError, BudgetExhausted, InputError
from .prompt import Prompt, build_prompt
from .route import FAILED, Verdict, judge, with_confidence
from .scoring import ExtraCalls, extra_calls
from .spec import ModelSettings, TaskSpec
from .store import CallRecord, Item, PredictionRecord, RunCounts, Store

DEFAULT_LABELER = "llm"
SMALL_LABELER = "small"  # the small model's predictions (labelloop.learn.small)
MAX_RETRY_AFTER_S = 300.0
CHUNK = 1000
BARE_LABEL_TOKENS = 3  # label scoring: the answer is the label itself
FIRST_CHUNK = 64


@dataclass
class LabelOptions:
    """Which items to label and within what budget."""

    labeler: str = DEFAULT_LABELER
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    max_calls: int | None = None
    max_tokens: int | None = None
    use_cache: bool = True


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


@dataclass(frozen=True)
class Job:
    """Everything that determines a model's answer, except the item."""

    spec: TaskSpec
    prompt: Prompt
    settings: ModelSettings
    model_id: str
    labeler: str
    fewshot: Any = None  # a learn.fewshot.FewShotPool when learn.fewshot > 0

    @cached_property
    def answer_key(self) -> str:
        """What determines the model's answer: model, prompt version, decoding parameters."""
        payload = json.dumps({"model": self.model_id, "prompt": self.prompt.version,
                              "params": self.settings.decoding_params()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    @cached_property
    def key(self) -> str:
        """The answer key plus the quality gate: a new rule or threshold re-judges (from the cache)."""
        gate = {"rules": [r.model_dump() for r in self.spec.rules], "validators": self.spec.validators,
                "review": self.spec.review.model_dump()}
        payload = json.dumps({"answer": self.answer_key, "gate": gate}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    @property
    def settled_by(self) -> str | None:
        """The labeler whose accepted answers spare this job a call (the small model, when policy says so)."""
        return SMALL_LABELER if self.spec.learn.policy.small_alone and self.labeler != SMALL_LABELER else None

    def examples(self, item: Item) -> list[tuple[str, str]]:
        """The few-shot examples chosen for ``item`` as (text, answer text); none without a pool."""
        if self.fewshot is None:
            return []
        return [(text, self.spec.answer_text(output)) for text, output in self.fewshot.examples(item)]

    @property
    def representatives_only(self) -> bool:
        """Whether duplicates wait for their group representative's answer instead of a call (dedup.label_one)."""
        return self.spec.dedup.group and self.spec.dedup.label_one

    def cache_key(self, item: Item) -> str:
        examples = self.examples(item)
        extra = f":{self.fewshot.digest(examples)}" if examples else ""
        return hashlib.sha256(f"{self.answer_key}:{item.content_hash}{extra}".encode()).hexdigest()[:32]

    def request(self, item: Item) -> CompletionRequest:
        s = self.settings
        max_tokens = min(s.max_tokens, BARE_LABEL_TOKENS) if self.prompt.output_schema is None else s.max_tokens
        return CompletionRequest(messages=self.prompt.messages(item, self.examples(item)),
                                 json_schema=self.prompt.output_schema,
                                 temperature=s.temperature, max_tokens=max_tokens,
                                 top_logprobs=s.top_logprobs, seed=s.seed)


def label(store: Store, spec: TaskSpec, settings: ModelSettings | None = None, *,
          options: LabelOptions | None = None, backend: Backend | None = None,
          progress: ProgressSink | None = None) -> RunResult:
    """Label every pending item of the project (synchronous wrapper of :func:`label_async`)."""
    return run_sync(label_async(store, spec, settings, options=options, backend=backend, progress=progress))


async def label_async(store: Store, spec: TaskSpec, settings: ModelSettings | None = None, *,
                      options: LabelOptions | None = None, backend: Backend | None = None,
                      progress: ProgressSink | None = None) -> RunResult:
    """Label pending items with the backend ``settings`` names; returns the run's counts."""
    settings = settings or spec.model
    options = options or LabelOptions()
    backend = backend or create_backend(settings)
    prompt = build_prompt(spec)
    store.save_prompt(prompt.version, list(prompt.shared), prompt.item_template_source, prompt.output_schema)
    store.mark_stale_runs()
    pool = fewshot_pool(store, spec)
    if model_known(backend):
        job = Job(spec, prompt, settings, backend.model_id, options.labeler, pool)
        planned = _planned_count(store, job, options)
        if planned == 0:  # nothing to do: leave the backend closed
            return await _run(store, job, planned, backend, options, progress)
    async with backend:
        job = Job(spec, prompt, settings, backend.model_id, options.labeler, pool)
        return await _run(store, job, _planned_count(store, job, options), backend, options, progress)


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


def fewshot_pool(store: Store, spec: TaskSpec) -> Any:
    """Examples from people's labels for each prompt (``learn.fewshot``; needs the ``embed`` extra)."""
    if not spec.learn.fewshot:
        return None
    from .learn.fewshot import FewShotPool

    return FewShotPool(store, spec, spec.learn.fewshot)


def model_known(backend: Backend) -> bool:
    try:
        backend.model_id
    except BackendError:
        return False
    return True


def _planned_count(store: Store, job: Job, options: LabelOptions) -> int:
    pending = store.count_pending(job.labeler, job.key, job.settled_by, job.representatives_only)
    for cap in (options.limit, options.sample):
        if cap is not None:
            pending = min(pending, cap)
    return pending


def selected_items(store: Store, job: Job, options: LabelOptions) -> Iterator[Item]:
    pending = store.iter_pending(job.labeler, job.key, CHUNK, job.settled_by, job.representatives_only)
    if options.sample is not None:
        pending = iter(_reservoir(pending, options.sample, options.seed))
    for count, item in enumerate(pending):
        if options.limit is not None and count >= options.limit:
            return
        yield item


def _reservoir(items: Iterator[Item], size: int, seed: int) -> list[Item]:
    """A uniform random sample of ``size`` items, reading the stream once."""
    rng = random.Random(seed)
    chosen: list[Item] = []
    for seen, item in enumerate(items):
        if seen < size:
            chosen.append(item)
        else:
            slot = rng.randint(0, seen)
            if slot < size:
                chosen[slot] = item
    return chosen


@dataclass
class _Runner:
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
        """Serve cached items from the store; a pool of workers sends the rest to the backend."""
        self._results: asyncio.Queue[PredictionRecord | None] = asyncio.Queue()
        self._calls_reserved = 0
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
        """Items (with their cache keys) that need a call; a small first chunk starts calls sooner."""
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
            verdict = None if row is None else self._cached_verdict(item, key, row, cached)
            if verdict is None:
                uncached.append((item, key))
                continue
            prediction = self._prediction(item, row["output_text"] or "", verdict)
            prediction.cached_call_id = row["id"]
            self.counts.cache_hits += 1
            self._results.put_nowait(prediction)
        return uncached

    def _cached_verdict(self, item: Item, key: str, row: Any, cached: dict[str, Any]) -> Verdict | None:
        """Judge a cached answer, with its cached extra calls; None when one of those is not cached."""
        text = row["output_text"] or ""
        logprobs = response_from_body(row["response"], json.loads(row["response"])).token_logprobs
        verdict = judge(self.job.spec, item, text, logprobs)
        extra = extra_calls(self.job.spec, item, self.job.request(item), verdict, key)
        if extra is None:
            return verdict
        found = self.store.cached_calls(key for key, _ in extra.requests)
        rows = [found.get(key) for key, _ in extra.requests]
        if any(r is None for r in rows):
            return None
        confidence = extra.combine([r["output_text"] or "" for r in rows])
        return verdict if confidence is None else with_confidence(self.job.spec, verdict, confidence)

    async def _worker(self, work: asyncio.Queue[tuple[Item, str] | None]) -> None:
        while (item_and_key := await work.get()) is not None:
            if not self._budget_reached():  # past the budget, items stay pending
                await self._results.put(await self._label_one(*item_and_key))

    async def _score_with_extra_calls(self, item: Item, extra: ExtraCalls, verdict: Verdict,
                                      calls: list[CallRecord]) -> Verdict:
        """Make the extra calls one after another (in-flight calls stay bounded) and re-route."""
        texts: list[str | None] = []
        for key, request in extra.requests:
            try:
                texts.append((await self._call_with_retries(item, key, request, calls)).text)
            except (BackendError, BudgetExhausted):
                texts.append(None)
        confidence = extra.combine(texts)
        return verdict if confidence is None else with_confidence(self.job.spec, verdict, confidence)

    def _budget_reached(self) -> bool:
        if self.options.max_calls is not None and self._calls_reserved >= self.options.max_calls:
            self.stop_reason = f"call budget of {self.options.max_calls} reached"
        tokens = self.counts.prompt_tokens + self.counts.completion_tokens
        if self.options.max_tokens is not None and tokens >= self.options.max_tokens:
            self.stop_reason = f"token budget of {self.options.max_tokens} reached"
        return self.stop_reason is not None

    async def _label_one(self, item: Item, cache_key: str) -> PredictionRecord:
        calls: list[CallRecord] = []
        try:
            request = self.job.request(item)
            response = await self._call_with_retries(item, cache_key, request, calls)
        except (BackendError, BudgetExhausted, InputError) as exc:
            prediction = self._prediction(item, None, None, error=str(exc))
        else:
            verdict = judge(self.job.spec, item, response.text, response.token_logprobs)
            response, verdict = await self._ask_again(item, cache_key, request, response, verdict, calls)
            extra = extra_calls(self.job.spec, item, request, verdict, cache_key)
            if extra is not None:
                verdict = await self._score_with_extra_calls(item, extra, verdict, calls)
            prediction = self._prediction(item, response.text, verdict)
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
                response = await self._call_with_retries(item, cache_key, request, calls)
            except (BackendError, BudgetExhausted):
                break  # keep the answer we have; its problems route it to review
            verdict = judge(self.job.spec, item, response.text, response.token_logprobs)
        return response, verdict

    async def _call_with_retries(self, item: Item, cache_key: str, request: CompletionRequest,
                                 calls: list[CallRecord]) -> CompletionResponse:
        settings = self.job.settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retries + 1),
            wait=_RetryAfterWait(settings.backoff),
            retry=retry_if_exception(lambda exc: isinstance(exc, BackendError) and exc.retryable),
            reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._attempt(item, cache_key, request, calls, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(self, item: Item, cache_key: str, request: CompletionRequest, calls: list[CallRecord],
                       number: int) -> CompletionResponse:
        if self.options.max_calls is not None and self._calls_reserved >= self.options.max_calls:
            raise BudgetExhausted(f"call budget of {self.options.max_calls} reached")
        self._calls_reserved += 1
        started = time.perf_counter()
        record = CallRecord(item_id=item.id, cache_key=cache_key, backend=self.backend.name,
                            model=self.job.model_id, prompt_version=self.job.prompt.version,
                            request=_logged_request(request, self.job.prompt), attempt=number, latency_ms=0.0)
        calls.append(record)
        try:
            response = await self.backend.complete(request)
        except BackendError as exc:
            record.latency_ms = (time.perf_counter() - started) * 1000
            record.error, record.status_code, record.response = str(exc), exc.status, exc.body
            raise
        record.latency_ms = (time.perf_counter() - started) * 1000
        record.response, record.output_text, record.status_code = response.raw, response.text, response.status_code
        record.prompt_tokens, record.completion_tokens = response.prompt_tokens, response.completion_tokens
        self.counts.prompt_tokens += response.prompt_tokens or 0
        self.counts.completion_tokens += response.completion_tokens or 0
        return response

    def _prediction(self, item: Item, text: str | None, verdict: Verdict | None,
                    error: str | None = None) -> PredictionRecord:
        prediction = PredictionRecord(
            item_id=item.id, labeler=self.job.labeler, job_key=self.job.key, item_hash=item.content_hash,
            prompt_version=self.job.prompt.version, model=self.job.model_id, status="failed", raw_text=text,
            error=error, route=FAILED, reasons=["failed_call"])
        if verdict is None:
            return prediction
        validation, confidence = verdict.validation, verdict.confidence
        prediction.status = "ok" if validation.output is not None else "unparsable"
        prediction.output, prediction.repaired = validation.output, validation.repaired
        prediction.problems = validation.problems_json()
        prediction.error = "; ".join(p.message for p in validation.problems) or None
        prediction.route, prediction.reasons = verdict.route.state, verdict.route.reasons
        if confidence is not None:
            prediction.confidence, prediction.confidence_method = confidence.value, confidence.method
            prediction.field_confidence = confidence.fields
        return prediction

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


class _RetryAfterWait:
    """Exponential backoff with jitter, or the server's Retry-After when it gives one."""

    def __init__(self, initial: float):
        self._backoff = wait_exponential_jitter(multiplier=initial, max=60.0, jitter=initial)

    def __call__(self, retry_state: Any) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, BackendError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_S)
        return self._backoff(retry_state)


def _logged_request(request: CompletionRequest, prompt: Prompt) -> dict[str, Any]:
    """The request as logged: the shared prefix is stored once per prompt version, not per call."""
    return {"prompt_version": prompt.version, "item_messages": request.messages[len(prompt.shared):],
            "temperature": request.temperature, "max_tokens": request.max_tokens,
            "top_logprobs": request.top_logprobs, "seed": request.seed}


def chunked(items: Iterator[Item], size: int, first: int | None = None) -> Iterator[list[Item]]:
    """Lists of ``size`` items (the first of ``first`` items, when given)."""
    chunk: list[Item] = []
    limit = first or size
    for item in items:
        chunk.append(item)
        if len(chunk) >= limit:
            yield chunk
            chunk, limit = [], size
    if chunk:
        yield chunk
