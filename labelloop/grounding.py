"""Grounding the document kinds' quotes: a ``qa`` answer's citations in the passages it was shown, a ``qa_generate``
pair's answer in its paragraph, a ``coherence`` problem in the text it was rated on.

A quote is found as a mention is (:func:`labelloop.spans.ground`: exact, then NFKC with whitespace runs collapsed,
then ASCII case-folded) and replaced by the exact text found, with offsets into the original. Each quote that is
not there is a :class:`~labelloop.validate.Problem` whose kind names the routing reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .coherence import content_units, ground_problems
from .spans import ground

CITATION, SUPPORT, ANSWERABLE, QUOTE = "citation", "support", "answerable", "quote"
REASONS = {
    CITATION: "ungrounded_citation",
    SUPPORT: "unsupported_answer",
    ANSWERABLE: "unanswerable_with_citations",
    QUOTE: "ungrounded_quote",
}
PASSAGES = "passages"  # the item field the retrieved passages travel in (labelloop.context)
BREAKS = "breaks"  # the item field of the coherence pre-screen's findings
WINDOW = "window"  # the item field of a window's [start, end) in the full text


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` is in ``text`` (first match, tolerant as spans are), or None."""
    found = ground(text, [{"text": quote, "label": QUOTE}], overlaps="allow")
    return (found.spans[0].start, found.spans[0].end) if found.spans else None


def qa_problems(output: dict[str, Any], passages: list[Mapping[str, Any]]) -> tuple[dict[str, Any], list[tuple]]:
    """The answer with each citation grounded in its passage (document version, offsets into it, the retrieval's
    rank and score; one that is not there is kept as written), and the problems as (kind, message, field)."""
    shown = {(p["doc"], p["paragraph"]): p for p in passages}
    citations, problems = [], []
    for citation in output["citations"]:
        passage = shown.get((citation["doc"], citation["paragraph"]))
        if passage is None:
            problems.append(
                (CITATION, f"{citation['doc']}/{citation['paragraph']} is not a passage shown", "citations")
            )
            citations.append(dict(citation))  # kept as written, without offsets, for the reviewer
            continue
        where = locate(passage["text"], citation["quote"])
        if where is None:
            problems.append((CITATION, f"{citation['quote']!r} is not in {citation['doc']}/{citation['paragraph']}",
                             "citations"))  # fmt: skip
            citations.append(dict(citation))
            continue
        citations.append(
            {
                "doc": citation["doc"],
                "paragraph": citation["paragraph"],
                "quote": passage["text"][where[0] : where[1]],
                "version": passage["version"],
                "start": passage["start"] + where[0],
                "end": passage["start"] + where[1],
                "rank": passage.get("rank"),
                "score": passage.get("score"),
            }
        )
    if not output["answerable"] and output["citations"]:
        problems.append((ANSWERABLE, "answerable is false but the answer cites passages", "answerable"))
    elif output["answerable"] and not problems:
        problems += _support(output["answer"], [c["quote"] for c in citations if "start" in c])
    return {**output, "citations": citations}, problems


def _support(answer: str, quotes: list[str]) -> list[tuple]:
    """An answer needs a grounded quote that shares content with it (stop words aside)."""
    if not quotes:
        return [(SUPPORT, "the answer cites no passage", "citations")]
    units = content_units(answer)
    if units and not units & set().union(*(content_units(q) for q in quotes)):
        return [(SUPPORT, "no cited quote shares content with the answer", "answer")]
    return []


def pair_problems(output: dict[str, Any], text: str) -> tuple[dict[str, Any], list[tuple]]:
    """Each pair's answer grounded in the paragraph (offsets into it); an answer that is not a quote of it is a
    problem."""
    pairs, problems = [], []
    for number, pair in enumerate(output["pairs"], 1):
        where = locate(text, pair["answer"])
        if where is None:
            problems.append((QUOTE, f"pair {number}: {pair['answer']!r} is not in the paragraph", "pairs"))
            pairs.append({"question": pair["question"], "answer": pair["answer"]})
        else:
            pairs.append({"question": pair["question"], "answer": text[where[0] : where[1]],
                          "start": where[0], "end": where[1]})  # fmt: skip
    return {**output, "pairs": pairs}, problems


def coherence_problems(output: dict[str, Any], text: str, fields: Mapping[str, Any]) -> tuple[dict, list[tuple]]:
    """Each located problem grounded in the text (a window's offsets mapped to the full text; one that is not there
    is kept as written, without offsets, for the reviewer), the pre-screen's breaks kept with the answer."""
    offset = fields[WINDOW][0] if WINDOW in fields else 0
    grounded, ungrounded = ground_problems(text, output["problems"], offset)
    problems = [(QUOTE, f"{p.get('type')}: {p.get('quote')!r} {p['reason']}", "problems") for p in ungrounded]
    kept = [{k: v for k, v in p.items() if k != "reason"} for p in ungrounded if isinstance(p, dict) and "type" in p]
    return {**output, "problems": grounded + kept, BREAKS: list(fields.get(BREAKS, []))}, problems


class QuoteError(ValueError):
    """A person's quote that is not in the text it names."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message, self.field = message, field


def person_answer(documents: Any, kind: str, text: str, output: dict[str, Any]) -> dict[str, Any]:
    """A person's answer with its quotes checked against their text: a ``qa`` answer's citations in the documents
    they cite, pairs' answers and coherence problems in the item's ``text``; a quote that is not there raises
    :class:`QuoteError`."""
    if kind == "qa":
        try:
            return {**output, "citations": check_person_citations(documents, output.get("citations", []))}
        except ValueError as exc:
            raise QuoteError(str(exc), "citations") from None
    if kind == "qa_generate":
        output, problems = pair_problems(output, text)
    elif kind == "coherence":
        output, problems = coherence_problems(output, text, {BREAKS: output.get(BREAKS, [])})
    else:
        return output
    if problems:
        raise QuoteError(problems[0][1], problems[0][2])
    return output


def check_person_citations(documents: Any, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A person's citations, each checked against the document version it names (the current one when it names
    none): a quote with offsets must be the text there, and its paragraph is the one holding it; a quote without
    offsets is found in the named paragraph. ``documents`` is the store. Raises ValueError."""
    checked = []
    for number, citation in enumerate(citations, 1):
        doc = documents.document(citation["doc"], citation.get("version"))
        if doc is None:
            raise ValueError(f"citation {number}: no document {citation['doc']!r}")
        text, start, end = doc["text"], citation.get("start"), citation.get("end")
        paragraphs = documents.paragraphs(doc["id"], doc["version"])
        if start is None or end is None:
            paragraph = next((p for p in paragraphs if p["id"] == citation.get("paragraph")), None)
            where = (
                None if paragraph is None else locate(text[paragraph["start"] : paragraph["end"]], citation["quote"])
            )
            if paragraph is None or where is None:
                raise ValueError(f"citation {number}: {citation['quote']!r} is not in {citation.get('paragraph')}")
            start, end = paragraph["start"] + where[0], paragraph["start"] + where[1]
        elif not 0 <= start < end <= len(text) or text[start:end] != citation["quote"]:
            raise ValueError(f"citation {number}: the text at {start}-{end} is not {citation['quote']!r}")
        else:
            paragraph = next((p for p in paragraphs if p["start"] <= start < p["end"]), None)
            if paragraph is None:
                raise ValueError(f"citation {number}: {start}-{end} is between paragraphs")
        checked.append({**citation, "paragraph": paragraph["id"], "version": doc["version"], "start": start,
                        "end": end, "quote": text[start:end]})  # fmt: skip
    return checked
