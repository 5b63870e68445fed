"""The review API's claims: the next item nobody else holds, and keeping or giving back an open item
(see :mod:`labelloop.review.hold`). The item page's script renews its claim while open and releases it on leave."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from ..spec import TaskSpec
from ..store import Store
from . import QueueItem, Reviewer
from .hold import HOLD_SECONDS, hold, release
from .web_auth import Who


def add_hold_routes(
    app: FastAPI,
    store: Store,
    task: Callable[[], TaskSpec],
    labeler: str,
    claim_next: Callable[[Reviewer], QueueItem | None],
) -> None:
    """``claim_next`` is the app's own choice of a reviewer's next item (the one ``/next`` goes to)."""

    @app.get("/api/next", summary="The next item nobody else holds, now held for you (null when none is left)")
    async def api_next(who: Who) -> dict[str, Any]:
        item = claim_next(who)
        return {"item": None if item is None else vars(item), "hold_seconds": HOLD_SECONDS}

    @app.post("/api/items/{item_id}/hold", summary="Keep (or take) an open item; false if others hold it")
    async def api_hold(item_id: str, who: Who) -> dict[str, Any]:
        return {"held": hold(store, task(), item_id, who.name, labeler), "hold_seconds": HOLD_SECONDS}

    @app.post("/api/items/{item_id}/release", summary="Give an open item back")
    async def api_release(item_id: str, who: Who) -> dict[str, Any]:
        release(store, item_id, who.name)
        return {"released": True}
