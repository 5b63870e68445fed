"""Long texts rated window by window: the first window is the item's own call, each further window an extra call
(with a cache key of its own), and the answers are combined into one for the whole text, located problems mapped
back to offsets in it (:func:`labelloop.coherence.combine`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .backends import CompletionRequest
from .coherence import Window, combine
from .confidence import Confidence
from .confidence.extra_calls import extra_key
from .context import views
from .gate import Verdict, judge
from .grounding import BREAKS, WINDOW
from .route import route
from .spec import CoherenceSpec
from .store import Item
from .validate import Problem, Validation

Answer = tuple[str, list[dict] | None]  # a window's answer text and its token logprobs


@dataclass
class WindowCalls:
    """The further windows' requests, and how their answers and the first window's verdict make one verdict."""

    requests: list[tuple[str, CompletionRequest]]
    merge: Callable[[Verdict, Sequence[Answer | None]], Verdict]


def window_calls(
    spec: CoherenceSpec, item: Item, request: CompletionRequest, cache_key: str, render: Callable[[Item], list[dict]]
) -> WindowCalls | None:
    """The calls for windows 2… of ``item`` (None: the text fits in one); ``render`` gives a window's messages."""
    parts = views(item)
    if len(parts) < 2:
        return None
    requests = [
        (extra_key(cache_key, f"window:{number}"), replace(request, messages=render(view)))
        for number, view in enumerate(parts[1:], 2)
    ]

    def merge(first: Verdict, answers: Sequence[Answer | None]) -> Verdict:
        verdicts = [first, *(None if a is None else judge(spec, view, *a) for view, a in zip(parts[1:], answers))]
        return _merged(spec, item, parts, verdicts)

    return WindowCalls(requests, merge)


def _merged(spec: CoherenceSpec, item: Item, parts: list[Item], verdicts: list[Verdict | None]) -> Verdict:
    """One verdict for the text: answers combined, every window's problems kept (a window without an answer is
    a problem), the least confident window's confidence."""
    problems, answered, unlocated = [], [], list[dict]()
    for number, (view, verdict) in enumerate(zip(parts, verdicts), 1):
        if verdict is None or verdict.validation.output is None:
            problems.append(_missing(number))
            continue
        problems += verdict.validation.problems
        start, end = view.fields[WINDOW]
        located = [p for p in verdict.validation.output["problems"] if "start" in p]
        unlocated += [p for p in verdict.validation.output["problems"] if "start" not in p]
        answered.append((Window(start, end), {**verdict.validation.output, "problems": located}))
    output = None
    if answered:
        output = combine(answered, [lv.value for lv in spec.levels])
        output["problems"] += unlocated  # ungrounded quotes, kept for the reviewer (their problems route it)
        output[BREAKS] = list(item.fields.get(BREAKS, []))
    repaired = any(v is not None and v.validation.repaired for v in verdicts)
    validation = Validation(output, repaired, problems)
    confidence = _least(verdicts) if output is not None else None
    return Verdict(validation, confidence, route(spec, validation, confidence))


def _missing(number: int) -> Problem:
    return Problem("custom", f"window {number} has no answer", "windows")


def _least(verdicts: list[Verdict | None]) -> Confidence | None:
    """Every window's confidence is needed; the text's is the least of them, field by field."""
    found = [v.confidence for v in verdicts if v is not None]
    if len(found) < len(verdicts) or any(c is None or c.value is None for c in found):
        return None
    fields: dict[str, float] = {}
    for confidence in found:
        assert confidence is not None
        for name, value in confidence.fields.items():
            fields[name] = min(value, fields.get(name, value))
    return Confidence(min(c.value for c in found if c is not None and c.value is not None), "window_min", fields)
