"""The review web app: FastAPI with server-rendered templates, no front-end build step.

Handlers are ``async`` on purpose: they run one at a time on the event loop, so the project's
single SQLite connection is never used by two threads at once.

Every page and API call needs a reviewer's session (a cookie set after logging in with the
token ``labelloop reviewer add`` printed) or ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .. import labelers
from .._extras import require
from ..assign import need
from ..errors import Conflict
from ..people.test_questions import is_test
from ..spec import ClassifySpec, TaskSpec
from ..store import Store
from . import (
    Dispute,
    QueueItem,
    Reviewer,
    ReviewError,
    adjudicate,
    adjudication_queue,
    authenticate,
    queue_item,
    review_queue,
    skip,
    submit,
    undo,
)
from .hold import hold, next_item, release
from .web_auth import COOKIE, NotLoggedIn, Who
from .web_holds import add_hold_routes
from .web_models import Adjudication, Decision, annotation_json, form_fields, qa_view
from .web_people import Standing, add_people_routes, needs_qualification_page, standing_processor

PAGE_PROGRESS_S = 2.0  # how old the progress line of an item page may be
_HERE = Path(str(resources.files("labelloop") / "review"))


def create_app(store: Store, spec: TaskSpec | Callable[[], TaskSpec], labeler: str = labelers.LLM) -> FastAPI:
    """The app over one project's store and task. ``spec`` may be a function returning the task, so that a
    changed ``labelloop.yaml`` takes effect without a restart (:meth:`labelloop.Project.web_app` passes one).
    Sessions live in memory (a restart asks reviewers to log in again)."""

    def task() -> TaskSpec:
        return spec() if callable(spec) else spec

    app = FastAPI(title="labelloop review", summary="Review doubtful labels; read-only JSON API under /api")
    standing = Standing(store, task)
    templates = Jinja2Templates(directory=str(_HERE / "templates"), context_processors=[standing_processor(standing)])
    # autoescape is on for .html
    templates.env.filters["as_json"] = lambda value: json.dumps(value, ensure_ascii=False)  # escaped on output
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    sessions: dict[str, Reviewer] = {}
    skipped: dict[str, set[str]] = {}
    app.state.store, app.state.sessions = store, sessions

    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, exc: NotLoggedIn) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first: a reviewer token is required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, error: str | None = None) -> Response:
        return templates.TemplateResponse(request, "login.html", {"error": error})

    @app.post("/login", include_in_schema=False)
    async def login(token: Annotated[str, Form()]) -> Response:
        found = authenticate(store, token.strip())
        if found is None:
            return RedirectResponse("/login?error=unknown+token", status_code=303)
        session = secrets.token_urlsafe(32)
        sessions[session] = found
        store.audit(found.name, "login", detail="review web app")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page(request: Request, who: Who) -> Response:
        items = _queue(who, limit=500)
        return templates.TemplateResponse(
            request, "queue.html", {"who": who, "items": items, "progress": _progress(), "adjudicating": False}
        )

    @app.get("/adjudicate", response_class=HTMLResponse, include_in_schema=False)
    async def disputes_page(request: Request, who: Who) -> Response:
        _expert(who)
        items = [d.item for d in _disputes(who, limit=500)]
        return templates.TemplateResponse(
            request, "queue.html", {"who": who, "items": items, "progress": _progress(), "adjudicating": True}
        )

    @app.get("/adjudicate/{item_id}", response_class=HTMLResponse, include_in_schema=False)
    async def dispute_page(request: Request, item_id: str, who: Who) -> Response:
        _expert(who)
        dispute = next(
            (d for d in adjudication_queue(store, task(), labeler, limit=100_000) if d.item.item_id == item_id), None
        )
        if dispute is None:
            raise HTTPException(404, f"{item_id!r} is not disputed")
        return _item_page(request, who, replace(dispute.item, output=dispute.tentative, field_confidence={}), dispute)

    @app.get("/next", include_in_schema=False)
    async def next_page(who: Who, ready: bool = False) -> Response:
        return RedirectResponse(_next_url(who, ready), status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse, include_in_schema=False)
    async def item_page(request: Request, item_id: str, who: Who) -> Response:
        item = _item(item_id, who)
        held = hold(store, task(), item_id, who.name, labeler)  # opening an item claims it, when it still can be
        return _item_page(request, who, item, None, held)

    def _item_page(
        request: Request, who: Reviewer, item: QueueItem, dispute: Dispute | None, held: bool = True
    ) -> Response:
        spec = task()
        others = [name for name in store.review_holders(item.item_id) if name != who.name]
        latest = None if is_test(store, item.item_id) else store.latest_annotation(item.item_id)
        blind = not spec.annotation.show_prelabel
        answers = [{"by": by, "output": output, "accuracy": standing.accuracy(by)}
                   for by, output in dispute.answers.items()] if dispute else []  # fmt: skip
        return templates.TemplateResponse(
            request,
            "item.html",
            {
                "who": who,
                "item": item,
                "spec": spec,
                "fields": form_fields(spec, item),
                "is_classify": isinstance(spec, ClassifySpec),
                "labels": getattr(spec, "label_names", []),
                "answered_by": latest["annotator"] if latest and not blind and not dispute else None,
                "held_elsewhere": not held and not dispute,
                "holders": others if who.role == "expert" else [],
                "progress": _progress(fresh_within=PAGE_PROGRESS_S),
                "dispute": dispute,
                "answers": answers,
                "mentions_field": getattr(spec, "mentions_field", None),
                "qa": qa_view(store, spec, item.output, store.prediction_context(item.item_id, labeler)),
                "page": {
                    "item_id": item.item_id,
                    "version": item.version,
                    "output": item.output,
                    "fields": spec.output_fields,
                    "text": item.text,
                    "adjudicating": dispute is not None,
                    "answers": answers,
                    "mentions_field": getattr(spec, "mentions_field", None),
                    "span_labels": getattr(spec, "label_names", []) if hasattr(spec, "mentions_field") else [],
                },
            },
        )

    # response_model: the usual answer; the 409 below is a JSONResponse, which FastAPI sends as it is
    @app.post(
        "/api/items/{item_id}/decision", summary="Accept, edit, label or skip an item", response_model=dict[str, Any]
    )
    async def decide(item_id: str, decision: Decision, who: Who) -> dict[str, Any] | JSONResponse:
        item = _item(item_id, who)
        if decision.action == "skip":
            skip(store, item, who.name)
            release(store, item_id, who.name)
            skipped.setdefault(who.name, set()).add(item_id)
            return {"saved": False, "next": _next_url(who)}
        output = item.output if decision.action == "accept" else decision.output
        if output is None:
            raise HTTPException(422, "this item has no model answer to accept: edit or pick a label")
        try:
            submit(store, task(), item, who.name, output, decision.action, decision.version, labeler=labeler)
        except ReviewError as exc:
            raise HTTPException(422, f"{exc.field or 'answer'}: {exc.reason}") from None
        except Conflict as conflict:
            return JSONResponse(
                status_code=409,
                content={
                    "detail": f"{conflict.annotator} answered this item first",
                    "annotator": conflict.annotator,
                    "output": conflict.output,
                    "at": conflict.at,
                },
            )
        release(store, item_id, who.name)
        return {"saved": True, "next": _next_url(who)}

    @app.post("/api/items/{item_id}/adjudication", summary="An expert's final decision on a disputed item")
    async def decide_dispute(item_id: str, decision: Adjudication, who: Who) -> dict[str, Any]:
        _expert(who)
        item = _item(item_id, who)
        if decision.skip:
            skipped.setdefault(who.name, set()).add(item_id)
        elif decision.output is None:
            raise HTTPException(422, "an adjudication needs an answer")
        else:
            try:
                adjudicate(store, task(), item, who.name, decision.output)
            except ReviewError as exc:
                raise HTTPException(422, f"{exc.field or 'answer'}: {exc.reason}") from None
        disputes = _disputes(who, limit=1)
        return {
            "saved": not decision.skip,
            "next": f"/adjudicate/{disputes[0].item.item_id}" if disputes else "/adjudicate",
        }

    @app.get("/api/disputes", summary="Disputed items with every answer side by side (experts)")
    async def disputes(who: Who, limit: int = 50) -> list[dict[str, Any]]:
        _expert(who)
        return [
            {**vars(d.item), "answers": d.answers, "tentative": d.tentative, "agreement": d.agreement}
            for d in _disputes(who, limit=min(limit, 1000))
        ]

    @app.post("/api/undo", summary="Withdraw your last decision")
    async def undo_last(who: Who) -> dict[str, Any]:
        item_id = undo(store, who.name)
        if item_id is None:
            raise HTTPException(404, "nothing to undo")
        skipped.get(who.name, set()).discard(item_id)
        return {"item_id": item_id, "next": f"/items/{item_id}"}

    @app.get("/api/progress", summary="Done and left, and what is left by reason")
    async def progress(who: Who) -> dict[str, Any]:
        return _progress()

    @app.get("/api/items", summary="The review queue, lowest confidence first")
    async def items(who: Who, limit: int = 50) -> list[dict[str, Any]]:
        return [vars(item) for item in _queue(who, limit=min(limit, 1000))]

    @app.get("/api/items/{item_id}", summary="One item with the model's answer and its annotations")
    async def item(item_id: str, who: Who) -> dict[str, Any]:
        found = _item(item_id, who)
        if is_test(store, item_id):  # your answers to it, as any item shows them
            rows = [r for r in store.test_answers(_visible_to(who)) if r["item_id"] == item_id]
        else:
            rows = store.annotations(item_id, annotator=_visible_to(who))
        holders = store.review_holders(item_id) if who.role == "expert" else []
        return {**vars(found), "annotations": [annotation_json(row) for row in rows], "held_by": holders}

    @app.get("/api/annotations", summary="Current human annotations (annotators see their own)")
    async def annotations(who: Who, limit: int = 1000) -> list[dict[str, Any]]:
        rows = store.annotations(limit=min(limit, 10_000), annotator=_visible_to(who))
        return [annotation_json(row) for row in rows]

    def _visible_to(who: Reviewer) -> str | None:
        """Whose answers ``who`` may read: everyone's for experts, else their own (no anchoring on others)."""
        return None if who.role == "expert" else who.name

    def _expert(who: Reviewer) -> None:
        if who.role != "expert":
            raise HTTPException(403, "only reviewers with the expert role adjudicate")

    last_progress: list[Any] = [0.0, None]

    def _progress(fresh_within: float = 0.0) -> dict[str, Any]:
        """Done and left; item pages take a count up to ``fresh_within`` s old (counting reads every item)."""
        now = time.monotonic()
        if last_progress[1] is None or now - last_progress[0] > fresh_within:
            last_progress[:] = [now, store.review_progress(labeler, need(task()))]
        return last_progress[1]

    def _queue(who: Reviewer, limit: int) -> list[QueueItem]:
        passed = skipped.get(who.name, set())
        items = review_queue(store, task(), who.name, labeler, limit=limit + len(passed))
        return _passed_last(items, passed, limit, key=lambda i: i.item_id)

    def _disputes(who: Reviewer, limit: int) -> list[Dispute]:
        passed = skipped.get(who.name, set())
        found = adjudication_queue(store, task(), labeler, limit=limit + len(passed))
        return _passed_last(found, passed, limit, key=lambda d: d.item.item_id)

    def _claim_next(who: Reviewer) -> QueueItem | None:
        """The next item nobody else holds, now held for ``who`` (the items they skipped last)."""
        passed = skipped.get(who.name, set())
        return next_item(
            store,
            task(),
            who.name,
            labeler,
            order=lambda found: _passed_last(found, passed, len(found), _item_id),
            extra=len(passed),
        )

    def _next_url(who: Reviewer, ready: bool = False) -> str:
        """Where ``who`` goes next: the qualification page between rounds (unless ``ready``), else an item."""
        if not ready and needs_qualification_page(store, task(), who):
            return "/qualification"
        item = _claim_next(who)
        return f"/items/{item.item_id}" if item else "/"

    add_hold_routes(app, store, task, labeler, _claim_next)
    add_people_routes(app, store, task, templates)

    def _item(item_id: str, who: Reviewer) -> QueueItem:
        found = queue_item(store, task(), item_id, labeler, who)
        if found is None:
            raise HTTPException(404, f"no item {item_id!r}")
        return found

    return app


def _item_id(item: QueueItem) -> str:
    return item.item_id


def _passed_last(found: list[Any], passed: set[str], limit: int, key: Callable[[Any], str]) -> list[Any]:
    """The queue with the items a reviewer skipped moved to the end."""
    return ([x for x in found if key(x) not in passed] + [x for x in found if key(x) in passed])[:limit]


def serve(
    store: Store,
    spec: TaskSpec | Callable[[], TaskSpec],
    host: str = "127.0.0.1",
    port: int = 8400,
    *,
    labeler: str = labelers.LLM,
    starting: Callable[[str], None] | None = None,
) -> None:
    """Serve :func:`create_app` with uvicorn until interrupted; ``starting`` is told the address first."""
    uvicorn = require("uvicorn", "web", "the review web server")
    app = create_app(store, spec, labeler)
    if starting is not None:
        starting(f"http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning")
