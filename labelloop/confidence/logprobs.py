"""An answer's confidence, read from the token logprobs of the model's own JSON text.

A field's confidence comes from the tokens that wrote its value (placed by :mod:`.tokens`); how
the fields make the item's confidence depends on the task's kind. A "confidence" the model writes
into its JSON is never used.
"""

from __future__ import annotations

import json
import math

from ..spec import ClassifySpec, CoherenceSpec, MentionSpec, MultilabelSpec, TaskSpec
from .result import NO_CONFIDENCE, Confidence
from .tokens import QUOTE, Span, Token, align, array_elements, skip_space, span_probability, string_end, top_level_spans

# Logprobs come from outside (a server, a log): any malformed shape means "unavailable", not a crash.
_MALFORMED = (ValueError, TypeError, KeyError, AttributeError)


def score(spec: TaskSpec, output: dict, text: str, token_logprobs: list[dict] | None) -> Confidence:
    """The confidence of one answer: ``text`` (raw JSON), ``output`` (its parsed object), its logprobs.

    classify: ``label_first_token`` when the label's first token could start one option only, else
    ``label_sequence``; extract: ``field_min``; ``unavailable`` without logprobs or when the tokens
    cannot be placed on the text.
    """
    if not token_logprobs:
        return NO_CONFIDENCE
    raw = text.encode("utf-8")
    try:
        tokens = align(raw, token_logprobs)
        spans = {} if getattr(spec, "scores_bare_label", False) else top_level_spans(raw)
    except _MALFORMED:
        return NO_CONFIDENCE
    if isinstance(spec, ClassifySpec) and spec.scores_bare_label:
        return _score_bare_label(spec.label_names, output.get("label"), tokens)
    if isinstance(spec, ClassifySpec):
        return _score_label(spec.label_names, output, raw, spans, tokens)
    if isinstance(spec, MultilabelSpec):
        return _score_label_set(raw, spans, tokens)
    if isinstance(spec, MentionSpec):
        return _score_mentions(spec.mentions_field, output, raw, spans, tokens)
    if isinstance(spec, CoherenceSpec):
        return _score_ratings(spec.output_schema().get("required", []), output, raw, spans, tokens)
    return _score_fields(spec.output_schema().get("required", []), output, spans, tokens)


def _score_fields(required: list[str], output: dict, spans: dict[str, Span], tokens: list[Token]) -> Confidence:
    """Each field: the joint probability of the tokens that wrote its value, quotes or ``null``
    included (so choosing a string over null counts); a product, not a geometric mean, which would
    hide one doubtful token in a long value. The item: its least confident required field, else any."""
    fields: dict[str, float] = {}
    for key in output:
        probability = span_probability(tokens, *spans[key]) if key in spans else None
        if probability is not None:
            fields[key] = probability
    if not fields:
        return NO_CONFIDENCE
    judged = [key for key in required if key in fields] or list(fields)
    return Confidence(min(fields[key] for key in judged), "field_min", fields)


def _score_label(
    options: list[str], output: dict, raw: bytes, spans: dict[str, Span], tokens: list[Token]
) -> Confidence:
    """The chosen label's share of its first token, or the probability of its own tokens.

    When the token that starts the label could start one option only, its top alternatives are
    grouped by the one option each could start and summed per option (distinct tokens are disjoint
    ways to start it, e.g. "neg" and "negative"); p(chosen) / sum over the options renormalises the
    raw, unconstrained distribution over the allowed labels. When that token could start several
    options (or lost its text), the label's own tokens decide: exp(sum of their logprobs).
    """
    label = output.get("label")
    if "label" not in spans or not isinstance(label, str):
        return NO_CONFIDENCE
    start, end = spans["label"]
    inner = (start + 1, end - 1) if raw[start] == QUOTE and end - start > 2 else (start, end)
    first = next((t for t in tokens if t.start <= inner[0] < t.end), None)
    share = _first_token_share(first, label, options, raw[first.start : start], start) if first else None
    if share is not None:
        return Confidence(share, "label_first_token", {"label": share})
    value = span_probability(tokens, *inner)
    return Confidence(value, "label_sequence", {"label": value}) if value is not None else NO_CONFIDENCE


def _first_token_share(first: Token, label: str, options: list[str], lead: bytes, start: int) -> float | None:
    """p(label) / p(any option) from the alternatives of the label's first token; None if ambiguous."""
    encoded = {option: json.dumps(option, ensure_ascii=False).encode("utf-8") for option in options}
    offset = max(0, first.start - start)  # where in the option's JSON text the token starts
    owners = {data: _owner(data, lead, offset, encoded) for data in first.alternatives}
    if owners[first.data] != label:
        return None
    mass = dict.fromkeys(options, 0.0)
    for data, logprob in first.alternatives.items():
        owner = owners[data]
        if owner is not None:
            mass[owner] += math.exp(logprob)
    return mass[label] / sum(mass.values())


def _owner(data: bytes, lead: bytes, offset: int, encoded: dict[str, bytes]) -> str | None:
    """The one option whose JSON text a token could write after ``lead`` (the text before the value)."""
    if not data.startswith(lead) or len(data) == len(lead):
        return None
    rest = data[len(lead) :]
    matches = [
        option for option, text in encoded.items() if text[offset:].startswith(rest) or rest.startswith(text[offset:])
    ]
    return matches[0] if len(matches) == 1 else None


def _score_mentions(field: str, output: dict, raw: bytes, spans: dict[str, Span], tokens: list[Token]) -> Confidence:
    """spans / intent_slots: each mention (``entities[0]``, ...) is the probability of the tokens
    that wrote it; other fields as in extract; the item is the least confident of them all."""
    scored = _score_fields([], {k: v for k, v in output.items() if k != field}, spans, tokens)
    fields = dict(scored.fields)
    if field in spans:
        start, end = spans[field]
        elements = array_elements(raw, start, end)
        for index, (first, last) in enumerate(elements):
            value = span_probability(tokens, first, last)
            if value is not None:
                fields[f"{field}[{index}]"] = value
        if not elements:  # no mention at all: how sure the model was of the empty list
            empty = span_probability(tokens, start, end)
            if empty is not None:
                fields[field] = empty
    if not fields:
        return NO_CONFIDENCE
    return Confidence(min(fields.values()), "mention_min", fields)


def _score_ratings(
    required: list[str], output: dict, raw: bytes, spans: dict[str, Span], tokens: list[Token]
) -> Confidence:
    """coherence: the fields as in extract, plus each dimension's rating (the tokens that wrote its level inside
    ``ratings``), so a threshold can name a dimension."""
    scored = _score_fields(required, output, spans, tokens)
    if "ratings" not in spans or scored.value is None:
        return scored
    start, end = spans["ratings"]
    try:
        inner = top_level_spans(raw[start:end])
    except _MALFORMED:
        return scored
    fields = dict(scored.fields)
    for name, (first, last) in inner.items():
        value = span_probability(tokens, start + first, start + last)
        if value is not None:
            fields[name] = value
    return Confidence(scored.value, scored.method, fields)


def _score_label_set(raw: bytes, spans: dict[str, Span], tokens: list[Token]) -> Confidence:
    """multilabel: each chosen label's confidence is the probability of its own tokens; the item's is
    the lowest of them (for an empty set, the probability of writing the empty list)."""
    if "labels" not in spans:
        return NO_CONFIDENCE
    start, end = spans["labels"]
    fields: dict[str, float] = {}
    i = skip_space(raw, start + 1)
    while i < end and raw[i] == QUOTE:
        close = string_end(raw, i)
        value = span_probability(tokens, i + 1, close - 1)
        if value is not None:
            fields[json.loads(raw[i:close])] = value
        i = skip_space(raw, close)
        i = skip_space(raw, i + 1) if i < end and raw[i : i + 1] == b"," else i
    if fields:
        return Confidence(min(fields.values()), "label_set", fields)
    empty = span_probability(tokens, start, end)
    return Confidence(empty, "label_set", {}) if empty is not None else NO_CONFIDENCE


def _score_bare_label(options: list[str], label: str | None, tokens: list[Token]) -> Confidence:
    """Label scoring: the answer is the label itself, so its first token's alternatives score it."""
    first = next((t for t in tokens if t.data.strip()), None)
    if first is None or label is None:
        return NO_CONFIDENCE
    owners = {data: _bare_owner(data, options) for data in first.alternatives}
    if owners.get(first.data) == label:
        mass = dict.fromkeys(options, 0.0)
        for data, logprob in first.alternatives.items():
            owner = owners[data]
            if owner is not None:
                mass[owner] += math.exp(logprob)
        share = mass[label] / sum(mass.values())
        return Confidence(share, "label_first_token", {"label": share})
    value = math.exp(sum(t.logprob for t in tokens))
    return Confidence(value, "label_sequence", {"label": value})


def _bare_owner(data: bytes, options: list[str]) -> str | None:
    """The one option a bare-answer token could begin (case and surrounding spaces ignored)."""
    piece = data.decode("utf-8", errors="ignore").strip().strip('"').lower()
    if not piece:
        return None
    matches = [o for o in options if o.lower().startswith(piece) or piece.startswith(o.lower())]
    return matches[0] if len(matches) == 1 else None
