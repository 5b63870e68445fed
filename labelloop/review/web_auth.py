"""Who is asking: the reviewer behind a request's session cookie or bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from . import Reviewer, authenticate

COOKIE = "labelloop_session"


class NotLoggedIn(Exception):
    pass


async def current_reviewer(request: Request) -> Reviewer:
    """The reviewer of this request: from the session cookie, or a bearer token (for scripts)."""
    found = request.app.state.sessions.get(request.cookies.get(COOKIE, ""))
    bearer = request.headers.get("authorization", "")
    if found is None and bearer.lower().startswith("bearer "):
        found = authenticate(request.app.state.store, bearer[7:].strip())
    if found is None:
        raise NotLoggedIn
    return found


Who = Annotated[Reviewer, Depends(current_reviewer)]
