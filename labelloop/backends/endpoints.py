"""Which server answers the next request, when a model is served by several (``model.base_urls``).

Each request goes to the endpoint with the fewest requests in flight (relative to its own concurrency limit),
and never past that limit: faster servers free their slots sooner and so take a larger share. An endpoint
that fails ``SET_ASIDE_AFTER`` times in a row (connection errors, time-outs, 5xx) is set aside, then probed
with one request after ``PROBE_AFTER_S`` seconds (doubling while it keeps failing, up to ``MAX_PROBE_S``);
one success brings it back. While every endpoint is full or set aside, requests wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

SET_ASIDE_AFTER = 3
PROBE_AFTER_S = 2.0
MAX_PROBE_S = 60.0


@dataclass
class Endpoint:
    """One server: its URL, its limit, what it is doing and how it has been answering."""

    url: str
    limit: int
    in_flight: int = 0
    served: int = 0
    failures_in_a_row: int = 0
    aside_until: float = 0.0  # monotonic time; 0 = in use
    probing: bool = False
    pause: float = PROBE_AFTER_S

    def usable(self, now: float) -> bool:
        if self.in_flight >= self.limit:
            return False
        if self.aside_until == 0.0:
            return True
        return now >= self.aside_until and not self.probing  # one probe at a time


class Endpoints:
    """The router. ``async with endpoints.use() as endpoint:`` around one request; then :meth:`succeeded` or
    :meth:`failed`."""

    def __init__(self, urls: list[tuple[str, int]]):
        self.all = [Endpoint(url.rstrip("/"), limit) for url, limit in urls]
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Endpoint]:
        endpoint = await self._acquire()
        try:
            yield endpoint
        finally:
            endpoint.in_flight -= 1
            endpoint.probing = False
            async with self._changed:
                self._changed.notify_all()

    async def _acquire(self) -> Endpoint:
        async with self._changed:
            while True:
                now = time.monotonic()
                usable = [e for e in self.all if e.usable(now)]
                if usable:
                    chosen = min(usable, key=lambda e: (e.in_flight / e.limit, e.in_flight))
                    chosen.in_flight += 1
                    chosen.probing = chosen.aside_until != 0.0
                    return chosen
                waits = [e.aside_until - now for e in self.all if e.aside_until and not e.probing]
                timeout = max(0.01, min(waits)) if waits and min(waits) > 0 else None
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.served += 1
        endpoint.failures_in_a_row, endpoint.aside_until, endpoint.pause = 0, 0.0, PROBE_AFTER_S

    def failed(self, endpoint: Endpoint) -> None:
        """A failure the server is to blame for (not a 4xx about the request)."""
        endpoint.failures_in_a_row += 1
        if endpoint.aside_until or endpoint.failures_in_a_row >= SET_ASIDE_AFTER:
            if endpoint.aside_until:  # a failed probe: wait longer before the next
                endpoint.pause = min(endpoint.pause * 2, MAX_PROBE_S)
            endpoint.aside_until = time.monotonic() + endpoint.pause

    def shares(self) -> dict[str, int]:
        """Successful requests per endpoint so far."""
        return {endpoint.url: endpoint.served for endpoint in self.all}
