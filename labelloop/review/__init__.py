"""Human review: the queue of doubtful predictions and the decisions people make on them.

The terminal UI (``terminal.py``) and, later, the web app are views over these functions.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import jsonschema

from .. import grounding, labelers
from .._actor import actor_or_default
from ..aggregate import aggregate
from ..assign import draw_sample, need
from ..errors import InputError
from ..people import test_questions
from ..spans import ground
from ..spec import ClassifySpec, TaskSpec
from ..store import Store

__all__ = [
    "Dispute",
    "QueueItem",
    "Reviewer",
    "ReviewError",
    "ROLES",
    "add_reviewer",
    "adjudicate",
    "adjudication_queue",
    "authenticate",
    "field_choices",
    "parse_field_value",
    "queue_item",
    "review_queue",
    "submit",
    "skip",
    "undo",
]

ROLES = ("annotator", "expert")
ACTIVE_POOL = 2000  # queue items considered when learn.review_order is active


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str


def add_reviewer(store: Store, name: str, role: str = "annotator", *, actor: str | None = None) -> str:
    """Register (or re-issue) a reviewer; returns their new token, which is stored only as a hash. The change
    is recorded in the audit log as ``actor`` (default: the OS user)."""
    if role not in ROLES:
        raise ReviewError(f"role must be one of {', '.join(ROLES)}", "role")
    if not name.strip():
        raise ReviewError("a reviewer needs a name", "name")
    token = secrets.token_urlsafe(24)
    store.add_reviewer(name.strip(), role, _token_hash(token), actor_or_default(actor))
    return token


def authenticate(store: Store, token: str) -> Reviewer | None:
    """The reviewer a token belongs to, or None."""
    row = store.reviewer_by_token_hash(_token_hash(token)) if token else None
    return Reviewer(row["name"], row["role"]) if row else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ReviewError(InputError):
    """A reviewer's answer that does not fit the task (the UI asks again)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__("review", None, message, field=field)


@dataclass(frozen=True)
class QueueItem:
    """One item waiting for a person: the text, the model's answer and why it was routed here."""

    item_id: str
    text: str
    prediction_id: int | None
    output: dict[str, Any] | None
    confidence: float | None
    field_confidence: dict[str, float]
    reasons: list[str]
    route: str | None
    version: int = 0
    changed_at: str | None = None  # when the source changed the text (earlier answers are history)


def review_queue(
    store: Store, spec: TaskSpec, reviewer: str, labeler: str = labelers.LLM, limit: int = 50, order: str = "confidence"
) -> list[QueueItem]:
    """Items that still need answers under the overlap policy and that ``reviewer`` has not answered,
    lowest confidence first; the model's answer is hidden when the policy is blind. Test questions are mixed
    in (or, while ``reviewer`` qualifies, are all there is: see :mod:`labelloop.people.test_questions`)."""
    draw_sample(store, spec, labeler)
    blind = not spec.annotation.show_prelabel
    if spec.learn.review_order == "active":
        from ..learn.active import active_order  # needs the embed extra

        rows = active_order(store, spec, store.review_queue(labeler, reviewer, ACTIVE_POOL, order, need(spec)), limit)
    else:
        rows = store.review_queue(labeler, reviewer, limit, order, need(spec))
    queue = [_queue_item(row, blind) for row in rows]

    def test_item(item_id: str) -> QueueItem:
        return _queue_item(store.review_item(labeler, item_id), blind)

    role = store.reviewer_role(reviewer) or ""  # unregistered (the terminal): tested, never asked to qualify
    return test_questions.mixed_in(store, spec, reviewer, role, queue, test_item)[:limit]


def queue_item(
    store: Store, spec: TaskSpec, item_id: str, labeler: str = labelers.LLM, reviewer: Reviewer | None = None
) -> QueueItem | None:
    """One item as ``reviewer`` sees it (any item, answered or not): blind annotators see no pre-label."""
    row = store.review_item(labeler, item_id)
    blind = not spec.annotation.show_prelabel and (reviewer is None or reviewer.role != "expert")
    if row is None:
        return None
    found = _queue_item(row, blind)
    if test_questions.is_test(store, item_id):  # shown like the queue's own items (see test_questions)
        neighbours = store.review_queue(labeler, reviewer.name if reviewer else None, 1, need=need(spec))
        found = test_questions.like(found, [_queue_item(r, blind) for r in neighbours])
    return found


def _queue_item(row: Any, blind: bool = False) -> QueueItem:
    return QueueItem(
        item_id=row["item_id"],
        text=row["text"],
        prediction_id=row["id"],
        output=json.loads(row["output"]) if row["output"] and not blind else None,
        confidence=row["confidence"],
        field_confidence={} if blind else json.loads(row["field_confidence"] or "{}"),
        reasons=json.loads(row["reasons"] or "[]"),
        route=row["route"],
        version=row["review_version"],
        changed_at=row["changed_at"],
    )


def submit(
    store: Store,
    spec: TaskSpec,
    item: QueueItem,
    reviewer: str,
    output: dict[str, Any],
    action: str,
    expected_version: int | None = None,
    labeler: str = labelers.LLM,
) -> int:
    """Store a reviewer's answer (it must satisfy the task schema) with an audit-log row.

    With ``expected_version``, an answer to an item that meanwhile got all the answers it needs
    raises :class:`~labelloop.errors.Conflict`.
    """
    output = _checked(store, spec, item, output)
    if test_questions.is_test(store, item.item_id):
        role = store.reviewer_role(reviewer) or ""
        return test_questions.answer(store, spec, item.item_id, reviewer, role, output, action)
    capacity = store.answers_needed(labeler, item.item_id, need(spec))
    return store.add_annotation(
        item.item_id,
        reviewer,
        output,
        action,
        item.prediction_id,
        before=item.output,
        expected_version=expected_version,
        capacity=capacity,
    )


def _checked(store: Store, spec: TaskSpec, item: QueueItem, output: dict[str, Any]) -> dict[str, Any]:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(spec.output_schema()).iter_errors(output))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or None
        raise ReviewError(error.message, field)
    return _grounded_quotes(store, spec, item, _grounded_mentions(spec, item, output))


def _grounded_quotes(store: Store, spec: TaskSpec, item: QueueItem, output: dict[str, Any]) -> dict[str, Any]:
    """The document kinds' quotes as a person gives them, checked against their text (see grounding)."""
    try:
        return grounding.person_answer(store, spec.kind, item.text, output)
    except grounding.QuoteError as exc:
        raise ReviewError(exc.message, exc.field) from None


@dataclass(frozen=True)
class Dispute:
    """A disputed item as an expert sees it: every answer side by side and the undecided aggregate."""

    item: QueueItem
    answers: dict[str, dict[str, Any]]
    tentative: dict[str, Any]
    agreement: float | None


def adjudication_queue(store: Store, spec: TaskSpec, labeler: str = labelers.LLM, limit: int = 50) -> list[Dispute]:
    """Items whose answers tie or agree too little, least agreed first (aggregating first if needed)."""
    aggregate(store, spec)
    model_votes = {name: dict(store.model_answers(name)) for name in spec.annotation.model_votes}
    disputes = []
    for row in store.disputed(labeler, limit):
        answers = {
            a["annotator"]: json.loads(a["output"])
            for a in store.annotations(row["item_id"])
            if a["is_current"] and a["kind"] == "answer"
        }
        answers.update({name: votes[row["item_id"]] for name, votes in model_votes.items() if row["item_id"] in votes})
        if row["output"] and labeler not in answers:  # the pre-label, for reference (it did not vote)
            answers[f"{labeler} (model, no vote)"] = json.loads(row["output"])
        gold = store.gold(row["item_id"])[0]
        disputes.append(Dispute(_queue_item(row), answers, json.loads(gold["output"]), row["agreement"]))
    return disputes


def adjudicate(store: Store, spec: TaskSpec, item: QueueItem, expert: str, output: dict[str, Any]) -> int:
    """Record an expert's final decision on an item (only reviewers with the ``expert`` role may)."""
    if store.reviewer_role(expert) != "expert":
        raise ReviewError(f"{expert} is not an expert: 'labelloop reviewer add {expert} --role expert'", "role")
    output = _checked(store, spec, item, output)
    return store.add_annotation(
        item.item_id, expert, output, "adjudicate", item.prediction_id, before=item.output, kind="adjudication"
    )


def _grounded_mentions(spec: TaskSpec, item: QueueItem, output: dict[str, Any]) -> dict[str, Any]:
    """A person's mentions with offsets: given ones must hold the mention's text; missing ones are found."""
    field = getattr(spec, "mentions_field", None)
    if not field:
        return output
    mentions = []
    for mention in output.get(field, []):
        start, end = mention.get("start"), mention.get("end")
        if start is None or end is None:
            found = ground(item.text, [mention], overlaps="allow")
            if not found.spans:
                raise ReviewError(f"{mention.get('text')!r}: {found.ungrounded[0]['reason']}", field)
            span = found.spans[0]
            mention = {**mention, "start": span.start, "end": span.end}
        elif not 0 <= start < end <= len(item.text) or item.text[start:end] != mention.get("text"):
            raise ReviewError(f"the text at {start}:{end} is not {mention.get('text')!r}", field)
        mentions.append({key: mention[key] for key in ("text", "label", "start", "end")})
    return {**output, field: mentions}


def skip(store: Store, item: QueueItem, reviewer: str) -> None:
    """Record that a reviewer passed over an item (it stays in the queue)."""
    store.audit(reviewer, "skip", item.item_id, before=item.output)


def undo(store: Store, reviewer: str) -> str | None:
    """Withdraw the reviewer's last answer; the item goes back to the queue. Returns its id."""
    return store.undo_last(reviewer)


def field_choices(spec: TaskSpec, field: str) -> list[Any] | None:
    """The allowed values of a field (or of its items, for a set of labels), when the schema lists them."""
    if isinstance(spec, ClassifySpec) and field == "label":
        return spec.label_names
    prop = spec.output_schema()["properties"][field]
    return prop.get("enum") or (prop.get("items") or {}).get("enum")


def parse_field_value(spec: TaskSpec, field: str, raw: str) -> Any:
    """Turn what a reviewer typed into a value of the field's JSON type (empty = null where allowed)."""
    prop = spec.output_schema()["properties"][field]
    types = prop.get("type", "string")
    types = types if isinstance(types, list) else [types]
    raw = raw.strip()
    choices = field_choices(spec, field)
    if "array" in types and choices is not None and not raw.startswith("["):
        return _chosen_items(raw, choices, field)
    if choices is not None and raw.isdigit() and 1 <= int(raw) <= len(choices):
        return choices[int(raw) - 1]
    if raw == "" or raw.lower() == "null":
        if "null" in types:
            return None
        raise ReviewError("a value is required", field)
    for kind in types:
        value = _convert(kind, raw)
        if value is not _NO_VALUE:
            return value
    raise ReviewError(f"expected {' or '.join(types)}", field)


_NO_VALUE = object()


def _chosen_items(raw: str, choices: list[Any], field: str) -> list[Any]:
    """A set typed as numbers or names separated by commas or spaces (empty: none)."""
    chosen = []
    for part in raw.replace(",", " ").split():
        if part.isdigit() and 1 <= int(part) <= len(choices):
            value = choices[int(part) - 1]
        elif part in choices:
            value = part
        else:
            raise ReviewError(f"{part!r} is not one of {', '.join(map(str, choices))}", field)
        if value not in chosen:
            chosen.append(value)
    return chosen


def _convert(kind: str, raw: str) -> Any:
    converters = {
        "integer": int,
        "number": float,
        "string": str,
        "boolean": lambda r: {"true": True, "y": True, "yes": True, "false": False, "n": False, "no": False}[r.lower()],
        "array": _json_of(list),
        "object": _json_of(dict),
    }
    try:
        return converters[kind](raw) if kind in converters else _NO_VALUE
    except (ValueError, KeyError):
        return _NO_VALUE


def _json_of(kind: type):
    def parse(raw: str) -> Any:
        value = json.loads(raw)
        if not isinstance(value, kind):
            raise ValueError(raw)
        return value

    return parse
