"""The web app and people's quality: each page's header says where its reviewer stands (qualifying, flagged
for retraining, their accuracy on test questions with ``show_scores``), ``/qualification`` shows a finished
round's missed questions with the right answers and the guideline text, and ``/next`` sends a qualifying
annotator there before each round. Flags read every answer: they are computed at most every :data:`FRESH_S`
seconds; the rest of a reviewer's standing is read for each page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from ..errors import MissingExtra
from ..people.qualification import feedback, qualification
from ..spec import TaskSpec
from ..store import Store
from . import Reviewer
from .web_auth import COOKIE, Who

FRESH_S = 30.0
SCORE_AFTER = 10  # test questions answered before show_scores shows a score


class Standing:
    """Where each reviewer stands, for page headers."""

    def __init__(self, store: Store, task: Callable[[], TaskSpec]):
        self.store, self.task = store, task
        self._flags: tuple[float, dict[str, list[str]]] = (-FRESH_S, {})

    def accuracy(self, name: str) -> str | None:
        """``name``'s accuracy on test questions, as experts see it beside their answers."""
        rows = self.store.test_answers(name)
        return f"{sum(r['correct'] for r in rows) / len(rows):.0%} on {len(rows)} test questions" if rows else None

    def of(self, who: Reviewer) -> dict[str, Any]:
        spec = self.task()
        state = qualification(self.store, spec, who.name, who.role)
        found: dict[str, Any] = {"qualifying": state.qualifying_now, "round": len(state.rounds) + 1,
                                 "in_round": state.in_round, "size": state.size}  # fmt: skip
        why = self._flagged().get(who.name)
        found.update(flagged=bool(why), why="; ".join(why or []))
        rows = self.store.test_answers(who.name)
        if spec.annotation.show_scores and len(rows) >= SCORE_AFTER:
            found["score"] = f"{sum(r['correct'] for r in rows) / len(rows):.0%} of {len(rows)}"
        return found

    def _flagged(self) -> dict[str, list[str]]:
        at, flags = self._flags
        if time.monotonic() - at > FRESH_S:
            try:
                from ..people.scores import annotator_scores  # the agree extra

                flags = {s.name: s.why for s in annotator_scores(self.store, self.task()) if s.flagged}
            except (ImportError, MissingExtra):
                flags = {}
            self._flags = (time.monotonic(), flags)
        return flags


def standing_processor(standing: Standing) -> Callable[[Request], dict[str, Any]]:
    """A template context processor: ``standing`` of the logged-in reviewer (none on the login page)."""

    def processor(request: Request) -> dict[str, Any]:
        who = request.app.state.sessions.get(request.cookies.get(COOKIE, ""))
        return {"standing": standing.of(who) if who is not None else None}

    return processor


def needs_qualification_page(store: Store, spec: TaskSpec, who: Reviewer) -> bool:
    """Whether ``/next`` shows the qualification page first: a qualifying annotator between rounds."""
    state = qualification(store, spec, who.name, who.role)
    return state.qualifying_now and state.in_round == 0


def add_people_routes(app: FastAPI, store: Store, task: Callable[[], TaskSpec], templates: Jinja2Templates) -> None:
    @app.get("/qualification", response_class=HTMLResponse, include_in_schema=False)
    async def qualification_page(request: Request, who: Who) -> Response:
        spec = task()
        state = qualification(store, spec, who.name, who.role)
        missed = feedback(store, spec, state.rounds[-1]) if state.rounds and not state.qualified else []
        share = spec.annotation.qualify.pass_ if spec.annotation.qualify else 0.0
        return templates.TemplateResponse(
            request, "qualification.html", {"who": who, "state": state, "missed": missed, "pass_share": share}
        )

    @app.get("/api/qualification", summary="Where you stand with the qualification rounds")
    async def api_qualification(who: Who) -> dict[str, Any]:
        state = qualification(store, task(), who.name, who.role)
        return {"required": state.required, "qualified": state.qualified, "in_round": state.in_round,
                "size": state.size, "rounds": [{"number": r.number, "answered": r.answered, "correct": r.correct,
                                                "passed": r.passed} for r in state.rounds]}  # fmt: skip
