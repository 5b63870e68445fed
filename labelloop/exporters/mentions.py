"""Formats of mention tasks (spans, intent_slots): ``conll`` (BIO), ``atis`` and a spaCy ``DocBin``.

Each writer tokenizes the text with :func:`labelloop.spans.tokenize` ("auto": one token per character
for CJK text, words otherwise; "char"; "whitespace"). The spaCy DocBin uses the same tokens as CoNLL,
so both formats agree on every entity's extent. :func:`place_mentions` gives every exported mention
its offsets, whatever the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._extras import require
from ..spans import Span, atis_line, conll, ground, tokenize
from ..spec import MentionSpec, TaskSpec
from . import Exporter, ExportOptions, Records

MENTION_KINDS = ("spans", "intent_slots")
SPACY_SPAN_KEY = "sc"  # spaCy's default span group: every mention, overlapping ones included


def place_mentions(spec: TaskSpec, output: dict[str, Any], text: str) -> dict[str, Any] | None:
    """``output`` with start and end on every mention, or None when a mention cannot be placed.

    A mention that has offsets must cover exactly its text; one without them (a person may write
    only text and label) is found in ``text`` as the model's mentions are, and the mentions are then
    sorted by position. An output whose mentions all carry offsets comes back unchanged.
    """
    field = getattr(spec, "mentions_field", None)
    if field is None:
        return output
    mentions = output[field]
    if any(not _has_offsets(m) for m in mentions if "start" in m or "end" in m):
        return None
    if not all(_covers(m, text) for m in mentions if "start" in m):
        return None
    missing = [m for m in mentions if "start" not in m]
    if not missing:
        return output
    found = ground(text, missing, overlaps="allow")
    if found.ungrounded:
        return None
    placed = [m for m in mentions if "start" in m] + [_as_mention(span) for span in found.spans]
    return {**output, field: sorted(placed, key=lambda m: (m["start"], m["end"], m["label"]))}


def _has_offsets(mention: dict[str, Any]) -> bool:
    return all(type(mention.get(key)) is int for key in ("start", "end"))


def _covers(mention: dict[str, Any], text: str) -> bool:
    """Whether the mention's offsets lie in ``text`` and cover exactly the mention's text."""
    start, end = mention["start"], mention["end"]
    return 0 <= start < end <= len(text) and text[start:end] == mention["text"]


def _as_mention(span: Span) -> dict[str, Any]:
    return {"text": span.text, "label": span.label, "start": span.start, "end": span.end}


def mention_spans(spec: TaskSpec, output: dict[str, Any]) -> list[Span]:
    """The spans of an output whose mentions carry offsets (see :func:`place_mentions`)."""
    assert isinstance(spec, MentionSpec), "the mention formats export only the mention kinds"
    return [Span(m["start"], m["end"], m["label"], m["text"]) for m in output[spec.mentions_field]]


def write_conll(rows: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    """CoNLL: ``token<TAB>BIO-tag`` lines, a blank line between items (items without tokens skipped)."""
    with path.open("w", encoding="utf-8") as handle:
        first = True
        for record, item in rows:
            block = conll([(item.text, mention_spans(spec, record["output"]))], options.tokenizer)
            if block != "\n":
                handle.write(block if first else "\n" + block)
                first = False
        if first:
            handle.write("\n")  # as spans.conll writes no items


def write_atis(rows: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    """ATIS/SNIPS style: ``tokens<TAB>BIO-tags<TAB>intent``, one line per item."""
    with path.open("w", encoding="utf-8") as handle:
        for record, item in rows:
            output = record["output"]
            handle.write(atis_line(item.text, mention_spans(spec, output), output["intent"], options.tokenizer) + "\n")


def write_spacy(rows: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    """A spaCy DocBin: per item a Doc (labelloop's tokens) with ``ents`` (as in BIO), every mention in
    ``spans["sc"]``, the intent in ``cats`` (intent_slots) and the item id in ``user_data["id"]``."""
    spacy = require("spacy", "spacy", "the spacy format")
    from spacy.tokens import DocBin

    vocab = spacy.blank("xx").vocab  # multi-language; needs no download
    intents = [label.name for label in spec.intents] if hasattr(spec, "intents") else None
    docs = DocBin(store_user_data=True)
    for record, item in rows:
        doc = _doc(vocab, item.text, options.tokenizer)
        spans = _doc_spans(doc, mention_spans(spec, record["output"]))
        doc.ents = _without_overlaps(spans)
        doc.spans[SPACY_SPAN_KEY] = sorted(
            {(s.start, s.end, s.label_): s for s in spans}.values(), key=lambda s: (s.start, s.end, s.label_)
        )
        if intents is not None:
            doc.cats = {name: float(name == record["output"]["intent"]) for name in intents}
        doc.user_data["id"] = item.id
        docs.add(doc)
    docs.to_disk(path)


def _doc(vocab: Any, text: str, tokenizer: str) -> Any:
    """A Doc of ``text`` whose tokens are labelloop's; whitespace beyond one space becomes space tokens."""
    from spacy.tokens import Doc

    words: list[str] = []
    spaces: list[bool] = []
    end = 0
    for token, start, stop in tokenize(text, tokenizer):
        _add_gap(words, spaces, text[end:start])
        words.append(token)
        spaces.append(False)
        end = stop
    _add_gap(words, spaces, text[end:])
    doc = Doc(vocab, words=words, spaces=spaces)
    assert doc.text == text, "the Doc must reproduce the item text"
    return doc


def _add_gap(words: list[str], spaces: list[bool], gap: str) -> None:
    """Add the whitespace between two tokens: one space as the trailing space of the token before."""
    if gap.startswith(" ") and words and not words[-1].isspace():
        spaces[-1], gap = True, gap[1:]
    if gap:
        words.append(gap)
        spaces.append(False)


def _doc_spans(doc: Any, spans: list[Span]) -> list[Any]:
    """Each span widened to the tokens it touches, in BIO's order (by start, longer first)."""
    ordered = sorted(spans, key=lambda s: (s.start, s.start - s.end))
    found = (doc.char_span(s.start, s.end, label=s.label, alignment_mode="expand") for s in ordered)
    return [s for s in found if s is not None]


def _without_overlaps(spans: list[Any]) -> list[Any]:
    """The entities BIO keeps: in order, a span touching a token already taken is left out whole."""
    taken: set[int] = set()
    kept = []
    for span in spans:
        tokens = set(range(span.start, span.end))
        if not tokens & taken:
            kept.append(span)
            taken |= tokens
    return sorted(kept, key=lambda s: s.start)


CONLL = Exporter("conll", write_conll, kinds=MENTION_KINDS, layout="tokens")
ATIS = Exporter("atis", write_atis, kinds=("intent_slots",), layout="tokens")
SPACY = Exporter("spacy", write_spacy, kinds=MENTION_KINDS, layout="tokens", requires=("spacy", "spacy"))
