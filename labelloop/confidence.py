"""An answer's confidence, read from the token logprobs of the model's own JSON text.

Tokens are placed on the answer's UTF-8 bytes (a token may hold part of a character), a small
JSON scanner finds each top-level field's value in the raw text, and a field's confidence comes
from the tokens that wrote that value. A "confidence" the model writes into its JSON is never used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .spec import ClassifySpec, MultilabelSpec, TaskSpec

UNAVAILABLE = "unavailable"
_WHITESPACE = b" \t\r\n"
_SCALAR_END = b",}]" + _WHITESPACE
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE = b"{[", b"}]"
# Logprobs come from outside (a server, a log): any malformed shape means "unavailable", not a crash.
_MALFORMED = (ValueError, TypeError, KeyError, AttributeError)

Span = tuple[int, int]


@dataclass(frozen=True)
class Confidence:
    """An item's confidence in [0, 1] (None when it cannot be computed), its method, and per field."""

    value: float | None
    method: str
    fields: dict[str, float]


_NO_CONFIDENCE = Confidence(None, UNAVAILABLE, {})


@dataclass(frozen=True)
class _Token:
    """A generated token placed on the answer: bytes [start, end), its own bytes, its alternatives."""

    start: int
    end: int
    logprob: float
    data: bytes
    alternatives: dict[bytes, float]  # distinct tokens (the sampled one included) -> logprob


def score(spec: TaskSpec, output: dict, text: str, token_logprobs: list[dict] | None) -> Confidence:
    """The confidence of one answer: ``text`` (raw JSON), ``output`` (its parsed object), its logprobs.

    classify: ``label_first_token`` when the label's first token could start one option only, else
    ``label_sequence``; extract: ``field_min``; ``unavailable`` without logprobs or when the tokens
    cannot be placed on the text.
    """
    if not token_logprobs:
        return _NO_CONFIDENCE
    raw = text.encode("utf-8")
    try:
        tokens = _align(raw, token_logprobs)
        spans = {} if getattr(spec, "scores_bare_label", False) else _top_level_spans(raw)
    except _MALFORMED:
        return _NO_CONFIDENCE
    if isinstance(spec, ClassifySpec) and spec.scores_bare_label:
        return _score_bare_label(spec.label_names, output.get("label"), tokens)
    if isinstance(spec, ClassifySpec):
        return _score_label(spec.label_names, output, raw, spans, tokens)
    if isinstance(spec, MultilabelSpec):
        return _score_label_set(raw, spans, tokens)
    if getattr(spec, "mentions_field", None):
        return _score_mentions(spec.mentions_field, output, raw, spans, tokens)
    return _score_fields(spec.output_schema().get("required", []), output, spans, tokens)


def _align(raw: bytes, entries: list[dict[str, Any]]) -> list[_Token]:
    """Give every token its byte span in ``raw``; raise ValueError when they cannot be placed.

    A token with ``bytes`` must match exactly. A token given only as text may have lost the bytes
    of a character it split (llama-cpp-python decodes such pieces to ""), so before it the text may
    skip non-ASCII bytes; those go to the text-less tokens waiting there, else to this token. JSON
    structure is ASCII, so a skipped run never crosses from one value into another. Leading
    whitespace on either side is ignored, and so are tokens after the end of the text.
    """
    pieces = _strip_leading_space([_piece(entry) for entry in entries])
    pos, end = len(raw) - len(raw.lstrip()), len(raw.rstrip())
    spans: list[Span] = []
    waiting: list[int] = []  # text-less tokens whose bytes lie before the next placed token
    for data, exact in pieces:
        if not data and not exact and pos < end:
            waiting.append(len(spans))
        if not data or (pos >= end and not waiting):
            spans.append((pos, pos))  # placed later if waiting; else it adds no text (e.g. end of turn)
            continue
        at = raw.find(data, pos + bool(waiting)) if waiting or not exact else pos
        if at < 0 or not raw.startswith(data, at) or not _skippable(raw[pos:at]):
            raise ValueError("tokens do not match the text")
        for index in waiting:
            spans[index] = (pos, at)
        spans.append((at if waiting else pos, at + len(data)))
        waiting, pos = [], at + len(data)
    if waiting and _skippable(raw[pos:end]):
        spans = [(pos, end) if i in waiting else span for i, span in enumerate(spans)]
        pos = end
    if pos < end:
        raise ValueError("tokens end before the text")
    return [_token(entry, data, span) for entry, (data, _), span in zip(entries, pieces, spans)]


def _piece(entry: dict[str, Any]) -> tuple[bytes, bool]:
    """A token's bytes, and whether they are exact (given as ``bytes``) or decoded text (maybe lossy)."""
    if entry.get("bytes") is not None:
        return bytes(entry["bytes"]), True
    return str(entry.get("token") or "").replace("\ufffd", "").encode("utf-8"), False


def _strip_leading_space(pieces: list[tuple[bytes, bool]]) -> list[tuple[bytes, bool]]:
    """Drop the whitespace the token stream starts with (``_align`` skips the text's own)."""
    stripped: list[tuple[bytes, bool]] = []
    leading = True
    for data, exact in pieces:
        if leading:
            data = data.lstrip()
            leading = not data
        stripped.append((data, exact))
    return stripped


def _skippable(gap: bytes) -> bool:
    """Bytes a text-only token may have lost: parts of split multi-byte characters (never ASCII)."""
    return all(byte >= 0x80 for byte in gap)


def _token(entry: dict[str, Any], data: bytes, span: Span) -> _Token:
    logprob = _logprob(entry)
    alternatives = {data: logprob}
    for alternative in entry.get("top_logprobs") or []:  # a repeated token (e.g. the sampled one) counts once
        alt = _piece(alternative)[0]
        alternatives[alt] = max(_logprob(alternative), alternatives.get(alt, -math.inf))
    return _Token(span[0], span[1], logprob, data, alternatives)


def _logprob(entry: dict[str, Any]) -> float:
    value = float(entry["logprob"])
    if math.isnan(value):
        raise ValueError("logprob is NaN")
    return min(value, 0.0)


def _top_level_spans(raw: bytes) -> dict[str, Span]:
    """Byte spans of the values of the first JSON object's keys (a repeated key: the last, as json)."""
    spans: dict[str, Span] = {}
    i = _skip_space(raw, raw.index(b"{") + 1)
    while raw[i:i + 1] != b"}":
        if spans:
            i = _skip_space(raw, _expect(raw, i, b","))
        key_end = _string_end(raw, i)
        start = _skip_space(raw, _expect(raw, _skip_space(raw, key_end), b":"))
        end = _value_end(raw, start)
        spans[json.loads(raw[i:key_end])] = (start, end)
        i = _skip_space(raw, end)
    return spans


def _skip_space(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WHITESPACE:
        i += 1
    return i


def _expect(raw: bytes, i: int, char: bytes) -> int:
    if raw[i:i + 1] != char:
        raise ValueError(f"expected {char!r} at byte {i}")
    return i + 1


def _string_end(raw: bytes, i: int) -> int:
    """The end of the JSON string opening at ``i`` (escaped characters skipped)."""
    j = _expect(raw, i, b'"')
    while j < len(raw) and raw[j] != _QUOTE:
        j += 2 if raw[j] == _BACKSLASH else 1
    return _expect(raw, j, b'"')


def _value_end(raw: bytes, i: int) -> int:
    """The end of the JSON value at ``i``: a string, an object or array, or a word (number, null...)."""
    if raw[i:i + 1] == b'"':
        return _string_end(raw, i)
    if raw[i:i + 1] and raw[i] in _OPEN:
        return _container_end(raw, i)
    j = i
    while j < len(raw) and raw[j] not in _SCALAR_END:
        j += 1
    if j == i:
        raise ValueError(f"expected a value at byte {i}")
    return j


def _container_end(raw: bytes, i: int) -> int:
    """The end of the object or array opening at ``i``, nesting counted and strings skipped."""
    depth, j = 0, i
    while j < len(raw):
        if raw[j] == _QUOTE:
            j = _string_end(raw, j)
            continue
        depth += (raw[j] in _OPEN) - (raw[j] in _CLOSE)
        j += 1
        if depth == 0:
            return j
    raise ValueError("unterminated object or array")


def _span_probability(tokens: list[_Token], start: int, end: int) -> float | None:
    """exp(sum of the logprobs of the tokens overlapping [start, end)): their joint probability."""
    logprobs = [t.logprob for t in tokens if t.start < end and t.end > start]
    return math.exp(sum(logprobs)) if logprobs else None


def _score_fields(required: list[str], output: dict, spans: dict[str, Span], tokens: list[_Token]) -> Confidence:
    """Each field: the joint probability of the tokens that wrote its value, quotes or ``null``
    included (so choosing a string over null counts); a product, not a geometric mean, which would
    hide one doubtful token in a long value. The item: its least confident required field, else any."""
    fields: dict[str, float] = {}
    for key in output:
        probability = _span_probability(tokens, *spans[key]) if key in spans else None
        if probability is not None:
            fields[key] = probability
    if not fields:
        return _NO_CONFIDENCE
    judged = [key for key in required if key in fields] or list(fields)
    return Confidence(min(fields[key] for key in judged), "field_min", fields)


def _score_label(options: list[str], output: dict, raw: bytes, spans: dict[str, Span],
                 tokens: list[_Token]) -> Confidence:
    """The chosen label's share of its first token, or the probability of its own tokens.

    When the token that starts the label could start one option only, its top alternatives are
    grouped by the one option each could start and summed per option (distinct tokens are disjoint
    ways to start it, e.g. "neg" and "negative"); p(chosen) / sum over the options renormalises the
    raw, unconstrained distribution over the allowed labels. When that token could start several
    options (or lost its text), the label's own tokens decide: exp(sum of their logprobs).
    """
    label = output.get("label")
    if "label" not in spans or not isinstance(label, str):
        return _NO_CONFIDENCE
    start, end = spans["label"]
    inner = (start + 1, end - 1) if raw[start] == _QUOTE and end - start > 2 else (start, end)
    first = next((t for t in tokens if t.start <= inner[0] < t.end), None)
    share = _first_token_share(first, label, options, raw[first.start:start], start) if first else None
    if share is not None:
        return Confidence(share, "label_first_token", {"label": share})
    value = _span_probability(tokens, *inner)
    return Confidence(value, "label_sequence", {"label": value}) if value is not None else _NO_CONFIDENCE


def _first_token_share(first: _Token, label: str, options: list[str], lead: bytes, start: int) -> float | None:
    """p(label) / p(any option) from the alternatives of the label's first token; None if ambiguous."""
    encoded = {option: json.dumps(option, ensure_ascii=False).encode("utf-8") for option in options}
    offset = max(0, first.start - start)  # where in the option's JSON text the token starts
    owners = {data: _owner(data, lead, offset, encoded) for data in first.alternatives}
    if owners[first.data] != label:
        return None
    mass = dict.fromkeys(options, 0.0)
    for data, logprob in first.alternatives.items():
        if owners[data] is not None:
            mass[owners[data]] += math.exp(logprob)
    return mass[label] / sum(mass.values())


def _owner(data: bytes, lead: bytes, offset: int, encoded: dict[str, bytes]) -> str | None:
    """The one option whose JSON text a token could write after ``lead`` (the text before the value)."""
    if not data.startswith(lead) or len(data) == len(lead):
        return None
    rest = data[len(lead):]
    matches = [option for option, text in encoded.items()
               if text[offset:].startswith(rest) or rest.startswith(text[offset:])]
    return matches[0] if len(matches) == 1 else None


def agreement(spec: TaskSpec, answer: dict, samples: list[dict | None]) -> Confidence:
    """Self-consistency: for each field, the share of all answers (``answer`` + ``samples``) that agree
    with ``answer``; an invalid sample (None) agrees with nothing. Item value: min over required fields."""
    answers = [answer, *samples]
    fields = {name: sum(1 for other in answers if other is not None and other.get(name) == value) / len(answers)
              for name, value in answer.items()}
    required = [name for name in spec.output_schema().get("required", []) if name in fields] or list(fields)
    if not required:
        return _NO_CONFIDENCE
    return Confidence(min(fields[name] for name in required), "self_consistency", fields)


def _score_mentions(field: str, output: dict, raw: bytes, spans: dict[str, Span],
                    tokens: list[_Token]) -> Confidence:
    """spans / intent_slots: each mention (``entities[0]``, ...) is the probability of the tokens
    that wrote it; other fields as in extract; the item is the least confident of them all."""
    scored = _score_fields([], {k: v for k, v in output.items() if k != field}, spans, tokens)
    fields = dict(scored.fields)
    if field in spans:
        start, end = spans[field]
        elements = _array_elements(raw, start, end)
        for index, (first, last) in enumerate(elements):
            value = _span_probability(tokens, first, last)
            if value is not None:
                fields[f"{field}[{index}]"] = value
        if not elements:  # no mention at all: how sure the model was of the empty list
            empty = _span_probability(tokens, start, end)
            if empty is not None:
                fields[field] = empty
    if not fields:
        return _NO_CONFIDENCE
    return Confidence(min(fields.values()), "mention_min", fields)


def _array_elements(raw: bytes, start: int, end: int) -> list[Span]:
    """The byte spans of the elements of the JSON array at [start, end)."""
    elements, i = [], _skip_space(raw, start + 1)
    while i < end - 1 and raw[i:i + 1] != b"]":
        close = _value_end(raw, i)
        elements.append((i, close))
        i = _skip_space(raw, close)
        i = _skip_space(raw, i + 1) if raw[i:i + 1] == b"," else i
    return elements


def _score_label_set(raw: bytes, spans: dict[str, Span], tokens: list[_Token]) -> Confidence:
    """multilabel: each chosen label's confidence is the probability of its own tokens; the item's is
    the lowest of them (for an empty set, the probability of writing the empty list)."""
    if "labels" not in spans:
        return _NO_CONFIDENCE
    start, end = spans["labels"]
    fields: dict[str, float] = {}
    i = _skip_space(raw, start + 1)
    while i < end and raw[i] == _QUOTE:
        close = _string_end(raw, i)
        value = _span_probability(tokens, i + 1, close - 1)
        if value is not None:
            fields[json.loads(raw[i:close])] = value
        i = _skip_space(raw, close)
        i = _skip_space(raw, i + 1) if i < end and raw[i:i + 1] == b"," else i
    if fields:
        return Confidence(min(fields.values()), "label_set", fields)
    empty = _span_probability(tokens, start, end)
    return Confidence(empty, "label_set", {}) if empty is not None else _NO_CONFIDENCE


def _score_bare_label(options: list[str], label: str | None, tokens: list[_Token]) -> Confidence:
    """Label scoring: the answer is the label itself, so its first token's alternatives score it."""
    first = next((t for t in tokens if t.data.strip()), None)
    if first is None or label is None:
        return _NO_CONFIDENCE
    owners = {data: _bare_owner(data, options) for data in first.alternatives}
    if owners.get(first.data) == label:
        mass = dict.fromkeys(options, 0.0)
        for data, logprob in first.alternatives.items():
            if owners[data] is not None:
                mass[owners[data]] += math.exp(logprob)
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
