"""Routing: every prediction ends in exactly one state, with the reasons that put it there."""

from __future__ import annotations

from dataclasses import dataclass, field

from .confidence import Confidence
from .spec import TaskSpec
from .validate import Validation

ACCEPTED, NEEDS_REVIEW, FAILED = "accepted", "needs_review", "failed"
STATES = (ACCEPTED, NEEDS_REVIEW, FAILED)


@dataclass(frozen=True)
class Route:
    state: str
    reasons: list[str] = field(default_factory=list)


def route(spec: TaskSpec, validation: Validation | None, confidence: Confidence | None) -> Route:
    """``accepted`` only when the answer is valid, unrepaired and confident enough field by field.

    ``validation`` is None when the call itself failed: the item is ``failed`` (the next run retries it).
    """
    if validation is None:
        return Route(FAILED, ["failed_call"])
    reasons = list(dict.fromkeys(problem.reason() for problem in validation.problems))
    if validation.repaired and validation.output is not None:
        reasons.append("repaired")
    if validation.output is not None:
        reasons.extend(_confidence_reasons(spec, confidence))
    return Route(NEEDS_REVIEW, reasons) if reasons else Route(ACCEPTED)


def _confidence_reasons(spec: TaskSpec, confidence: Confidence | None) -> list[str]:
    review = spec.review
    if confidence is None or confidence.value is None:
        return [] if review.accept_without_confidence else ["no_confidence"]
    low = [f"low_confidence[{name}]" for name, value in confidence.fields.items() if value < review.threshold_for(name)]
    if not low and confidence.value < review.threshold:
        low.append("low_confidence")
    return low
