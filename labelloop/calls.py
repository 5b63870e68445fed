"""One model call as the engine makes it: inside the call budget, retried only when a retry can succeed
(429 with its Retry-After, 5xx, time-outs, dropped connections), and logged as a call record whether it
succeeds or not. This wraps the backend seam (``Backend.complete``) once, for every caller.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .backends import Backend, CompletionRequest, CompletionResponse
from .errors import BackendError, BudgetExhausted
from .job import Job
from .store import CallRecord, Item, RunCounts

MAX_RETRY_AFTER_S = 300.0


class Allowance(Protocol):
    """A budget shared with other processes (the Ray runner's workers): calls are taken from it in blocks."""

    reason: str | None  # why it grants no more: "call budget of N reached" or "token budget of N reached"

    def take(self, calls: int, tokens_spent: int) -> int:
        """Up to ``calls`` more calls (0: the budget is spent), reporting the tokens spent since the last take."""
        ...


ALLOWANCE_BLOCK = 64  # calls taken from a shared budget at a time


class Caller:
    """Makes a job's calls through ``backend``, counting attempts against ``max_calls`` and tokens in ``counts``;
    with an ``allowance``, the calls come from a budget shared with other workers, a block at a time."""

    def __init__(
        self,
        backend: Backend,
        job: Job,
        counts: RunCounts,
        max_calls: int | None = None,
        allowance: Allowance | None = None,
    ):
        self.backend, self.job, self.counts, self.max_calls = backend, job, counts, max_calls
        self.allowance = allowance
        if allowance is not None:
            self.max_calls = 0  # nothing until taken
        self.reserved = 0  # attempts started, successful or not
        self._tokens_reported = 0

    @property
    def budget_spent(self) -> bool:
        if self.max_calls is not None and self.reserved >= self.max_calls and self.allowance is not None:
            self.max_calls += self.allowance.take(ALLOWANCE_BLOCK, self._unreported_tokens())
        return self.max_calls is not None and self.reserved >= self.max_calls

    def _unreported_tokens(self) -> int:
        tokens = self.counts.prompt_tokens + self.counts.completion_tokens
        unreported, self._tokens_reported = tokens - self._tokens_reported, tokens
        return unreported

    def settle(self) -> None:
        """Give a shared budget back the calls taken and not made, and report the tokens spent."""
        if self.allowance is not None and self.max_calls is not None:
            self.allowance.take(self.reserved - self.max_calls, self._unreported_tokens())  # a negative take
            self.max_calls = self.reserved

    @property
    def spent_reason(self) -> str:
        if self.allowance is not None and self.allowance.reason:
            return self.allowance.reason
        return f"call budget of {self.max_calls} reached"

    async def call(
        self, item: Item, cache_key: str, request: CompletionRequest, calls: list[CallRecord]
    ) -> CompletionResponse:
        """The backend's answer, retried as the settings allow; every attempt is appended to ``calls``."""
        settings = self.job.settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retries + 1),
            wait=_RetryAfterWait(settings.backoff),
            retry=retry_if_exception(lambda exc: isinstance(exc, BackendError) and exc.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(item, cache_key, request, calls, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self, item: Item, cache_key: str, request: CompletionRequest, calls: list[CallRecord], number: int
    ) -> CompletionResponse:
        if self.budget_spent:
            raise BudgetExhausted(self.spent_reason)
        self.reserved += 1
        started = time.perf_counter()
        record = CallRecord(
            item_id=item.id,
            cache_key=cache_key,
            backend=self.backend.name,
            model=self.job.model_id,
            prompt_version=self.job.prompt.version,
            request=self.job.logged_request(request),
            attempt=number,
            latency_ms=0.0,
        )
        calls.append(record)
        try:
            response = await self.backend.complete(request)
        except BackendError as exc:
            record.latency_ms = (time.perf_counter() - started) * 1000
            record.error, record.status_code, record.response = str(exc), exc.status, exc.body
            record.endpoint = exc.endpoint
            raise
        record.latency_ms = (time.perf_counter() - started) * 1000
        record.response, record.output_text, record.status_code = response.raw, response.text, response.status_code
        record.prompt_tokens, record.completion_tokens = response.prompt_tokens, response.completion_tokens
        record.endpoint = response.endpoint
        self.counts.prompt_tokens += response.prompt_tokens or 0
        self.counts.completion_tokens += response.completion_tokens or 0
        return response


class _RetryAfterWait:
    """Exponential backoff with jitter, or the server's Retry-After when it gives one."""

    def __init__(self, initial: float):
        self._backoff = wait_exponential_jitter(multiplier=initial, max=60.0, jitter=initial)

    def __call__(self, retry_state: Any) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, BackendError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_S)
        return self._backoff(retry_state)
