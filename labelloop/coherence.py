"""Coherence tasks: screen a long text for abrupt breaks, cut it into windows, place and merge the answers.

Pure functions: no store, no spec. :func:`screen` flags sentences that share (almost) no content with the
two sentences before them, before any model call. :func:`windows` cuts a text too long for one call into
overlapping windows that end at sentence ends where it can. The model answers each window with
``{"ratings": {...}, "problems": [{"type", "quote", "suggestion"}]}``; :func:`ground_problems` finds each
quote in the text (with :func:`labelloop.spans.ground`'s NFKC and whitespace tolerance) and :func:`combine`
merges the windows' answers into one answer for the whole text.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

from .documents import split_sentences
from .spans import ground

_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# a unit is one CJK character, or a run of other word characters
_UNIT = re.compile(f"([{_CJK_RANGES}])|([^\\W{_CJK_RANGES}]+)")
# CJK characters that carry grammar rather than topic: particles, pronouns, copulas, common conjunctions
FUNCTION_CHARACTERS = frozenset(
    "的了是在和也就都而及与这那它他她我你们个一不有之其为以于对把被着过地得吗呢吧啊很还又或但所此则"
)
STOP_WORDS = frozenset(
    "a an the and or but if then than so of to in on at by for with from as into about over after before "
    "is are was were be been being am it its this that these those he she they we you i his her their our your "
    "him them us me my not no do does did has have had will would can could should may might also there here "
    "which who whom what when where how".split()
)


@dataclass(frozen=True)
class Break:
    """A pre-screen finding: the sentence at ``[start, end)`` shares almost no content with the ones before it."""

    start: int
    end: int
    overlap: float  # lexical overlap with the previous two sentences (0..1)

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "overlap": self.overlap}


@dataclass(frozen=True)
class Window:
    """A stretch ``[start, end)`` of a long text, answered in one model call."""

    start: int
    end: int


def content_units(sentence: str) -> set[str]:
    """The units :func:`screen` compares, after NFKC: each CJK character except :data:`FUNCTION_CHARACTERS`,
    and each other word, lowercased, except :data:`STOP_WORDS`."""
    units: set[str] = set()
    for cjk, word in _UNIT.findall(unicodedata.normalize("NFKC", sentence)):
        if cjk and cjk not in FUNCTION_CHARACTERS:
            units.add(cjk)
        elif word and word.lower() not in STOP_WORDS:
            units.add(word.lower())
    return units


def _overlap(a: set[str], b: set[str]) -> float:
    """``|A∩B| / min(|A|, |B|)``; 0.0 when either is empty."""
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def screen(text: str, *, threshold: float = 0.05, sentences: list[tuple[int, int]] | None = None) -> list[Break]:
    """Sentences that start abruptly: their overlap (:func:`content_units`) with the previous sentences is
    below ``threshold``.

    Each sentence after the first is compared with the union of the previous *two*, so a sentence that picks
    up the thread from two sentences back (after an aside) is not flagged, and one off-topic sentence gives
    one break rather than two. A sentence with no content units is never flagged. ``sentences`` (offsets into
    ``text``) defaults to :func:`labelloop.documents.split_sentences`.
    """
    spans = split_sentences(text) if sentences is None else sentences
    units = [content_units(text[a:b]) for a, b in spans]
    found: list[Break] = []
    for i in range(1, len(spans)):
        before = units[i - 1] | (units[i - 2] if i >= 2 else set())
        if units[i] and before and (overlap := _overlap(units[i], before)) < threshold:
            found.append(Break(spans[i][0], spans[i][1], overlap))
    return found


def windows(text: str, size: int, overlap: int) -> list[Window]:
    """Windows of at most ``size`` characters covering ``text``, each overlapping the previous one.

    A window that does not reach the end of the text ends at the last sentence end in its final third (a
    hard cut at ``size`` when there is none). The next window starts ``overlap`` characters before that
    end, moved back to the start of the sentence there when that start is at most ``overlap // 2``
    further back, so the overlap is between ``overlap`` and 1.5 × ``overlap``. Starts and ends both
    strictly advance. A text of at most ``size`` characters is one window.
    """
    if not size > overlap >= 0:
        raise ValueError(f"need size > overlap >= 0, not size={size}, overlap={overlap}")
    if len(text) <= size:
        return [Window(0, len(text))]
    sentences = split_sentences(text)
    ends = [b for _, b in sentences]
    starts = [a for a, _ in sentences]
    found: list[Window] = []
    start, previous_end = 0, 0
    while True:
        end = min(start + size, len(text))
        if end < len(text):
            last = bisect.bisect_right(ends, end) - 1  # the last sentence end at or before the hard cut
            if last >= 0 and ends[last] > max(start + (2 * size) // 3, previous_end):
                end = ends[last]
        found.append(Window(start, end))
        if end == len(text):
            return found
        nxt = end - overlap
        before = bisect.bisect_right(starts, nxt) - 1  # the sentence start at or before it
        if before >= 0 and starts[before] >= nxt - overlap // 2:
            nxt = starts[before]
        start, previous_end = max(nxt, start + 1), end


def ground_problems(text: str, problems: list[dict], offset: int = 0) -> tuple[list[dict], list[dict]]:
    """``(grounded, ungrounded)``: each problem's quote found in ``text``, in the order given.

    A grounded problem gets ``start`` and ``end`` (offsets in ``text`` plus ``offset``: pass a window's
    start to get offsets in the full text) and its ``quote`` replaced by the exact text found there; a
    quote found more than once is placed at its first occurrence. An ungrounded one gets a ``reason``:
    "no quote" when the quote is missing or not a string, else why :func:`labelloop.spans.ground` failed.
    A problem that is not a JSON object is ungrounded as ``{"problem": ..., "reason": "not an object"}``.
    """
    ungrounded: list[dict] = []
    entities: list[dict] = []
    for number, problem in enumerate(problems):
        if not isinstance(problem, dict):
            ungrounded.append({"problem": problem, "reason": "not an object"})
        elif not isinstance(problem.get("quote"), str):
            ungrounded.append({**problem, "reason": "no quote"})
        else:  # a label per problem: no two problems compete for the same match
            entities.append({"text": problem["quote"], "label": str(number)})
    grounding = ground(text, entities, overlaps="allow")
    placed = {int(span.label): span for span in grounding.spans}
    failed = {int(entity["label"]): entity["reason"] for entity in grounding.ungrounded}
    grounded: list[dict] = []
    for number, problem in enumerate(problems):
        if number in placed:
            span = placed[number]
            grounded.append({**problem, "quote": span.text, "start": span.start + offset, "end": span.end + offset})
        elif number in failed:
            ungrounded.append({**problem, "reason": failed[number]})
    return grounded, ungrounded


def _nearest_level(mean: Fraction, levels: list[int]) -> int:
    """The allowed level nearest to ``mean``; a tie goes to the lower level."""
    return min(sorted(levels), key=lambda level: abs(mean - level))


def combine(parts: list[tuple[Window, dict]], levels: list[int]) -> dict:
    """One answer for the full text from the windows' grounded answers (offsets in the full text).

    Ratings: per dimension, the mean over the windows that rate it, weighted by window length, rounded to
    the nearest of ``levels`` (a tie goes to the lower level). Problems: all windows' problems sorted by
    ``(start, end)``; a problem of the same type overlapping one already kept (found again in the overlap
    of two windows) is dropped.
    """
    if not levels:
        raise ValueError("levels must not be empty")
    totals: dict[str, list[Fraction]] = {}  # dimension -> [weighted sum, total weight]
    problems: list[dict] = []
    for window, answer in parts:
        weight = max(window.end - window.start, 1)  # an empty window still counts a little
        for dimension, value in (answer.get("ratings") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total = totals.setdefault(dimension, [Fraction(0), Fraction(0)])
                total[0] += Fraction(value) * weight
                total[1] += weight
        problems += answer.get("problems") or []
    if any(not isinstance(p.get("start"), int) or not isinstance(p.get("end"), int) for p in problems):
        raise ValueError("combine needs grounded problems, each with integer start and end")
    kept: list[dict] = []
    for problem in sorted(problems, key=lambda p: (p["start"], p["end"])):  # stable: ties keep window order
        if not any(
            k.get("type") == problem.get("type") and k["start"] < problem["end"] and problem["start"] < k["end"]
            for k in kept
        ):
            kept.append(problem)
    ratings = {name: _nearest_level(total / weight, levels) for name, (total, weight) in totals.items()}
    return {"ratings": ratings, "problems": kept}
