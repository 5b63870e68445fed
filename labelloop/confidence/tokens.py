"""Placing a model's tokens on the bytes of its own JSON answer, and finding each value's bytes there.

Tokens are placed on the answer's UTF-8 bytes (a token may hold part of a character), and a small
JSON scanner finds each top-level field's value in the raw text, so a field's confidence can come
from the tokens that wrote that value (:mod:`labelloop.confidence.logprobs`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

_WHITESPACE = b" \t\r\n"
_SCALAR_END = b",}]" + _WHITESPACE
QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE = b"{[", b"}]"

Span = tuple[int, int]


@dataclass(frozen=True)
class Token:
    """A generated token placed on the answer: bytes [start, end), its own bytes, its alternatives."""

    start: int
    end: int
    logprob: float
    data: bytes
    alternatives: dict[bytes, float]  # distinct tokens (the sampled one included) -> logprob


def align(raw: bytes, entries: list[dict[str, Any]]) -> list[Token]:
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
    """Drop the whitespace the token stream starts with (``align`` skips the text's own)."""
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


def _token(entry: dict[str, Any], data: bytes, span: Span) -> Token:
    logprob = _logprob(entry)
    alternatives = {data: logprob}
    for alternative in entry.get("top_logprobs") or []:  # a repeated token (e.g. the sampled one) counts once
        alt = _piece(alternative)[0]
        alternatives[alt] = max(_logprob(alternative), alternatives.get(alt, -math.inf))
    return Token(span[0], span[1], logprob, data, alternatives)


def _logprob(entry: dict[str, Any]) -> float:
    value = float(entry["logprob"])
    if math.isnan(value):
        raise ValueError("logprob is NaN")
    return min(value, 0.0)


def top_level_spans(raw: bytes) -> dict[str, Span]:
    """Byte spans of the values of the first JSON object's keys (a repeated key: the last, as json)."""
    spans: dict[str, Span] = {}
    i = skip_space(raw, raw.index(b"{") + 1)
    while raw[i : i + 1] != b"}":
        if spans:
            i = skip_space(raw, _expect(raw, i, b","))
        key_end = string_end(raw, i)
        start = skip_space(raw, _expect(raw, skip_space(raw, key_end), b":"))
        end = value_end(raw, start)
        spans[json.loads(raw[i:key_end])] = (start, end)
        i = skip_space(raw, end)
    return spans


def skip_space(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WHITESPACE:
        i += 1
    return i


def _expect(raw: bytes, i: int, char: bytes) -> int:
    if raw[i : i + 1] != char:
        raise ValueError(f"expected {char!r} at byte {i}")
    return i + 1


def string_end(raw: bytes, i: int) -> int:
    """The end of the JSON string opening at ``i`` (escaped characters skipped)."""
    j = _expect(raw, i, b'"')
    while j < len(raw) and raw[j] != QUOTE:
        j += 2 if raw[j] == _BACKSLASH else 1
    return _expect(raw, j, b'"')


def value_end(raw: bytes, i: int) -> int:
    """The end of the JSON value at ``i``: a string, an object or array, or a word (number, null...)."""
    if raw[i : i + 1] == b'"':
        return string_end(raw, i)
    if raw[i : i + 1] and raw[i] in _OPEN:
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
        if raw[j] == QUOTE:
            j = string_end(raw, j)
            continue
        depth += (raw[j] in _OPEN) - (raw[j] in _CLOSE)
        j += 1
        if depth == 0:
            return j
    raise ValueError("unterminated object or array")


def span_probability(tokens: list[Token], start: int, end: int) -> float | None:
    """exp(sum of the logprobs of the tokens overlapping [start, end)): their joint probability."""
    logprobs = [t.logprob for t in tokens if t.start < end and t.end > start]
    return math.exp(sum(logprobs)) if logprobs else None


def array_elements(raw: bytes, start: int, end: int) -> list[Span]:
    """The byte spans of the elements of the JSON array at [start, end)."""
    elements, i = [], skip_space(raw, start + 1)
    while i < end - 1 and raw[i : i + 1] != b"]":
        close = value_end(raw, i)
        elements.append((i, close))
        i = skip_space(raw, close)
        i = skip_space(raw, i + 1) if raw[i : i + 1] == b"," else i
    return elements
