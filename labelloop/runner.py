"""A labeling run at full speed: a producer serves cached answers and queues the rest, a pool of workers
calls the backend and judges each answer, and one writer commits each batch of results in one transaction.

The pool size is ``model.concurrency`` (capped by what the backend can serve at once); the work queue is
bounded, so pending items stream from the store in chunks and a million items are never held in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from .backends import Backend, CompletionRequest, CompletionResponse
from .cache import CallCache, serve_cached
from .calls import Allowance, Caller
from .confidence.extra_calls import ExtraCalls
from .errors import BackendError, BudgetExhausted, InputError
from .gate import Verdict, judge
from .job import Job, LabelOptions
from .selection import CHUNK, FIRST_CHUNK, chunked
from .store import CallRecord, Item, PredictionRecord, RunCounts, Store
from .windowed import WindowCalls


class ProgressSink(Protocol):
    """Receives progress; the CLI shows it as a rich progress bar."""

    def start(self, total: int) -> None: ...

    def advance(self, items: int, *, errors: int, tokens: int, calls: int) -> None: ...

    def stop(self) -> None: ...


class ResultWriter(Protocol):
    """Where judged results go, a batch at a time: the store, or (on a Ray worker) Parquet shards."""

    def save_predictions(
        self, run_id: int, predictions: Sequence[PredictionRecord], counts: RunCounts | None = None
    ) -> None: ...

    def close(self) -> None: ...


@dataclass
class Runner:
    """A producer serves cached answers and queues the rest; a pool of workers calls the backend; one
    writer commits each batch of results in one transaction.

    ``store`` is both the cache and (through a connection of the writer's own) where results go; the Ray
    runner passes ``cache`` and ``open_writer`` instead and no store."""

    store: Store | None
    job: Job
    backend: Backend
    options: LabelOptions
    run_id: int
    progress: ProgressSink | None
    counts: RunCounts = field(default_factory=RunCounts)
    unparsable: int = 0
    stop_reason: str | None = None
    cache: CallCache | None = None
    open_writer: Callable[[], ResultWriter] | None = None
    allowance: Allowance | None = None  # a budget shared with other workers (the Ray runner's)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = self.store
        if self.open_writer is None:
            assert self.store is not None, "a runner without a store is given its writer"
            self.open_writer = self.store.reopen

    async def run(self, items: Iterator[Item]) -> None:
        self._results: asyncio.Queue[PredictionRecord | None] = asyncio.Queue()
        if not hasattr(self, "_caller"):  # one call budget across the passes of a run
            self._caller = Caller(self.backend, self.job, self.counts, self.options.max_calls, self.allowance)
        work: asyncio.Queue[tuple[Item, str] | None] = asyncio.Queue(maxsize=2 * self._concurrency)
        writer = asyncio.create_task(self._write_results())
        tasks = [
            asyncio.create_task(self._produce(items, work)),
            *(asyncio.create_task(self._worker(work)) for _ in range(self._concurrency)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._results.put(None)
            await writer

    def settle(self) -> None:
        """The run is over: a shared budget gets back the calls taken and not made."""
        if hasattr(self, "_caller"):
            self._caller.settle()

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
        """Items (with their context and cache keys) that need a call."""
        for chunk in chunked(map(self.job.attach, items), CHUNK, first=FIRST_CHUNK):
            yield from self._serve_from_cache(chunk)

    def _serve_from_cache(self, chunk: list[Item]) -> list[tuple[Item, str]]:
        if not self.options.use_cache:
            return [(item, self.job.cache_key(item)) for item in chunk]
        assert self.cache is not None, "set in __post_init__"
        hits, uncached = serve_cached(self.cache, self.job, chunk)
        self.counts.cache_hits += len(hits)
        for prediction in hits:
            self._results.put_nowait(prediction)
        return uncached

    async def _worker(self, work: asyncio.Queue[tuple[Item, str] | None]) -> None:
        while (item_and_key := await work.get()) is not None:
            if not self._budget_reached():  # past the budget, items stay pending
                await self._results.put(await self._label_one(*item_and_key))

    def _budget_reached(self) -> bool:
        if self._caller.budget_spent:
            self.stop_reason = self._caller.spent_reason
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
            extra = self.job.extra_calls(item, request, verdict, cache_key)
            if extra is not None:
                verdict = await self._score_with_extra_calls(item, extra, verdict, calls)
            prediction = self.job.prediction(item, response.text, verdict)
        prediction.calls = calls
        return prediction

    async def _ask_again(
        self,
        item: Item,
        cache_key: str,
        request: CompletionRequest,
        response: CompletionResponse,
        verdict: Verdict,
        calls: list[CallRecord],
    ) -> tuple[CompletionResponse, Verdict]:
        """Feed validation problems back to the model, up to ``review.feedback_retries`` times."""
        for _ in range(self.job.spec.review.feedback_retries):
            if verdict.validation.valid:
                break
            request = replace(
                request,
                messages=[
                    *request.messages,
                    {"role": "assistant", "content": response.text},
                    {"role": "user", "content": verdict.validation.feedback()},
                ],
            )
            try:
                response = await self._caller.call(item, cache_key, request, calls)
            except (BackendError, BudgetExhausted):
                break  # keep the answer we have; its problems route it to review
            verdict = judge(self.job.spec, item, response.text, response.token_logprobs)
        return response, verdict

    async def _score_with_extra_calls(
        self, item: Item, extra: ExtraCalls | WindowCalls, verdict: Verdict, calls: list[CallRecord]
    ) -> Verdict:
        """Make the extra calls one after another (in-flight calls stay bounded) and re-route."""
        answers: list[tuple[str, list[dict] | None] | None] = []
        for key, request in extra.requests:
            try:
                response = await self._caller.call(item, key, request, calls)
                answers.append((response.text, response.token_logprobs))
            except (BackendError, BudgetExhausted):
                answers.append(None)
        return self.job.with_extra(verdict, extra, answers)

    async def _write_results(self) -> None:
        """Commit whatever results have arrived, one transaction per batch, in a thread with a connection of
        its own: the event loop keeps calling the model while the database works (a round trip to PostgreSQL
        would otherwise stop every request in flight)."""
        assert self.open_writer is not None, "set in __post_init__"
        writer = await asyncio.to_thread(self.open_writer)
        try:
            await self._write_batches(writer)
        finally:
            writer.close()

    async def _write_batches(self, writer: ResultWriter) -> None:
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
                counts = replace(self.counts)  # as they are now; the loop goes on counting meanwhile
                await asyncio.to_thread(writer.save_predictions, self.run_id, predictions, counts)

    def _count(self, predictions: list[PredictionRecord]) -> None:
        failed = sum(p.status == "failed" for p in predictions)
        self.counts.items_done += len(predictions) - failed
        self.counts.items_failed += failed
        self.unparsable += sum(p.status == "unparsable" for p in predictions)
        calls = sum(len(p.calls) for p in predictions)
        self.counts.calls += calls
        if self.progress:
            self.progress.advance(
                len(predictions),
                errors=failed,
                tokens=self.counts.prompt_tokens + self.counts.completion_tokens,
                calls=calls,
            )
