"""Export of the kinds beyond classify and extract: mention offsets, CoNLL, ATIS, spaCy DocBin, one-hot
columns, the rubric version, generate's training formats, the formats each kind fits, and the Label
Studio controls and result mappings of each kind. Every export runs on a real SQLite store."""

from __future__ import annotations

import csv
import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import MODEL, Case, build_store
from labelloop.errors import InputError, MissingExtra
from labelloop.export import FORMATS, export, formats_for
from labelloop.labelstudio import export_tasks, import_export, labeling_config
from labelloop.prompt import build_prompt
from labelloop.spec import TaskSpec, parse_spec
from labelloop.store import Store
from test_export import read_jsonl

SPANS = parse_spec("name: s\nkind: spans\ninstruction: Mark symptoms and drugs.\n"
                   "labels: [symptom, {name: drug, description: a medicine}]\n")
SLOTS = parse_spec("name: i\nkind: intent_slots\ninstruction: Intent and slots.\n"
                   "intents: [{name: book_flight, description: book a seat}, cancel]\nslots: [city, date]\n")
MULTI = parse_spec("name: m\nkind: multilabel\ninstruction: Which relations hold?\n"
                   "labels: [TREATS, {name: CAUSES, description: brings it about}, PREVENTS]\n")
RATE = parse_spec("name: r\nkind: rate\ninstruction: Rate the coherence.\nrubric_version: 2024-06-a\n"
                  "levels: [{value: 1, description: incoherent}, {value: 2, description: partly},"
                  " {value: 3, description: coherent}]\n")
GENERATE = parse_spec("name: g\nkind: generate\ninstruction: Translate to English.\n"
                      "guidelines: Keep it short.\nrubric: [faithful to the source]\n")
CLASSIFY = parse_spec("name: c\nkind: classify\ninstruction: Sentiment.\nlabels: [positive, negative]\n")


def mention(text: str, label: str, start: int, end: int) -> dict[str, Any]:
    return {"text": text, "label": label, "start": start, "end": end}


Z0 = {"entities": [mention("头痛", "symptom", 0, 2), mention("布洛芬", "drug", 5, 8)]}
E0 = {"entities": [mention("ibuprofen", "drug", 5, 14), mention("bad headache", "symptom", 21, 33)]}
SPANS_CASES = [
    Case("z0", "头痛，吃了布洛芬", "accepted", Z0, 0.9),
    Case("e0", "Took ibuprofen for a bad headache.", "accepted", E0, 0.8),
    Case("e1", "My head hurts.", "needs_review", {"entities": []}, 0.3,
         human={"entities": [{"text": "head hurts", "label": "symptom"}]}),  # a person gave no offsets
    Case("x0", "Nothing here.", "accepted", {"entities": [mention("aspirin", "drug", 0, 7)]}, 0.9),  # wrong offsets
    Case("r0", "头晕", "needs_review", {"entities": [mention("头晕", "symptom", 0, 2)]}, 0.4),
]
I0 = {"intent": "book_flight", "slots": [mention("明天", "date", 0, 2), mention("上海", "city", 3, 5)]}
I1 = {"intent": "cancel", "slots": [mention("Paris", "city", 20, 25)]}
SLOTS_CASES = [
    Case("i0", "明天去上海", "accepted", I0, 0.9),
    Case("i1", "cancel my flight to Paris", "needs_review", {"intent": "cancel", "slots": []}, 0.2, human=I1),
]


@pytest.fixture
def spans(tmp_path) -> Iterator[Store]:
    store = build_store(tmp_path / "spans.db", SPANS, SPANS_CASES)
    yield store
    store.close()


@pytest.fixture
def slots(tmp_path) -> Iterator[Store]:
    store = build_store(tmp_path / "slots.db", SLOTS, SLOTS_CASES)
    yield store
    store.close()


def assert_records_fit(spec: TaskSpec, records: list[dict[str, Any]]) -> None:
    """Every output passes the task's schema, and every mention covers exactly its text."""
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    for record in records:
        validator.validate(record["output"])
        for m in record["output"].get(getattr(spec, "mentions_field", ""), []):
            assert record["text"][m["start"]:m["end"]] == m["text"]


# -- JSONL with offsets ------------------------------------------------------------------------------

def test_jsonl_of_spans_gives_every_mention_its_offsets(spans, tmp_path):
    out = tmp_path / "spans.jsonl"
    result = export(spans, SPANS, out)

    records = read_jsonl(out)
    assert [(r["id"], r["source"], r["output"]) for r in records] == [
        ("z0", "model", Z0), ("e0", "model", E0),
        ("e1", "human", {"entities": [mention("head hurts", "symptom", 3, 13)]})]
    assert result.excluded == {"needs_review": 1, "disputed": 0, "failed": 0, "unlabeled": 0, "invalid": 1}  # r0; x0
    assert_records_fit(SPANS, records)


def test_jsonl_of_intent_slots(slots, tmp_path):
    out = tmp_path / "slots.jsonl"
    export(slots, SLOTS, out)

    records = read_jsonl(out)
    assert [(r["id"], r["source"], r["output"]) for r in records] == [("i0", "model", I0), ("i1", "human", I1)]
    assert_records_fit(SLOTS, records)


# -- CoNLL -------------------------------------------------------------------------------------------

SPANS_CONLL_AUTO = """\
头\tB-symptom
痛\tI-symptom
，\tO
吃\tO
了\tO
布\tB-drug
洛\tI-drug
芬\tI-drug

Took\tO
ibuprofen\tB-drug
for\tO
a\tO
bad\tB-symptom
headache\tI-symptom
.\tO

My\tO
head\tB-symptom
hurts\tI-symptom
.\tO
"""

SPANS_CONLL_WHITESPACE = """\
头痛\tB-symptom
，\tO
吃了布洛芬\tB-drug

Took\tO
ibuprofen\tB-drug
for\tO
a\tO
bad\tB-symptom
headache\tI-symptom
.\tO

My\tO
head\tB-symptom
hurts\tI-symptom
.\tO
"""


@pytest.mark.parametrize("tokenizer, expected", [("auto", SPANS_CONLL_AUTO), ("whitespace", SPANS_CONLL_WHITESPACE)])
def test_conll_of_spans_uses_characters_for_chinese_and_words_for_english(spans, tmp_path, tokenizer, expected):
    out = tmp_path / "spans.conll"
    result = export(spans, SPANS, out, "conll", tokenizer=tokenizer)

    assert out.read_text(encoding="utf-8") == expected
    assert (result.format, result.written, result.excluded["invalid"]) == ("conll", 3, 1)


def test_conll_of_intent_slots_tags_the_slots(slots, tmp_path):
    out = tmp_path / "slots.conll"
    export(slots, SLOTS, out, "conll")

    assert out.read_text(encoding="utf-8") == (
        "明\tB-date\n天\tI-date\n去\tO\n上\tB-city\n海\tI-city\n\n"
        "cancel\tO\nmy\tO\nflight\tO\nto\tO\nParis\tB-city\n")


def test_conll_of_nothing_exported_is_one_empty_line(tmp_path):
    store = build_store(tmp_path / "empty.db", SPANS, [SPANS_CASES[-1]])  # needs review only
    export(store, SPANS, tmp_path / "empty.conll", "conll")
    store.close()
    assert (tmp_path / "empty.conll").read_text(encoding="utf-8") == "\n"


# -- ATIS --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tokenizer, expected", [
    ("auto", "明 天 去 上 海\tB-date I-date O B-city I-city\tbook_flight\n"
             "cancel my flight to Paris\tO O O O B-city\tcancel\n"),
    ("whitespace", "明天去上海\tB-date\tbook_flight\n"  # one token: 上海 touches the token 明天 tagged
                   "cancel my flight to Paris\tO O O O B-city\tcancel\n"),
    ("char", "明 天 去 上 海\tB-date I-date O B-city I-city\tbook_flight\n"
             "c a n c e l m y f l i g h t t o P a r i s\tO O O O O O O O O O O O O O O O B-city I-city I-city"
             " I-city I-city\tcancel\n"),
])
def test_atis_lines_hold_tokens_tags_and_intent(slots, tmp_path, tokenizer, expected):
    out = tmp_path / "slots.atis"
    result = export(slots, SLOTS, out, "atis", tokenizer=tokenizer)

    assert out.read_text(encoding="utf-8") == expected
    assert result.written == 2


# -- spaCy DocBin ------------------------------------------------------------------------------------

def read_docbin(path: Path) -> list[Any]:
    spacy = pytest.importorskip("spacy", reason="spaCy is not installed (pip install 'labelloop[spacy]')")
    from spacy.tokens import DocBin

    return list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))


def test_spacy_docbin_of_spans_has_the_conll_tokens_and_entities(spans, tmp_path):
    pytest.importorskip("spacy", reason="spaCy is not installed (pip install 'labelloop[spacy]')")
    out = tmp_path / "spans.spacy"
    result = export(spans, SPANS, out, "spacy")

    docs = read_docbin(out)
    assert [d.user_data["id"] for d in docs] == ["z0", "e0", "e1"]
    assert [d.text for d in docs] == [c.text for c in SPANS_CASES[:3]]
    assert [t.text for t in docs[0]] == list("头痛，吃了布洛芬")
    assert [t.text for t in docs[1]] == ["Took", "ibuprofen", "for", "a", "bad", "headache", "."]
    assert [[(e.text, e.label_, e.start_char, e.end_char) for e in d.ents] for d in docs] == [
        [("头痛", "symptom", 0, 2), ("布洛芬", "drug", 5, 8)],
        [("ibuprofen", "drug", 5, 14), ("bad headache", "symptom", 21, 33)],
        [("head hurts", "symptom", 3, 13)]]
    assert [[(s.text, s.label_) for s in d.spans["sc"]] for d in docs] == [
        [(e.text, e.label_) for e in d.ents] for d in docs]
    conll = [line.split("\t") for line in SPANS_CONLL_AUTO.split("\n") if line]
    assert [(t.text, f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O") for d in docs for t in d] == [
        tuple(pair) for pair in conll]  # the same tokens and tags as the CoNLL export
    assert result.written == 3


def test_spacy_docbin_of_intent_slots_holds_the_intent_in_cats(slots, tmp_path):
    pytest.importorskip("spacy", reason="spaCy is not installed (pip install 'labelloop[spacy]')")
    out = tmp_path / "slots.spacy"
    export(slots, SLOTS, out, "spacy", tokenizer="whitespace")

    first, second = read_docbin(out)
    assert first.cats == {"book_flight": 1.0, "cancel": 0.0} and second.cats == {"book_flight": 0.0, "cancel": 1.0}
    assert [(e.text, e.label_) for e in first.ents] == [("明天去上海", "date")]  # whitespace: one token
    assert [(s.text, s.label_) for s in first.spans["sc"]] == [("明天去上海", "city"), ("明天去上海", "date")]
    assert [(e.text, e.label_) for e in second.ents] == [("Paris", "city")]


def test_spacy_keeps_runs_of_whitespace_and_overlapping_mentions(tmp_path):
    pytest.importorskip("spacy", reason="spaCy is not installed (pip install 'labelloop[spacy]')")
    spec = parse_spec("name: s\nkind: spans\ninstruction: Mark.\nlabels: [city, place]\noverlaps: allow\n")
    text = "  New  York\ncity "
    output = {"entities": [mention("New  York", "city", 2, 11), mention("New  York\ncity", "place", 2, 16)]}
    store = build_store(tmp_path / "ws.db", spec, [Case("w0", text, "accepted", output, 0.9)])
    export(store, spec, tmp_path / "ws.spacy", "spacy")
    store.close()

    [doc] = read_docbin(tmp_path / "ws.spacy")
    assert doc.text == text
    assert [(e.text, e.label_) for e in doc.ents] == [("New  York\ncity", "place")]  # longer first, as in BIO
    assert [(s.text, s.label_) for s in doc.spans["sc"]] == [("New  York", "city"), ("New  York\ncity", "place")]


def test_spacy_missing_says_how_to_install_it(spans, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)  # makes the import fail, as if not installed
    with pytest.raises(MissingExtra, match=r"the spacy format needs the spacy extra: pip install 'labelloop\[spacy\]'"):
        export(spans, SPANS, tmp_path / "out.spacy", "spacy")
    assert not (tmp_path / "out.spacy").exists()


# -- multilabel: a list and one-hot columns ------------------------------------------------------------

MULTI_CASES = [Case("m0", "Aspirin treats pain and causes ulcers.", "accepted", {"labels": ["TREATS", "CAUSES"]}, 0.9),
               Case("m1", "Nothing relevant.", "needs_review", {"labels": ["TREATS"]}, 0.2, human={"labels": []}),
               Case("m2", "Vaccines prevent flu.", "accepted", {"labels": ["PREVENTS"]}, 0.8)]
MULTI_COLUMNS = ["labels", "label:TREATS", "label:CAUSES", "label:PREVENTS", "id", "text", "source", "method",
                 "decided_by", "confidence", "model", "prompt_version"]


@pytest.fixture
def multi(tmp_path) -> Iterator[Store]:
    store = build_store(tmp_path / "multi.db", MULTI, MULTI_CASES)
    yield store
    store.close()


def test_csv_of_multilabel_has_the_list_and_one_hot_columns(multi, tmp_path):
    out = tmp_path / "multi.csv"
    export(multi, MULTI, out, "csv")

    with out.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == MULTI_COLUMNS
        rows = list(reader)
    assert [[r[c] for c in MULTI_COLUMNS[:5]] for r in rows] == [
        ['["TREATS", "CAUSES"]', "1", "1", "0", "m0"], ["[]", "0", "0", "0", "m1"],
        ['["PREVENTS"]', "0", "0", "1", "m2"]]


def test_parquet_and_hf_of_multilabel_have_integer_one_hot_columns(multi, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    export(multi, MULTI, tmp_path / "multi.parquet", "parquet")
    export(multi, MULTI, tmp_path / "multi_hf", "hf")

    table = pq.read_table(tmp_path / "multi.parquet")
    assert table.column_names == MULTI_COLUMNS
    assert str(table.schema.field("label:TREATS").type) == "int64"
    assert table.column("label:TREATS").to_pylist() == [1, 0, 0]
    dataset = datasets.load_from_disk(str(tmp_path / "multi_hf"))
    assert dataset.column_names == MULTI_COLUMNS
    assert (dataset["label:CAUSES"], dataset["label:PREVENTS"]) == ([1, 0, 0], [0, 0, 1])


def test_jsonl_of_multilabel_holds_the_list_only(multi, tmp_path):
    export(multi, MULTI, tmp_path / "multi.jsonl")
    records = read_jsonl(tmp_path / "multi.jsonl")
    assert [r["output"] for r in records] == [
        {"labels": ["TREATS", "CAUSES"]}, {"labels": []}, {"labels": ["PREVENTS"]}]
    assert not any(key.startswith("label:") for r in records for key in r)
    assert_records_fit(MULTI, records)


def test_a_keep_field_that_clashes_with_a_one_hot_column_is_an_error(tmp_path):
    store = build_store(tmp_path / "k.db", MULTI, [Case("k0", "x", "accepted", {"labels": []}, 0.9,
                                                        fields={"label:TREATS": 1})])
    with pytest.raises(InputError, match="field 'label:TREATS': names two columns"):
        export(store, MULTI, tmp_path / "k.csv", "csv", keep_fields=["label:TREATS"])
    store.close()


def test_tabular_exports_of_mention_kinds_hold_the_mentions_as_json(spans, slots, tmp_path):
    export(spans, SPANS, tmp_path / "spans.csv", "csv")
    export(slots, SLOTS, tmp_path / "slots.csv", "csv")

    with (tmp_path / "spans.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:2] == ["entities", "id"]
    assert [json.loads(r["entities"]) for r in rows] == [
        Z0["entities"], E0["entities"], [mention("head hurts", "symptom", 3, 13)]]
    with (tmp_path / "slots.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["intent"], json.loads(r["slots"])) for r in rows] == [
        ("book_flight", I0["slots"]), ("cancel", I1["slots"])]
    assert rows[0]["slots"] == json.dumps(I0["slots"], ensure_ascii=False)


# -- rate: the rubric version --------------------------------------------------------------------------

RATE_CASES = [Case("q0", "First this, then that.", "accepted", {"rating": 3}, 0.9),
              Case("q1", "Cats. Tuesday. Blue.", "needs_review", {"rating": 2}, 0.3, human={"rating": 1})]


@pytest.fixture
def rate(tmp_path) -> Iterator[Store]:
    store = build_store(tmp_path / "rate.db", RATE, RATE_CASES)
    yield store
    store.close()


def test_every_rate_record_carries_the_rubric_version(rate, tmp_path):
    for fmt in ("jsonl", "alpaca", "chat"):
        export(rate, RATE, tmp_path / f"rate.{fmt}", fmt)
    jsonl = read_jsonl(tmp_path / "rate.jsonl")
    assert [(r["output"], r["rubric_version"]) for r in jsonl] == [({"rating": 3}, "2024-06-a"),
                                                                  ({"rating": 1}, "2024-06-a")]
    assert list(jsonl[0])[-2:] == ["prompt_version", "rubric_version"]
    assert_records_fit(RATE, jsonl)
    for fmt in ("alpaca", "chat"):
        assert [r["rubric_version"] for r in read_jsonl(tmp_path / f"rate.{fmt}")] == ["2024-06-a"] * 2


def test_tabular_rate_exports_have_a_rubric_version_column(rate, tmp_path):
    export(rate, RATE, tmp_path / "rate.csv", "csv")
    with (tmp_path / "rate.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["rating", "id", "text", "source", "method", "decided_by", "confidence", "model",
                                 "prompt_version", "rubric_version"]
    assert [(r["rating"], r["rubric_version"]) for r in rows] == [("3", "2024-06-a"), ("1", "2024-06-a")]
    pq = pytest.importorskip("pyarrow.parquet")
    export(rate, RATE, tmp_path / "rate.parquet", "parquet")
    assert pq.read_table(tmp_path / "rate.parquet").column("rubric_version").to_pylist() == ["2024-06-a"] * 2


def test_the_rubric_version_defaults_to_1(tmp_path):
    spec = parse_spec("name: r\nkind: rate\ninstruction: Rate.\n"
                      "levels: [{value: 0, description: bad}, {value: 1, description: good}]\n")
    store = build_store(tmp_path / "r.db", spec, [Case("d0", "x", "accepted", {"rating": 0}, 0.9)])
    export(store, spec, tmp_path / "r.jsonl")
    store.close()
    assert read_jsonl(tmp_path / "r.jsonl")[0]["rubric_version"] == "1"


# -- generate: alpaca and chat hold the text ------------------------------------------------------------

GENERATE_CASE = Case("g0", "我头痛。", "accepted", {"output": "I have a headache."}, 0.9)


def test_generate_exports_alpaca_and_chat_with_the_text_itself(tmp_path):
    store = build_store(tmp_path / "g.db", GENERATE, [GENERATE_CASE])
    export(store, GENERATE, tmp_path / "alpaca.jsonl", "alpaca")
    export(store, GENERATE, tmp_path / "chat.jsonl", "chat")
    export(store, GENERATE, tmp_path / "g.jsonl")
    store.close()

    assert read_jsonl(tmp_path / "alpaca.jsonl") == [
        {"instruction": "Translate to English.", "input": "我头痛。", "output": "I have a headache."}]
    assert read_jsonl(tmp_path / "chat.jsonl") == [{"messages": [
        {"role": "system", "content": "Translate to English.\n\nKeep it short."},
        {"role": "user", "content": "我头痛。"}, {"role": "assistant", "content": "I have a headache."}]}]
    assert_records_fit(GENERATE, read_jsonl(tmp_path / "g.jsonl"))


# -- which formats fit which kind ------------------------------------------------------------------------

def test_each_kind_lists_the_formats_that_fit_it():
    assert formats_for(CLASSIFY) == formats_for(MULTI) == formats_for(RATE) == formats_for(GENERATE) == FORMATS
    assert formats_for(SPANS) == (*FORMATS, "conll", "spacy")
    assert formats_for(SLOTS) == (*FORMATS, "conll", "atis", "spacy")


@pytest.mark.parametrize("spec, fmt, message", [
    (CLASSIFY, "conll", "the conll format is for spans or intent_slots tasks, not classify;"
                        " a classify task exports as jsonl, csv, parquet, hf, alpaca, chat"),
    (SPANS, "atis", "the atis format is for intent_slots tasks, not spans;"
                    " a spans task exports as jsonl, csv, parquet, hf, alpaca, chat, conll, spacy"),
    (MULTI, "spacy", "the spacy format is for spans or intent_slots tasks, not multilabel;"
                     " a multilabel task exports as jsonl, csv, parquet, hf, alpaca, chat"),
    (SLOTS, "bio", "unknown format 'bio'; choose one of jsonl, csv, parquet, hf, alpaca, chat, conll, atis, spacy"),
])
def test_a_format_that_does_not_fit_the_kind_is_an_error_naming_those_that_do(tmp_path, spec, fmt, message):
    store = build_store(tmp_path / "x.db", spec, [])
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        export(store, spec, tmp_path / "out", fmt)
    store.close()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt, tokenizer, message", [
    ("conll", "spacy", "unknown tokenizer 'spacy'; choose one of auto, char, whitespace"),
    ("jsonl", "char", "the jsonl format has no tokens: a tokenizer applies to conll, atis, spacy only"),
    ("conll", "auto", "the conll format has a fixed shape: keep_fields are not supported"),
])
def test_tokenizer_and_keep_fields_errors(slots, tmp_path, fmt, tokenizer, message):
    with pytest.raises(InputError, match=message):
        export(slots, SLOTS, tmp_path / "out", fmt, tokenizer=tokenizer,
               keep_fields=["x"] if "keep_fields" in message else None)


# -- every record of every kind fits its schema ----------------------------------------------------------

@pytest.mark.parametrize("spec, cases", [(SPANS, SPANS_CASES), (SLOTS, SLOTS_CASES), (MULTI, MULTI_CASES),
                                         (RATE, RATE_CASES), (GENERATE, [GENERATE_CASE])],
                         ids=lambda v: v.kind if isinstance(v, TaskSpec) else "")
def test_every_exported_record_passes_the_output_schema(tmp_path, spec, cases):
    store = build_store(tmp_path / "all.db", spec, cases)
    result = export(store, spec, tmp_path / "all.jsonl", include_unreviewed=True)
    store.close()
    records = read_jsonl(tmp_path / "all.jsonl")
    assert len(records) == result.written > 0
    assert_records_fit(spec, records)


# -- Label Studio: controls ---------------------------------------------------------------------------

def controls(spec: TaskSpec) -> list[ET.Element]:
    return [e for e in ET.fromstring(labeling_config(spec)) if e.tag not in ("Header", "Text")]


def test_config_of_spans_is_one_labels_control():
    [labels] = controls(SPANS)
    assert (labels.tag, labels.get("name"), labels.get("toName"), labels.get("required")) == (
        "Labels", "entities", "labelloop_text", None)
    assert [(e.tag, e.get("value"), e.get("hint")) for e in labels] == [
        ("Label", "symptom", None), ("Label", "drug", "a medicine")]


def test_config_of_intent_slots_is_choices_for_the_intent_and_labels_for_the_slots():
    intent, slots = controls(SLOTS)
    assert (intent.tag, intent.get("name"), intent.get("choice"), intent.get("required")) == (
        "Choices", "intent", "single", "true")
    assert [(c.get("value"), c.get("hint")) for c in intent] == [("book_flight", "book a seat"), ("cancel", None)]
    assert (slots.tag, slots.get("name"), [e.get("value") for e in slots]) == ("Labels", "slots", ["city", "date"])


def test_config_of_multilabel_is_a_multiple_choice_that_may_stay_empty():
    [choices] = controls(MULTI)
    assert (choices.tag, choices.get("name"), choices.get("choice"), choices.get("required")) == (
        "Choices", "labels", "multiple", None)
    assert [(c.get("value"), c.get("hint")) for c in choices] == [
        ("TREATS", None), ("CAUSES", "brings it about"), ("PREVENTS", None)]


def test_config_of_rate_is_a_single_choice_over_the_levels_with_their_descriptions():
    [choices] = controls(RATE)
    assert (choices.tag, choices.get("name"), choices.get("choice"), choices.get("required")) == (
        "Choices", "rating", "single", "true")
    assert [(c.get("value"), c.get("hint")) for c in choices] == [
        ("1", "incoherent"), ("2", "partly"), ("3", "coherent")]


# -- Label Studio: results and round trips -------------------------------------------------------------

def ls_tasks(store: Store, spec: TaskSpec, path: Path) -> list[dict[str, Any]]:
    return json.loads(Path(export_tasks(store, spec, path).tasks_path).read_text(encoding="utf-8"))


def accept_all(store: Store, spec: TaskSpec, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """Export tasks, let an annotator submit every prediction unchanged, import; return the result and outputs."""
    tasks = ls_tasks(store, spec, tmp_path / "tasks.json")
    for number, task in enumerate(tasks):
        task.update(id=number + 1, annotations=[{"id": 700 + number, "completed_by": 1,
                                                 "result": task["predictions"][0]["result"]}])
    (tmp_path / "accepted.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    result = import_export(store, spec, tmp_path / "accepted.json")
    outputs = {r["item_id"]: json.loads(r["output"]) for r in store.db.execute(
        "SELECT item_id, output FROM annotations WHERE source = 'labelstudio'")}
    return result, outputs


def test_spans_predictions_are_labels_regions(spans, tmp_path):
    tasks = ls_tasks(spans, SPANS, tmp_path / "tasks.json")
    assert tasks[0] == {"data": {"text": "头痛，吃了布洛芬", "labelloop_id": "z0"}, "predictions": [{
        "model_version": f"{MODEL}@{build_prompt(SPANS).version}", "score": 0.9, "result": [
            {"from_name": "entities", "to_name": "labelloop_text", "type": "labels",
             "value": {"start": 0, "end": 2, "text": "头痛", "labels": ["symptom"]}},
            {"from_name": "entities", "to_name": "labelloop_text", "type": "labels",
             "value": {"start": 5, "end": 8, "text": "布洛芬", "labels": ["drug"]}}]}]}


@pytest.mark.parametrize("spec, cases", [
    (SPANS, [c for c in SPANS_CASES if c.id != "x0"]), (SLOTS, SLOTS_CASES), (MULTI, MULTI_CASES),
    (RATE, RATE_CASES)], ids=lambda v: v.kind if isinstance(v, TaskSpec) else "")
def test_predictions_come_back_exactly_when_accepted_in_label_studio(tmp_path, spec, cases):
    store = build_store(tmp_path / "ls.db", spec, [Case(c.id, c.text, c.route, c.output, c.confidence) for c in cases])
    result, outputs = accept_all(store, spec, tmp_path)
    store.close()
    assert (result.imported, result.errors) == (len(cases), [])
    assert outputs == {c.id: c.output for c in cases}


def test_an_empty_answer_imports_as_no_mentions_and_no_labels(tmp_path):
    for spec, empty in ((SPANS, {"entities": []}), (MULTI, {"labels": []})):
        store = build_store(tmp_path / f"{spec.kind}.db", spec, [Case("n0", "头痛", "needs_review", empty, 0.1)])
        result, outputs = accept_all(store, spec, tmp_path)
        store.close()
        assert (result.errors, outputs) == ([], {"n0": empty})


def region(name: str, start: int, end: int, text: str, *labels: str) -> dict[str, Any]:
    return {"from_name": name, "to_name": "labelloop_text", "type": "labels",
            "value": {"start": start, "end": end, "text": text, "labels": list(labels)}}


def import_results(store: Store, spec: TaskSpec, tmp_path: Path, item_id: str,
                   results: list[list[dict[str, Any]]]) -> Any:
    tasks = [{"id": 10 + n, "data": {"text": "", "labelloop_id": item_id},
              "annotations": [{"id": 900 + n, "completed_by": {"id": 3, "email": f"u{n}@x.org"}, "result": r}]}
             for n, r in enumerate(results)]
    (tmp_path / "ls.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return import_export(store, spec, tmp_path / "ls.json")


def test_imported_regions_become_sorted_grounded_mentions_and_bad_regions_are_named(slots, tmp_path):
    intent = {"from_name": "intent", "to_name": "labelloop_text", "type": "choices", "value": {"choices": ["cancel"]}}
    result = import_results(slots, SLOTS, tmp_path, "i1", [
        [region("slots", 20, 25, "Paris", "city", "date"), intent, region("slots", 0, 6, "cancel", "date")],
        [intent, region("slots", 20, 25, "Rome", "city")],
        [intent, region("slots", 20, 99, "Paris", "city")],
        [intent, region("slots", 0, 6, "cancel")],
        [intent, region("slots", 0, 6, "cancel", "airline")]])
    assert result.imported == 1
    assert result.errors == [
        "task 11 (item i1), annotation 901: field 'slots': the region at [20:25] reads 'Rome' but the text there is"
        " 'Paris'",
        "task 12 (item i1), annotation 902: field 'slots': a region needs offsets 0 <= start < end <= the text's"
        " length, got 20, 99",
        "task 13 (item i1), annotation 903: field 'slots': the region at [0:6] has no label",
        "task 14 (item i1), annotation 904: field 'slots.0.label': 'airline' is not one of ['city', 'date']"]
    [output] = [json.loads(r["output"]) for r in slots.db.execute(
        "SELECT output FROM annotations WHERE source = 'labelstudio'")]
    assert output == {"intent": "cancel", "slots": [mention("cancel", "date", 0, 6), mention("Paris", "city", 20, 25),
                                                    mention("Paris", "date", 20, 25)]}
    jsonschema.validate(output, SLOTS.output_schema())


def test_imported_mentions_export_with_their_offsets(spans, tmp_path):
    import_results(spans, SPANS, tmp_path, "e0", [[region("entities", 21, 33, "bad headache", "symptom")]])
    export(spans, SPANS, tmp_path / "after.jsonl")
    records = {r["id"]: r for r in read_jsonl(tmp_path / "after.jsonl")}
    assert (records["e0"]["source"], records["e0"]["output"]) == (
        "human", {"entities": [mention("bad headache", "symptom", 21, 33)]})
