"""Span (NER / slot-filling) tasks: ground model mentions in the text, BIO export, span metrics.

Pure functions: no store, no spec. The model names entities by their text (``{"text", "label",
"occurrence"}``); :func:`ground` turns them into character offsets into the original item text,
:func:`bio_tags`, :func:`conll` and :func:`atis_line` write token-level formats, and
:func:`span_f1` (seqeval, strict IOB2) and :func:`exact_span_f1` (offset sets) score predictions.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OVERLAP_POLICIES = ("allow", "prefer_finer", "prefer_longer")
TOKENIZERS = ("auto", "char", "whitespace")
_WORD = re.compile(r"\w+|[^\w\s]")
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Span:
    """A labelled span; offsets are Python ``str`` indices and ``text == item_text[start:end]``."""

    start: int
    end: int
    label: str
    text: str


@dataclass
class Grounding:
    """What :func:`ground` made of the model's entities."""

    spans: list[Span]
    ungrounded: list[dict]  # the entities not found, each with a "reason"
    dropped: list[tuple[Span, str]]  # spans removed by the overlap policy, with why


@dataclass(frozen=True)
class _View:
    """A matching view of the text: its string and, per character, the original [start, end)."""

    text: str
    starts: Sequence[int]
    ends: Sequence[int]


def _normal_view(text: str) -> _View:
    """NFKC per base character (with its combining marks), whitespace runs collapsed to one space."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1
        for ch in unicodedata.normalize("NFKC", text[i:j]):
            ch = " " if ch.isspace() else ch
            if not (ch == " " and chars and chars[-1] == " "):
                chars.append(ch)
                starts.append(i)
                ends.append(j)
        i = j
    return _View("".join(chars), starts, ends)


def _views(text: str) -> list[_View]:
    """The matching tiers, tried in order: exact, normalised, normalised + ASCII case-folded."""
    normal = _normal_view(text)
    folded = _View(normal.text.translate(_ASCII_LOWER), normal.starts, normal.ends)
    return [_View(text, range(len(text)), range(1, len(text) + 1)), normal, folded]


def _needles(entity_text: str) -> list[str]:
    """The entity text as searched in each tier of :func:`_views`."""
    normal = _normal_view(entity_text).text.strip()
    return [entity_text, normal, normal.translate(_ASCII_LOWER)]


def _find_all(view: _View, needle: str) -> list[tuple[int, int]]:
    """Non-overlapping matches of ``needle``, left to right, as original offsets."""
    found: list[tuple[int, int]] = []
    pos = view.text.find(needle)
    while pos >= 0:
        found.append((view.starts[pos], view.ends[pos + len(needle) - 1]))
        pos = view.text.find(needle, pos + len(needle))
    return found


def _entity_problem(entity: dict) -> str | None:
    """Why an entity is malformed, or None."""
    occurrence = entity.get("occurrence")
    if not isinstance(entity.get("text"), str):
        return "text is not a string"
    if not isinstance(entity.get("label"), str) or not entity["label"]:
        return "no label"
    if occurrence is not None and (type(occurrence) is not int or occurrence < 1):
        return "occurrence must be a positive integer"
    return None


def _pick(matches: list[tuple[int, int]], occurrence: int | None, taken: set) -> tuple[int, int] | None:
    """The requested match: the ``occurrence``-th, or else the first not yet taken."""
    if occurrence is not None:
        return matches[occurrence - 1] if len(matches) >= occurrence else None
    return next((m for m in matches if m not in taken), None)


def _locate(views: list[_View], entity: dict, used: dict) -> tuple[int, int] | str:
    """Original offsets for one entity, or the reason it cannot be grounded.

    Tiers are tried in order and the first that can serve the request wins, so an exact match
    beats a normalised one and case is ignored only when nothing matches with it. ``used`` holds
    the matches taken so far per (normalised text, label).
    """
    problem = _entity_problem(entity)
    if problem is not None:
        return problem
    needles = _needles(entity["text"])
    if not needles[1]:
        return "empty text"
    occurrence, taken = entity.get("occurrence"), used[(needles[2], entity["label"])]
    most = 0
    for view, needle in zip(views, needles):
        matches = _find_all(view, needle)
        most = max(most, len(matches))
        pick = _pick(matches, occurrence, taken)
        if pick is not None:
            taken.add(pick)
            return pick
    if not most:
        return "not in the text"
    plural = "match" if most == 1 else "matches"
    if occurrence is not None:
        return f"occurrence {occurrence} but only {most} {plural}"
    return f"repeated, but all {most} {plural} already taken"


def _resolve(spans: list[Span], policy: str) -> tuple[list[Span], list[tuple[Span, str]]]:
    """Apply the overlap policy: greedily keep spans shortest (or longest) first, then in order."""
    if policy == "allow":
        return spans, []
    sign = 1 if policy == "prefer_finer" else -1
    kept: list[Span] = []
    dropped: list[tuple[Span, str]] = []
    for span in sorted(spans, key=lambda s: sign * (s.end - s.start)):  # stable: ties keep input order
        clash = next((k for k in kept if k.start < span.end and span.start < k.end), None)
        if clash is None:
            kept.append(span)
        elif (clash.start, clash.end) == (span.start, span.end):
            dropped.append((span, f"same extent as kept {clash.label!r} span: label conflict"))
        else:
            dropped.append(
                (span, f"overlaps kept {clash.label!r} span {clash.text!r} [{clash.start}:{clash.end}] ({policy})")
            )
    return kept, dropped


def ground(text: str, entities: list[dict], *, overlaps: str = "prefer_finer") -> Grounding:
    """Find each entity ``{"text", "label", "occurrence"?}`` in ``text``; offsets into the original.

    Matching: exact substring; else NFKC-normalised with whitespace runs collapsed (full-width
    ``ＡＢＣ１２３`` matches ``ABC123``); else also ASCII case-insensitive. ``occurrence`` (1-based)
    picks among repeated mentions; without it, successive entities with the same text and label
    take successive unused matches (the same text under another label may be the same mention).
    Identical spans are merged silently; ``overlaps`` is "allow", "prefer_finer" (keep the shorter
    of two overlapping spans; equal extent: keep the first) or "prefer_longer".
    """
    if overlaps not in OVERLAP_POLICIES:
        raise ValueError(f"overlaps must be one of {OVERLAP_POLICIES}, not {overlaps!r}")
    views = _views(text)
    used: defaultdict[tuple[str, str], set[tuple[int, int]]] = defaultdict(set)  # see _locate
    found: list[Span] = []
    ungrounded: list[dict] = []
    for entity in entities:
        where = _locate(views, entity, used)
        if isinstance(where, str):
            ungrounded.append({**entity, "reason": where})
        else:
            found.append(Span(where[0], where[1], entity["label"], text[where[0] : where[1]]))
    kept, dropped = _resolve(list(dict.fromkeys(found)), overlaps)
    return Grounding(sorted(kept, key=lambda s: (s.start, s.end, s.label)), ungrounded, dropped)


def tokenize(text: str, tokenizer: str = "auto") -> list[tuple[str, int, int]]:
    """Tokens as ``(token, start, end)``: "char" (every non-space character), "whitespace"
    (``\\w+|[^\\w\\s]``: words, punctuation split off) or "auto" (char if the text has CJK)."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {tokenizer!r}")
    if tokenizer == "char" or (tokenizer == "auto" and _CJK.search(text)):
        return [(ch, i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def bio_tags(text: str, spans: list[Span], tokenizer: str = "auto") -> list[tuple[str, str]]:
    """``(token, tag)`` pairs in IOB2: B-LABEL on a span's first token, I-LABEL on the rest, else O.

    A span covers every token it touches, so a span ending (or starting) inside a token extends
    to the whole token. BIO cannot nest: a span touching a token already tagged by an earlier
    span (by start, longer first) is left out whole.
    """
    tokens = tokenize(text, tokenizer)
    tags = ["O"] * len(tokens)
    for span in sorted(spans, key=lambda s: (s.start, s.start - s.end, s.label)):  # order-independent
        covered = [i for i, (_, a, b) in enumerate(tokens) if a < span.end and span.start < b]
        if covered and all(tags[i] == "O" for i in covered):
            tags[covered[0]] = f"B-{span.label}"
            tags[covered[0] + 1 : covered[-1] + 1] = [f"I-{span.label}"] * (len(covered) - 1)
    return [(token, tag) for (token, _, _), tag in zip(tokens, tags)]


def conll(records: Iterable[tuple[str, list[Span]]], tokenizer: str = "auto") -> str:
    """CoNLL text: ``token<TAB>tag`` per line, a blank line between sentences (empty texts skipped)."""
    blocks = ["\n".join(f"{tok}\t{tag}" for tok, tag in bio_tags(text, spans, tokenizer)) for text, spans in records]
    return "\n\n".join(b for b in blocks if b) + "\n"


def atis_line(text: str, spans: list[Span], intent: str, tokenizer: str = "auto") -> str:
    """ATIS/SNIPS style: space-joined tokens, TAB, space-joined BIO tags, TAB, intent."""
    pairs = bio_tags(text, spans, tokenizer)
    return f"{' '.join(t for t, _ in pairs)}\t{' '.join(g for _, g in pairs)}\t{intent}"


def _check_lengths(*sequences: Sequence) -> None:
    """Metrics compare item by item: every list must be as long as the first."""
    if len({len(s) for s in sequences}) > 1:
        raise ValueError(f"lengths differ: {[len(s) for s in sequences]}")


def _scores(precision: float, recall: float, f1: float, support: int) -> dict:
    """One row of scores, as plain Python numbers."""
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}


def _set_scores(gold: set, predicted: set) -> dict:
    """Precision, recall and F1 of two sets (0.0 where undefined)."""
    hits = len(gold & predicted)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return _scores(precision, recall, f1, len(gold))


def span_f1(gold: list[list[Span]], predicted: list[list[Span]], texts: list[str], tokenizer: str = "auto") -> dict:
    """Entity-level micro precision/recall/F1 and ``per_label`` rows from seqeval (strict IOB2)
    over the BIO tags of :func:`bio_tags`: token-aligned, so off-by-a-character boundaries inside
    one token still count as a match (see :func:`exact_span_f1` for offsets)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    _check_lengths(gold, predicted, texts)
    y_true = [[tag for _, tag in bio_tags(t, s, tokenizer)] for t, s in zip(texts, gold)]
    y_pred = [[tag for _, tag in bio_tags(t, s, tokenizer)] for t, s in zip(texts, predicted)]
    if all(tag == "O" for seq in y_true + y_pred for tag in seq):
        return {**_scores(0, 0, 0, 0), "per_label": {}}
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    rows = {k: _scores(v["precision"], v["recall"], v["f1-score"], v["support"]) for k, v in report.items()}
    return {**rows["micro avg"], "per_label": {k: v for k, v in rows.items() if not k.endswith(" avg")}}


def exact_span_f1(gold: list[list[Span]], predicted: list[list[Span]]) -> dict:
    """Micro precision/recall/F1 and ``per_label`` rows on exact ``(start, end, label)`` matches."""
    _check_lengths(gold, predicted)
    g = {(i, s.start, s.end, s.label) for i, spans in enumerate(gold) for s in spans}
    p = {(i, s.start, s.end, s.label) for i, spans in enumerate(predicted) for s in spans}
    labels = sorted({key[3] for key in g | p})
    per_label = {lab: _set_scores({k for k in g if k[3] == lab}, {k for k in p if k[3] == lab}) for lab in labels}
    return {**_set_scores(g, p), "per_label": per_label}


def intent_accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of items whose predicted intent equals the gold one (0.0 for no items)."""
    _check_lengths(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold) if gold else 0.0


def sentence_exact_match(
    gold: Sequence[tuple[Sequence[Span], str]], predicted: Sequence[tuple[Sequence[Span], str]]
) -> float:
    """Share of items whose ``(spans, intent)`` are all right: same (start, end, label) set and intent."""
    _check_lengths(gold, predicted)

    def key(spans: Sequence[Span], intent: str) -> tuple[frozenset, str]:
        return frozenset((s.start, s.end, s.label) for s in spans), intent

    return sum(key(*g) == key(*p) for g, p in zip(gold, predicted)) / len(gold) if gold else 0.0
