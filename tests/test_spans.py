"""labelloop.spans: grounding mentions in the text, BIO/CoNLL/ATIS export, span metrics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from labelloop.spans import (
    Span,
    atis_line,
    bio_tags,
    conll,
    exact_span_f1,
    ground,
    intent_accuracy,
    sentence_exact_match,
    span_f1,
    tokenize,
)

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_seqeval = pytest.mark.skipif(
    importlib.util.find_spec("seqeval") is None, reason="seqeval is not installed (pip install seqeval)"
)
SLICES = {"restaurant8k": "restaurant8k/train.jsonl", "crosswoz": "crosswoz/val.jsonl"}


def sp(text: str, part: str, label: str, occurrence: int = 1) -> Span:
    """The span of the ``occurrence``-th ``part`` in ``text``."""
    start = -1
    for _ in range(occurrence):
        start = text.index(part, start + 1)
    return Span(start, start + len(part), label, part)


def ent(text: str, label: str, occurrence: int | None = None) -> dict:
    return {"text": text, "label": label, "occurrence": occurrence}


# --- grounding -------------------------------------------------------------------------------


def test_repeated_mentions_with_and_without_occurrence():
    text = "昨天头痛，今天又头痛，还头痛"
    second = ground(text, [ent("头痛", "symptom", 2)])
    assert second.spans == [sp(text, "头痛", "symptom", 2)]
    successive = ground(text, [ent("头痛", "symptom"), ent("头痛", "symptom")])
    assert successive.spans == [sp(text, "头痛", "symptom", 1), sp(text, "头痛", "symptom", 2)]
    # an explicit occurrence is taken first; the unnumbered one takes the first match still free
    mixed = ground(text, [ent("头痛", "symptom", 1), ent("头痛", "symptom")])
    assert mixed.spans == [sp(text, "头痛", "symptom", 1), sp(text, "头痛", "symptom", 2)]


def test_same_text_under_another_label_is_the_same_mention():
    text = "tables free in an hour?"
    grounded = ground(text, [ent("in an hour", "time"), ent("in an hour", "date")], overlaps="allow")
    assert grounded.spans == [Span(12, 22, "date", "in an hour"), Span(12, 22, "time", "in an hour")]


def test_identical_duplicates_merge_silently():
    grounded = ground("我头痛", [ent("头痛", "symptom", 1), ent("头痛", "symptom", 1)])
    assert (grounded.spans, grounded.ungrounded, grounded.dropped) == ([Span(1, 3, "symptom", "头痛")], [], [])


def test_full_width_and_length_changing_nfkc_map_back_to_original_offsets():
    assert ground("型号ＡＢＣ１２３", [ent("ABC123", "model")]).spans == [Span(2, 8, "model", "ＡＢＣ１２３")]
    # ㎏ -> "kg", ﬁ -> "fi": one original character, two normalised ones
    assert ground("重5㎏的箱子", [ent("5kg", "weight")]).spans == [Span(1, 3, "weight", "5㎏")]
    assert ground("open the ﬁle now", [ent("file", "obj")]).spans == [Span(9, 12, "obj", "ﬁle")]
    # a combining accent (decomposed in the text, composed in the entity)
    assert ground("un cafe\u0301 noir", [ent("café", "drink")]).spans == [Span(3, 8, "drink", "cafe\u0301")]


def test_exact_match_preferred_over_normalised_one():
    text = "ＡＢＣ or ABC"
    assert ground(text, [ent("ABC", "x")]).spans == [Span(7, 10, "x", "ABC")]
    both = ground(text, [ent("ABC", "x"), ent("ABC", "x")]).spans
    assert both == [Span(0, 3, "x", "ＡＢＣ"), Span(7, 10, "x", "ABC")]


def test_whitespace_differences():
    text = "a table in  New\u3000York\ttonight"
    assert ground(text, [ent("New York", "city")]).spans == [Span(12, 20, "city", "New\u3000York")]
    assert ground("fly to New York", [ent("  New   York ", "city")]).spans == [Span(7, 15, "city", "New York")]


def test_case_is_ignored_only_without_an_exact_match():
    assert ground("dinner at NOBU tonight", [ent("Nobu", "venue")]).spans == [Span(10, 14, "venue", "NOBU")]
    assert ground("nobu or Nobu", [ent("Nobu", "venue")]).spans == [Span(8, 12, "venue", "Nobu")]


def test_ungrounded_reasons():
    grounded = ground(
        "头痛，头痛",
        [
            ent("发烧", "symptom"),
            ent("头痛", "symptom", 3),
            ent("  ", "symptom"),
            ent("头痛", "symptom", 0),
            {"text": None, "label": "symptom"},
            {"text": "头痛"},
            ent("头痛", "symptom"),
            ent("头痛", "symptom"),
            ent("头痛", "symptom"),
        ],
    )
    assert [e["reason"] for e in grounded.ungrounded] == [
        "not in the text",
        "occurrence 3 but only 2 matches",
        "empty text",
        "occurrence must be a positive integer",
        "text is not a string",
        "no label",
        "repeated, but all 2 matches already taken",
    ]
    assert grounded.ungrounded[0]["text"] == "发烧"
    assert len(grounded.spans) == 2


CHRONIC = "患者持续性头痛三天"
NESTED = [ent("头痛", "symptom"), ent("持续性头痛", "symptom")]


def test_overlap_allow_keeps_both():
    grounded = ground(CHRONIC, NESTED, overlaps="allow")
    assert grounded.spans == [Span(2, 7, "symptom", "持续性头痛"), Span(5, 7, "symptom", "头痛")]
    assert grounded.dropped == []


def test_overlap_prefer_finer_keeps_the_shorter():
    grounded = ground(CHRONIC, NESTED)
    assert grounded.spans == [Span(5, 7, "symptom", "头痛")]
    assert grounded.dropped == [
        (Span(2, 7, "symptom", "持续性头痛"), "overlaps kept 'symptom' span '头痛' [5:7] (prefer_finer)")
    ]


def test_overlap_prefer_longer_keeps_the_modifier():
    grounded = ground(CHRONIC, NESTED, overlaps="prefer_longer")
    assert grounded.spans == [Span(2, 7, "symptom", "持续性头痛")]
    assert [span for span, _ in grounded.dropped] == [Span(5, 7, "symptom", "头痛")]


@pytest.mark.parametrize("policy", ["prefer_finer", "prefer_longer"])
def test_equal_extent_label_conflict_keeps_the_first(policy):
    grounded = ground("我头痛", [ent("头痛", "symptom"), ent("头痛", "disease")], overlaps=policy)
    assert grounded.spans == [Span(1, 3, "symptom", "头痛")]
    assert grounded.dropped == [(Span(1, 3, "disease", "头痛"), "same extent as kept 'symptom' span: label conflict")]


def test_bad_policy_or_tokenizer():
    with pytest.raises(ValueError, match="overlaps"):
        ground("x", [], overlaps="longest")
    with pytest.raises(ValueError, match="tokenizer"):
        tokenize("x", "spacy")


# --- BIO, CoNLL, ATIS ------------------------------------------------------------------------


def test_bio_chinese_characters():
    assert bio_tags("我 头痛了", [Span(2, 4, "symptom", "头痛")]) == [
        ("我", "O"),
        ("头", "B-symptom"),
        ("痛", "I-symptom"),
        ("了", "O"),
    ]


def test_bio_english_words_and_punctuation():
    text = "Table for 2, at 8pm."
    assert bio_tags(text, [Span(10, 11, "people", "2"), Span(16, 19, "time", "8pm")]) == [
        ("Table", "O"),
        ("for", "O"),
        ("2", "B-people"),
        (",", "O"),
        ("at", "O"),
        ("8pm", "B-time"),
        (".", "O"),
    ]


def test_bio_span_ending_or_starting_mid_token_covers_the_token():
    text = "fly to New York today"
    assert [tag for _, tag in bio_tags(text, [Span(7, 13, "city", "New Yo")])] == ["O", "O", "B-city", "I-city", "O"]
    assert [tag for _, tag in bio_tags(text, [Span(9, 15, "city", "w York")])] == ["O", "O", "B-city", "I-city", "O"]


def test_bio_leaves_out_a_nested_span():
    spans = [Span(5, 7, "symptom", "头痛"), Span(2, 7, "symptom", "持续性头痛")]
    tags = [tag for _, tag in bio_tags(CHRONIC, spans)]
    assert tags == ["O", "O", "B-symptom"] + ["I-symptom"] * 4 + ["O", "O"]


def test_auto_tokenizer_choice():
    assert [t for t, _, _ in tokenize("订2张去Paris的票")] == list("订2张去Paris的票")
    assert [t for t, _, _ in tokenize("a table for 2")] == ["a", "table", "for", "2"]
    assert [t for t, _, _ in tokenize("a table", "char")] == list("atable")


def test_conll_exact_output():
    records = [("我头痛", [Span(1, 3, "symptom", "头痛")]), ("Hi Bob!", [Span(3, 6, "name", "Bob")])]
    assert conll(records) == "我\tO\n头\tB-symptom\n痛\tI-symptom\n\nHi\tO\nBob\tB-name\n!\tO\n"


def test_atis_exact_output():
    line = atis_line("fly to Los Angeles tomorrow", [Span(7, 18, "city", "Los Angeles")], "book_flight")
    assert line == "fly to Los Angeles tomorrow\tO O B-city I-city O\tbook_flight"
    zh = atis_line("去上海", [Span(1, 3, "city", "上海")], "订票")
    assert zh == "去 上 海\tO B-city I-city\t订票"


# --- metrics ---------------------------------------------------------------------------------

FLY = "I want to fly from New York to Los Angeles tomorrow"
GOLD = [sp(FLY, "New York", "city"), sp(FLY, "Los Angeles", "city"), sp(FLY, "tomorrow", "date")]


@needs_seqeval
def test_span_f1_strict_with_one_boundary_error():
    predicted = [sp(FLY, "York", "city"), sp(FLY, "Los Angeles", "city")]  # boundary error, date missed
    scores = span_f1([GOLD], [predicted], [FLY])
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((1 / 2, 1 / 3, 0.4))
    assert scores["per_label"]["city"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert scores["per_label"]["date"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    exact = exact_span_f1([GOLD], [predicted])
    assert (exact["precision"], exact["recall"], exact["f1"]) == pytest.approx((1 / 2, 1 / 3, 0.4))


@needs_seqeval
def test_span_f1_is_token_aligned_exact_span_f1_is_not():
    predicted = [sp(FLY, "New Yor", "city"), GOLD[1], GOLD[2]]  # ends mid-token: same BIO tags
    assert span_f1([GOLD], [predicted], [FLY])["f1"] == 1.0
    assert exact_span_f1([GOLD], [predicted])["f1"] == pytest.approx(2 / 3)


@needs_seqeval
def test_metrics_without_entities_and_length_mismatch():
    assert span_f1([[]], [[]], ["nothing here"]) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "per_label": {},
    }
    with pytest.raises(ValueError, match="lengths differ"):
        exact_span_f1([GOLD], [])


def test_intent_accuracy_and_sentence_exact_match():
    assert intent_accuracy(["book", "cancel", "book"], ["book", "book", "book"]) == pytest.approx(2 / 3)
    gold = [(GOLD, "book"), ([], "greet"), (GOLD[:1], "book")]
    predicted = [(list(reversed(GOLD)), "book"), ([], "bye"), (GOLD[:2], "book")]
    assert sentence_exact_match(gold, predicted) == pytest.approx(1 / 3)


# --- real data slices ------------------------------------------------------------------------


def load_slice(name: str, n: int = 300) -> list[dict]:
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets folder not found at {DATASETS}")
    with open(DATASETS / SLICES[name], encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def gold_spans(record: dict) -> list[Span]:
    spans = {Span(s["start"], s["end"], s["label"], s["text"]) for s in record["spans"]}
    return sorted(spans, key=lambda s: (s.start, s.end, s.label))


def entities(record: dict) -> list[dict]:
    """Gold spans as the model would name them: text and label, occurrence when repeated earlier."""
    text, out = record["text"], []
    for s in record["spans"]:
        earlier = text.count(s["text"], 0, s["start"])
        out.append({"text": s["text"], "label": s["label"], **({"occurrence": earlier + 1} if earlier else {})})
    return out


def overlapping(spans: list[Span]) -> bool:
    return any(a.end > b.start for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("name", sorted(SLICES))
def test_grounding_gold_entities_gives_back_gold_offsets(name):
    records = load_slice(name)
    clean = [r for r in records if not overlapping(gold_spans(r))]
    assert len(clean) >= 290
    for record in clean:
        grounded = ground(record["text"], entities(record))
        assert (grounded.spans, grounded.ungrounded, grounded.dropped) == (gold_spans(record), [], []), record["id"]
    for record in records:  # overlapping gold spans too, when every span is kept
        assert ground(record["text"], entities(record), overlaps="allow").spans == gold_spans(record), record["id"]


@pytest.mark.parametrize("name", sorted(SLICES))
def test_overlapping_gold_spans_are_resolved_by_the_policy(name):
    for record in (r for r in load_slice(name) if overlapping(gold_spans(r))):
        grounded = ground(record["text"], entities(record))
        assert grounded.dropped and not overlapping(grounded.spans)
        assert sorted(grounded.spans + [s for s, _ in grounded.dropped], key=lambda s: (s.start, s.end, s.label)) == (
            gold_spans(record)
        )


@needs_seqeval
@pytest.mark.parametrize("name", sorted(SLICES))
def test_gold_against_itself_scores_one(name):
    records = load_slice(name)
    gold = [gold_spans(r) for r in records]
    texts = [r["text"] for r in records]
    assert exact_span_f1(gold, gold)["f1"] == 1.0
    scores = span_f1(gold, gold, texts)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (1.0, 1.0, 1.0)
    assert all(row["f1"] == 1.0 for row in scores["per_label"].values())


def test_span_f1_does_not_depend_on_the_order_of_same_extent_spans():
    a, b = Span(0, 10, "date", "in an hour"), Span(0, 10, "time", "in an hour")
    assert span_f1([[a, b]], [[b, a]], ["in an hour"])["f1"] == 1.0
