"""Export: which label is final, what is left out and why, and each format's shape, on real SQLite stores."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import MODEL, Case, build_store
from labelloop.errors import InputError, MissingExtra
from labelloop.export import FORMATS, export
from labelloop.prompt import build_prompt
from labelloop.spec import TaskSpec, parse_spec, template_text
from labelloop.store import Item, Store

SENTIMENT = parse_spec(template_text("sentiment"))
FLIGHT = parse_spec(template_text("flight-booking"))
NESTED = parse_spec("""
name: nested
kind: extract
instruction: Extract the tags and the order.
schema:
  type: object
  properties:
    tags: {type: array, items: {type: string}}
    order: {type: [object, "null"]}
    urgent: {type: boolean}
    score: {type: number}
  required: [tags, order, urgent, score]
  additionalProperties: false
""")
PRODUCT_REVIEWS = parse_spec("""
name: product-reviews
kind: classify
instruction: Classify the sentiment of a product review.
labels: [positive, negative, neutral]
prompt:
  item_template: "Product: {{ product }}\\n\\n{{ text }}"
""")  # no examples: an item without a product fails only when its own message is rendered


SENTIMENT_CASES = [
    Case("s0", "Loved it.", "accepted", {"label": "positive"}, 0.95, fields={"product": "phone", "stars": 5}),
    Case("s1", "Not bad at all.", "accepted", {"label": "negative"}, 0.9, human={"label": "positive"},
         fields={"product": "kettle"}),
    Case("s2", "It is a phone.", "needs_review", {"label": "neutral"}, 0.4, fields={"product": "phone"}),
    Case("s3", "Meh.", "needs_review", {"label": "meh"}, 0.3),
    Case("s4", "Timeout here.", "failed"),
    Case("s5", "Never labeled."),
    Case("s6", "Broke on day one.", human={"label": "negative"}, annotator="bob"),
    Case("s7", "Great!", "accepted", {"label": "great"}, 0.99),
    Case("s8", "Odd one.", human={"label": "so-so"}),
    Case("s9", "Fast shipping.", "accepted", {"label": "positive"}, None, fields={"tags": ["a", "b"]}),
    Case("s10", "Rude staff.", "failed", human={"label": "negative"}),
]
VERSION = build_prompt(SENTIMENT).version


@pytest.fixture
def sentiment(store_location) -> Iterator[Store]:
    store = build_store(store_location, SENTIMENT, SENTIMENT_CASES)
    yield store
    store.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_schema_valid(spec: TaskSpec, outputs: list[Any]) -> None:
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    for output in outputs:
        validator.validate(output)


# -- which label is final ---------------------------------------------------------------------

def test_jsonl_round_trip_keeps_labels_and_provenance(sentiment, tmp_path):
    out = tmp_path / "out" / "labels.jsonl"
    result = export(sentiment, SENTIMENT, out)

    records = {r["id"]: r for r in read_jsonl(out)}
    assert records == {
        "s0": {"id": "s0", "text": "Loved it.", "output": {"label": "positive"}, "source": "model",
               "confidence": 0.95, "model": MODEL, "prompt_version": VERSION},
        "s1": {"id": "s1", "text": "Not bad at all.", "output": {"label": "positive"}, "source": "human",
               "method": "single", "decided_by": "alice", "confidence": 1.0, "model": MODEL, "prompt_version": VERSION},
        "s6": {"id": "s6", "text": "Broke on day one.", "output": {"label": "negative"}, "source": "human",
               "method": "single", "decided_by": "bob", "confidence": 1.0, "model": None, "prompt_version": None},
        "s9": {"id": "s9", "text": "Fast shipping.", "output": {"label": "positive"}, "source": "model",
               "confidence": None, "model": MODEL, "prompt_version": VERSION},
        "s10": {"id": "s10", "text": "Rude staff.", "output": {"label": "negative"}, "source": "human",
                "method": "single", "decided_by": "alice", "confidence": 1.0, "model": MODEL,
                "prompt_version": VERSION},
    }
    assert [r["id"] for r in read_jsonl(out)] == ["s0", "s1", "s6", "s9", "s10"]  # ingest order
    assert (result.path, result.format, result.written) == (str(out), "jsonl", 5)
    assert result.by_source == {"human": 3, "model": 2}
    assert result.excluded == {"needs_review": 2, "disputed": 0, "failed": 1, "unlabeled": 1, "invalid": 2}
    assert_schema_valid(SENTIMENT, [r["output"] for r in records.values()])


def test_include_unreviewed_adds_only_schema_valid_answers(sentiment, tmp_path):
    out = tmp_path / "labels.jsonl"
    result = export(sentiment, SENTIMENT, out, include_unreviewed=True)

    records = {r["id"]: r for r in read_jsonl(out)}
    assert sorted(records) == ["s0", "s1", "s10", "s2", "s6", "s9"]
    assert records["s2"]["output"] == {"label": "neutral"}
    assert (records["s2"]["source"], records["s2"]["confidence"]) == ("model", 0.4)
    assert result.by_source == {"human": 3, "model": 3}
    assert result.excluded == {"needs_review": 0, "disputed": 0, "failed": 1, "unlabeled": 1, "invalid": 3}
    assert_schema_valid(SENTIMENT, [r["output"] for r in records.values()])


FLIGHT_OK = {"intent": "book_flight", "departure_city": "北京", "arrival_city": "上海", "date": "明天",
             "time": "09:00", "class": "economy", "passenger_count": 1}
FLIGHT_HUMAN = {"intent": "cancel_flight", "departure_city": None, "arrival_city": "成都", "date": "下周五",
                "time": None, "class": None, "passenger_count": 2}
FLIGHT_CASES = [
    Case("f0", "明天上午九点从北京飞上海，经济舱", "accepted", FLIGHT_OK, 0.91),
    Case("f1", "帮我订机票", "accepted", {"intent": "book_flight"}, 0.8),  # required fields missing
    Case("f2", "取消下周五去成都的两张票", "needs_review", {**FLIGHT_HUMAN, "passenger_count": 1}, 0.5,
         human=FLIGHT_HUMAN, annotator="carol"),
    Case("f3", "查一下航班", "needs_review", {**FLIGHT_OK, "intent": "query_flight"}, 0.6),
]


@pytest.fixture
def flight(store_location) -> Iterator[Store]:
    store = build_store(store_location, FLIGHT, FLIGHT_CASES)
    yield store
    store.close()


def test_extract_export_keeps_valid_answers_and_validates_every_one(flight, tmp_path):
    out = tmp_path / "flight.jsonl"
    result = export(flight, FLIGHT, out)

    records = {r["id"]: r for r in read_jsonl(out)}
    assert {k: (r["source"], r["output"]) for k, r in records.items()} == {
        "f0": ("model", FLIGHT_OK), "f2": ("human", FLIGHT_HUMAN)}
    assert (records["f2"]["method"], records["f2"]["decided_by"]) == ("single", "carol")
    assert result.excluded == {"needs_review": 1, "disputed": 0, "failed": 0, "unlabeled": 0, "invalid": 1}
    assert_schema_valid(FLIGHT, [r["output"] for r in records.values()])


# -- tabular formats ---------------------------------------------------------------------------

FLIGHT_COLUMNS = ["intent", "departure_city", "arrival_city", "date", "time", "class", "passenger_count",
                  "id", "text", "source", "method", "decided_by", "confidence", "model", "prompt_version"]


def test_csv_flattens_the_answer_into_columns_in_schema_order(flight, tmp_path):
    out = tmp_path / "flight.csv"
    export(flight, FLIGHT, out, "csv")

    with out.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == FLIGHT_COLUMNS
        rows = list(reader)
    assert [r["id"] for r in rows] == ["f0", "f2"]
    assert rows[0] == {"intent": "book_flight", "departure_city": "北京", "arrival_city": "上海", "date": "明天",
                       "time": "09:00", "class": "economy", "passenger_count": "1", "id": "f0",
                       "text": "明天上午九点从北京飞上海，经济舱", "source": "model", "method": "", "decided_by": "",
                       "confidence": "0.91", "model": MODEL, "prompt_version": build_prompt(FLIGHT).version}
    assert (rows[1]["departure_city"], rows[1]["passenger_count"], rows[1]["decided_by"]) == ("", "2", "carol")


def test_csv_of_a_classify_task_has_a_label_column(sentiment, tmp_path):
    out = tmp_path / "labels.csv"
    export(sentiment, SENTIMENT, out, "csv")

    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:2] == ["label", "id"]
    assert {r["id"]: r["label"] for r in rows} == {"s0": "positive", "s1": "positive", "s6": "negative",
                                                  "s9": "positive", "s10": "negative"}


NESTED_OUTPUT = {"tags": ["late", "refund"], "order": {"no": 7, "城市": "北京"}, "urgent": True, "score": 2}


@pytest.fixture
def nested(store_location) -> Iterator[Store]:
    store = build_store(store_location, NESTED, [
        Case("n0", "Late again, refund please", "accepted", NESTED_OUTPUT, 0.8),
        Case("n1", "fine", "accepted", {"tags": [], "order": None, "urgent": False, "score": 0.5}, 0.9)])
    yield store
    store.close()


def test_csv_json_encodes_lists_and_objects(nested, tmp_path):
    out = tmp_path / "nested.csv"
    export(nested, NESTED, out, "csv")

    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["tags"], r["order"], r["urgent"], r["score"]) for r in rows] == [
        ('["late", "refund"]', '{"no": 7, "城市": "北京"}', "true", "2"), ("[]", "", "false", "0.5")]


def test_parquet_reads_back_with_typed_columns(nested, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "nested.parquet"
    result = export(nested, NESTED, out, "parquet")

    table = pq.read_table(out)
    assert table.column_names == ["tags", "order", "urgent", "score", "id", "text", "source", "method", "decided_by",
                                  "confidence", "model", "prompt_version"]
    assert {name: str(table.schema.field(name).type) for name in ("tags", "urgent", "score", "confidence")} == {
        "tags": "string", "urgent": "bool", "score": "double", "confidence": "double"}
    rows = table.to_pylist()
    assert [json.loads(r["tags"]) for r in rows] == [["late", "refund"], []]
    assert json.loads(rows[0]["order"]) == NESTED_OUTPUT["order"]
    assert [(r["id"], r["urgent"], r["score"], r["source"]) for r in rows] == [
        ("n0", True, 2.0, "model"), ("n1", False, 0.5, "model")]
    assert result.written == 2


def test_parquet_of_the_flight_task(flight, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "flight.parquet"
    export(flight, FLIGHT, out, "parquet")

    table = pq.read_table(out)
    assert table.column_names == FLIGHT_COLUMNS
    assert table.column("passenger_count").to_pylist() == [1, 2]
    assert table.column("decided_by").to_pylist() == [None, "carol"]


def test_hf_dataset_loads_from_disk_and_replaces_an_older_export(flight, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "exports" / "flight_hf"
    export(flight, FLIGHT, out, "hf")
    flight.add_annotation("f3", "dave", {**FLIGHT_OK, "intent": "query_flight"}, "accept", None)
    result = export(flight, FLIGHT, out, "hf")

    dataset = datasets.load_from_disk(str(out))
    assert dataset.column_names == FLIGHT_COLUMNS
    assert dataset["id"] == ["f0", "f2", "f3"]
    assert dataset["intent"] == ["book_flight", "cancel_flight", "query_flight"]
    assert dataset["passenger_count"] == [1, 2, 1]
    assert dataset["source"] == ["model", "human", "human"]
    assert result.written == 3
    assert os.listdir(out.parent) == ["flight_hf"]


# -- training formats --------------------------------------------------------------------------

def test_alpaca_records(flight, tmp_path):
    out = tmp_path / "alpaca.jsonl"
    export(flight, FLIGHT, out, "alpaca")

    assert read_jsonl(out) == [
        {"instruction": FLIGHT.instruction, "input": "明天上午九点从北京飞上海，经济舱",
         "output": json.dumps(FLIGHT_OK, ensure_ascii=False)},
        {"instruction": FLIGHT.instruction, "input": "取消下周五去成都的两张票",
         "output": json.dumps(FLIGHT_HUMAN, ensure_ascii=False)}]


@pytest.mark.parametrize("spec", [SENTIMENT, PRODUCT_REVIEWS], ids=["sentiment", "item-template"])
def test_chat_records_use_the_task_prompt(tmp_path, spec, store_location):
    store = build_store(store_location, spec, SENTIMENT_CASES[:2])
    out = tmp_path / "chat.jsonl"
    export(store, spec, out, "chat")
    store.close()

    system = build_prompt(spec).shared[0]["content"]
    assert system.startswith(spec.prompt.role)
    assert read_jsonl(out) == [
        {"messages": [{"role": "system", "content": system},
                      {"role": "user", "content": user_message(spec, SENTIMENT_CASES[0])},
                      {"role": "assistant", "content": '{"label": "positive"}'}]},
        {"messages": [{"role": "system", "content": system},
                      {"role": "user", "content": user_message(spec, SENTIMENT_CASES[1])},
                      {"role": "assistant", "content": '{"label": "positive"}'}]}]


def test_the_item_template_renders_item_fields():
    assert user_message(PRODUCT_REVIEWS, SENTIMENT_CASES[0]) == "Product: phone\n\nLoved it."
    assert user_message(SENTIMENT, SENTIMENT_CASES[0]) == "Loved it."


def user_message(spec: TaskSpec, case: Case) -> str:
    return build_prompt(spec).item_messages(Item(case.id, case.text, case.fields, ""))[0]["content"]


# -- kept fields -------------------------------------------------------------------------------

def test_keep_fields_are_carried_and_missing_values_are_null(sentiment, tmp_path):
    out = tmp_path / "labels.jsonl"
    export(sentiment, SENTIMENT, out, keep_fields=["product", "tags"])

    records = {r["id"]: r for r in read_jsonl(out)}
    assert {k: (r["product"], r["tags"]) for k, r in records.items()} == {
        "s0": ("phone", None), "s1": ("kettle", None), "s6": (None, None), "s9": (None, ["a", "b"]),
        "s10": (None, None)}
    assert list(records["s0"])[-2:] == ["product", "tags"]


def test_keep_fields_in_csv_are_columns_with_json_for_lists(sentiment, tmp_path):
    out = tmp_path / "labels.csv"
    export(sentiment, SENTIMENT, out, "csv", keep_fields=["product", "tags"])

    with out.open(encoding="utf-8", newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    assert list(rows["s0"])[-2:] == ["product", "tags"]
    assert (rows["s0"]["product"], rows["s9"]["tags"]) == ("phone", '["a", "b"]')


def test_a_keep_field_no_item_has_is_an_error_naming_it(sentiment, tmp_path):
    out = tmp_path / "labels.jsonl"
    with pytest.raises(InputError, match="field 'colour': no item has this field"):
        export(sentiment, SENTIMENT, out, keep_fields=["product", "colour"])
    assert not out.exists()
    assert [r["action"] for r in sentiment.audit_log()] == ["correct"] * 4


@pytest.mark.parametrize("fmt,keep", [("jsonl", "source"), ("csv", "label"), ("parquet", "id")])
def test_a_keep_field_that_clashes_with_a_column_is_an_error(sentiment, tmp_path, fmt, keep):
    with pytest.raises(InputError, match=f"field '{keep}': names two columns"):
        export(sentiment, SENTIMENT, tmp_path / "x", fmt, keep_fields=[keep])


def test_keep_fields_with_a_fixed_shape_format_is_an_error(sentiment, tmp_path):
    with pytest.raises(InputError, match="alpaca format has a fixed shape"):
        export(sentiment, SENTIMENT, tmp_path / "a.jsonl", "alpaca", keep_fields=["product"])


# -- errors, atomic writes, audit ----------------------------------------------------------------

def test_unknown_format_is_an_error_listing_the_formats(sentiment, tmp_path):
    with pytest.raises(InputError, match="unknown format 'xml'; choose one of jsonl, csv, parquet, hf, alpaca, chat"):
        export(sentiment, SENTIMENT, tmp_path / "labels.xml", "xml")
    assert not (tmp_path / "labels.xml").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_leaves_only_its_destination(sentiment, tmp_path, fmt):
    if fmt in ("parquet", "hf"):
        pytest.importorskip("pyarrow" if fmt == "parquet" else "datasets")
    folder = tmp_path / "exports"
    out = folder / f"labels.{fmt}"
    result = export(sentiment, SENTIMENT, out, fmt)
    assert os.listdir(folder) == [out.name]
    assert result.written == 5


def test_a_failed_export_keeps_the_previous_file_and_leaves_no_temp(sentiment, tmp_path):
    spec = PRODUCT_REVIEWS
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "chat.jsonl"
    out.write_text("previous export\n", encoding="utf-8")
    with pytest.raises(InputError, match="item lacks"):  # s6 has no product: rendering fails mid-stream
        export(sentiment, spec, out, "chat")
    assert os.listdir(folder) == ["chat.jsonl"]
    assert out.read_text(encoding="utf-8") == "previous export\n"


def test_an_export_appends_one_audit_row(sentiment, tmp_path):
    out = tmp_path / "labels.csv"
    result = export(sentiment, SENTIMENT, out, "csv", actor="erin")

    row = sentiment.audit_log()[-1]
    assert (row["actor"], row["action"], row["item_id"]) == ("erin", "export", None)
    assert json.loads(row["detail"]) == {"path": str(out), "format": "csv", "written": 5,
                                         "excluded": result.excluded}
    assert len(sentiment.audit_log()) == 5  # four annotations, one export


@pytest.mark.parametrize("fmt,modules,extra", [("parquet", ["pyarrow", "pyarrow.parquet"], "parquet"),
                                                ("hf", ["datasets"], "hf")])
def test_a_missing_optional_package_says_what_to_install(sentiment, tmp_path, monkeypatch, fmt, modules, extra):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail, as if not installed
    with pytest.raises(MissingExtra,
                       match=rf"the {fmt} format needs the {extra} extra: pip install 'labelloop\[{extra}\]'"):
        export(sentiment, SENTIMENT, tmp_path / "out", fmt)
    assert not (tmp_path / "out").exists()
