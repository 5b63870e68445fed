"""A call and token budget shared by the Ray runner's workers: one small Ray actor keeps the ledger, and each
worker takes calls from it in blocks (``calls.ALLOWANCE_BLOCK``) and gives back what it did not use, so the run
makes at most ``--max-calls`` calls in all, as a local run does. Tokens are reported with each take: a token
budget is seen spent at most a block of calls per worker late (a local run overshoots by its calls in flight).
"""

from __future__ import annotations

from typing import Any

from .._extras import require


class Ledger:
    """The budget's state (runs as a Ray actor)."""

    def __init__(self, max_calls: int | None, max_tokens: int | None):
        self.max_calls, self.max_tokens = max_calls, max_tokens
        self.calls_left, self.tokens = max_calls, 0

    def take(self, calls: int, tokens_spent: int) -> tuple[int, str | None]:
        """Grant up to ``calls`` (a negative number gives calls back); why nothing more is granted, if so."""
        self.tokens += tokens_spent
        if calls > 0 and self.max_tokens is not None and self.tokens >= self.max_tokens:
            calls = 0  # tokens spent: nothing more, and nothing taken from the calls left
        granted = calls if self.calls_left is None else min(calls, self.calls_left)
        if self.calls_left is not None:
            self.calls_left -= granted
        return granted, self.reason() if calls >= 0 and granted <= 0 else None

    def reason(self) -> str | None:
        """Why the budget is spent (None: it is not)."""
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            return f"token budget of {self.max_tokens} reached"
        return f"call budget of {self.max_calls} reached" if self.calls_left == 0 else None


def start_ledger(max_calls: int | None, max_tokens: int | None) -> Any:
    """The ledger actor, or None without a budget."""
    if max_calls is None and max_tokens is None:
        return None
    ray = require("ray", "ray", "the Ray runner (--runner ray)")
    return ray.remote(num_cpus=0)(Ledger).remote(max_calls, max_tokens)


class SharedBudget:
    """A worker's side of the ledger (a :class:`labelloop.calls.Allowance`)."""

    def __init__(self, ledger: Any):
        self.ledger = ledger
        self.reason: str | None = None

    def take(self, calls: int, tokens_spent: int) -> int:
        if self.reason is not None and calls > 0:
            return 0
        ray = require("ray", "ray", "the Ray runner (--runner ray)")
        granted, self.reason = ray.get(self.ledger.take.remote(calls, tokens_spent))
        return int(granted)
