"""The quality gate: validate an answer, score its confidence, route it — one function, one verdict.

Every labeling path (a fresh answer, a cached one re-judged under today's rules, the Ray runner to
come) passes through :func:`judge`, so the same answer always gets the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from .confidence import Confidence, score
from .route import Route, route
from .spec import TaskSpec
from .store import Item
from .validate import Validation, validate_answer


@dataclass(frozen=True)
class Verdict:
    """What the quality gate concluded about one answer."""

    validation: Validation
    confidence: Confidence | None
    route: Route


def judge(spec: TaskSpec, item: Item, text: str, token_logprobs: list[dict] | None) -> Verdict:
    """Validate an answer (:mod:`.validate`), score its confidence (:mod:`.confidence`), route it (:mod:`.route`)."""
    validation = validate_answer(spec, text, item)
    confidence = None
    if validation.output is not None:
        confidence = score(spec, validation.output, text, token_logprobs)
    return Verdict(validation, confidence, route(spec, validation, confidence))


def with_confidence(spec: TaskSpec, verdict: Verdict, confidence: Confidence) -> Verdict:
    """The same answer routed again with a confidence found another way (self-consistency, a judge)."""
    return Verdict(verdict.validation, confidence, route(spec, verdict.validation, confidence))
