"""Ingest: JSONL/CSV/TSV/Parquet into the store, all of a file or nothing, or bad lines to a rejects file."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelloop.errors import IdCollisionError, InputError
from labelloop.ingest import content_hash, ingest_file
from labelloop.readers import BATCH
from labelloop.spec import parse_spec, template_text
from labelloop.store import Store

SPEC = parse_spec(template_text("sentiment"))  # its input block: text_field text, no id_field


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def rows(store: Store) -> list[tuple]:
    """Every item as (id, text, fields, source_line), in ingest order."""
    return [(i.id, i.text, i.fields, i.source_line) for i in store.iter_items()]


def ids(store: Store) -> set[str]:
    return {item.id for item in store.iter_items()}


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    store = Store.open(tmp_path / "labelloop.db")
    yield store
    store.close()


# -- formats -----------------------------------------------------------------------------

def test_jsonl_with_text_and_id_fields(store, tmp_path):
    path = write(tmp_path / "in.jsonl", jsonl({"key": "a", "body": "first", "lang": "en"},
                                              {"key": 7, "body": "second", "lang": "de", "score": 0.5}))
    result = ingest_file(store, SPEC, path, text_field="body", id_field="key")
    assert (result.added, result.duplicates, result.rejected, result.rejects_path) == (2, 0, 0, None)
    assert result.path == str(path)
    assert rows(store) == [("a", "first", {"lang": "en"}, 1), ("7", "second", {"lang": "de", "score": 0.5}, 2)]
    assert {i.source_file for i in store.iter_items()} == {str(path)}


def test_jsonl_skips_blank_lines_and_keeps_physical_line_numbers(store, tmp_path):
    path = write(tmp_path / "in.jsonl", '{"text": "one"}\n\n   \n{"text": "two"}\n')
    assert ingest_file(store, SPEC, path).added == 2
    assert [(text, line) for _, text, _, line in rows(store)] == [("one", 1), ("two", 4)]


def test_csv_with_text_and_id_fields(store, tmp_path):
    path = write(tmp_path / "in.csv", 'key,body,lang\nc1,"hello, world",en\nc2,"two\nlines",fr\n,,\nc3,third,de\n')
    result = ingest_file(store, SPEC, path, text_field="body", id_field="key")
    assert (result.added, result.duplicates) == (3, 0)
    assert rows(store) == [("c1", "hello, world", {"lang": "en"}, 2), ("c2", "two\nlines", {"lang": "fr"}, 3),
                           ("c3", "third", {"lang": "de"}, 6)]


def test_tsv_with_text_and_id_fields(store, tmp_path):
    path = write(tmp_path / "in.tsv", "key\tbody\tlang\nt1\tcommas, are fine\ten\nt2\tsecond\tes\n")
    result = ingest_file(store, SPEC, path, text_field="body", id_field="key")
    assert result.added == 2
    assert rows(store) == [("t1", "commas, are fine", {"lang": "en"}, 2), ("t2", "second", {"lang": "es"}, 3)]


def test_parquet_with_text_and_id_fields(store, tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"key": [10, 11, 12], "content": ["alpha", "beta", "伽马"],
                             "score": [0.25, None, 1.0]}), path)
    result = ingest_file(store, SPEC, path, text_field="content", id_field="key")
    assert (result.added, result.duplicates) == (3, 0)
    assert rows(store) == [("10", "alpha", {"score": 0.25}, 1), ("11", "beta", {"score": None}, 2),
                           ("12", "伽马", {"score": 1.0}, 3)]


def test_parquet_spanning_several_batches_keeps_row_numbers(store, tmp_path):
    path = tmp_path / "in.parquet"
    count = BATCH * 2 + 5
    pq.write_table(pa.table({"text": [f"row {n}" for n in range(1, count + 1)]}), path, row_group_size=700)
    assert ingest_file(store, SPEC, path).added == count
    last = list(store.iter_items())[-1]
    assert (last.text, last.source_line) == (f"row {count}", count)


def test_parquet_with_a_date_column(store, tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "day": [datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)]}),
                   path)
    assert ingest_file(store, SPEC, path).added == 2
    assert [fields for _, _, fields, _ in rows(store)] == [{"day": "2024-01-01"}, {"day": "2024-01-02"}]


def test_format_can_be_named_for_any_suffix(store, tmp_path):
    path = write(tmp_path / "data.txt", "text,lang\nhi,en\n")
    assert ingest_file(store, SPEC, path, fmt="csv").added == 1
    assert rows(store)[0][1:] == ("hi", {"lang": "en"}, 2)


def test_unknown_format_name(store, tmp_path):
    path = write(tmp_path / "data.txt", "text\nhi\n")
    with pytest.raises(InputError) as info:
        ingest_file(store, SPEC, path, fmt="xml")
    assert str(info.value) == f"{path}: unknown format 'xml'; use one of jsonl, csv, tsv, parquet"


# -- ids, duplicates, encodings ----------------------------------------------------------

def test_derived_ids_are_stable_across_runs_and_stores(tmp_path):
    path = write(tmp_path / "in.jsonl", jsonl({"text": "same", "lang": "en"}, {"text": "same", "lang": "fr"},
                                              {"text": "other"}))
    seen = []
    for name in ("a.db", "b.db"):
        store = Store.open(tmp_path / name)
        try:
            ingest_file(store, SPEC, path)
            seen.append([item.id for item in store.iter_items()])
        finally:
            store.close()
    expected = [content_hash("same", {"lang": "en"})[:16], content_hash("same", {"lang": "fr"})[:16],
                content_hash("other", {})[:16]]
    assert seen == [expected, expected]
    assert len(set(expected)) == 3


def test_ingesting_the_same_file_twice_adds_nothing_the_second_time(store, tmp_path):
    path = write(tmp_path / "in.jsonl", jsonl(*({"text": f"item {n}"} for n in range(5))))
    first = ingest_file(store, SPEC, path)
    second = ingest_file(store, SPEC, path)
    assert (first.added, first.duplicates) == (5, 0)
    assert (second.added, second.duplicates) == (0, 5)
    assert store.count_items() == 5


def test_same_content_twice_in_one_file_counts_a_duplicate(store, tmp_path):
    path = write(tmp_path / "in.jsonl", jsonl({"id": "x", "text": "a"}, {"id": "y", "text": "b"},
                                              {"id": "x", "text": "a"}))
    result = ingest_file(store, SPEC, path, id_field="id")
    assert (result.added, result.duplicates) == (2, 1)
    assert rows(store) == [("x", "a", {}, 1), ("y", "b", {}, 2)]


def test_utf8_bom_in_jsonl(store, tmp_path):
    path = write(tmp_path / "in.jsonl", b"\xef\xbb\xbf" + jsonl({"id": "b1", "text": "bom"}).encode())
    assert ingest_file(store, SPEC, path, id_field="id").added == 1
    assert rows(store) == [("b1", "bom", {}, 1)]


def test_utf8_bom_in_csv_header(store, tmp_path):
    path = write(tmp_path / "in.csv", b"\xef\xbb\xbfid,text\nb1,bom\n")
    assert ingest_file(store, SPEC, path, id_field="id").added == 1
    assert rows(store) == [("b1", "bom", {}, 2)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_cjk_text_round_trips(store, tmp_path, suffix):
    texts = ["帮我订一张明天从北京飞上海的机票", "東京タワーは何時まで？", "한국어 문장 🙂"]
    path = tmp_path / f"in{suffix}"
    if suffix == ".jsonl":
        write(path, jsonl(*({"text": t, "城市": "北京"} for t in texts)))
    elif suffix == ".csv":
        write(path, "text,城市\n" + "".join(f"{t},北京\n" for t in texts))
    else:
        pq.write_table(pa.table({"text": texts, "城市": ["北京"] * 3}), path)
    assert ingest_file(store, SPEC, path).added == 3
    assert [(text, fields) for _, text, fields, _ in rows(store)] == [(t, {"城市": "北京"}) for t in texts]
    raw = store.db.execute("SELECT text, fields FROM items ORDER BY seq").fetchall()
    assert [tuple(r) for r in raw] == [(t, '{"城市":"北京"}') for t in texts]


# -- bad input: file:line, and nothing of the file written ----------------------------------

GOOD = jsonl({"id": "g1", "text": "good one"}, {"id": "g2", "text": "good two"})  # lines 1-2 of a bad file
BAD_UTF8_LINE = b'{"id": "g3", "text": "caf\xe9"}\n'


def _bad_cases() -> list:
    utf8_column = BAD_UTF8_LINE.index(b"\xe9") + 1
    return [
        pytest.param("in.jsonl", GOOD + '{"id": "g3", "text": \n', {}, 3, None, "invalid JSON (", id="broken-json"),
        pytest.param("in.jsonl", GOOD + '["g3", "text"]\n', {}, 3, None, "a line must be a JSON object",
                     id="json-array"),
        pytest.param("in.jsonl", GOOD.encode() + BAD_UTF8_LINE, {}, 3, None,
                     f"not valid UTF-8 (byte 0xe9 at column {utf8_column})", id="jsonl-bad-utf8"),
        pytest.param("in.csv", b"id,text\ng1,good one\ng2,good two\ng3,caf\xe9\n", {}, 4, None,
                     "not valid UTF-8 (byte 0xe9 at column 7)", id="csv-bad-utf8"),
        pytest.param("in.jsonl", GOOD + '{"id": "g3", "body": "x"}\n', {}, 3, "text", "field 'text': missing",
                     id="missing-text"),
        pytest.param("in.jsonl", GOOD + '{"id": "g3", "text": "  \\t "}\n', {}, 3, "text", "field 'text': is empty",
                     id="empty-text"),
        pytest.param("in.jsonl", GOOD + '{"id": "g3", "text": 5}\n', {}, 3, "text",
                     "field 'text': must be a string, got int", id="int-text"),
        pytest.param("in.jsonl", GOOD + '{"id": "g3", "text": null}\n', {}, 3, "text",
                     "field 'text': must be a string, got NoneType", id="null-text"),
        pytest.param("in.jsonl", GOOD + '{"text": "no id"}\n', {}, 3, "id", "field 'id': missing", id="missing-id"),
        pytest.param("in.jsonl", GOOD + '{"id": "", "text": "empty id"}\n', {}, 3, "id", "field 'id': missing",
                     id="empty-id"),
        pytest.param("in.jsonl", GOOD + '{"id": null, "text": "null id"}\n', {}, 3, "id", "field 'id': missing",
                     id="null-id"),
        pytest.param("in.jsonl", GOOD + '{"id": [1], "text": "list id"}\n', {}, 3, "id",
                     "field 'id': must be a string or an integer", id="list-id"),
        pytest.param("in.csv", "id,text\ng1,good one\ng2,good two\ng3,three,extra\n", {}, 4, None,
                     "has 3 columns, the header has 2", id="csv-extra-column"),
        pytest.param("in.tsv", "id\ttext\ng1\tgood one\ng2\tgood two\ng3\n", {}, 4, None,
                     "has 1 columns, the header has 2", id="tsv-missing-column"),
        pytest.param("in.jsonl", GOOD + '{"id": "old", "text": "different content"}\n', {}, 3, "id",
                     "field 'id': id 'old' already exists with different content", id="collision-with-earlier-file"),
        pytest.param("in.jsonl", GOOD + '{"id": "g1", "text": "not good one"}\n', {}, 3, "id",
                     "field 'id': id 'g1' already exists with different content", id="collision-in-same-file"),
    ]


@pytest.mark.parametrize("name, content, kwargs, line, field, message", _bad_cases())
def test_bad_record_names_file_line_and_field_and_writes_nothing(store, tmp_path, name, content, kwargs, line,
                                                                   field, message):
    earlier = write(tmp_path / "earlier.jsonl", jsonl({"id": "old", "text": "original"}))
    ingest_file(store, SPEC, earlier, id_field="id")
    before = rows(store)
    path = write(tmp_path / name, content)
    with pytest.raises(InputError) as info:
        ingest_file(store, SPEC, path, id_field="id", **kwargs)
    error = info.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    assert str(error).startswith(f"{path}:{line}: {message}")
    assert rows(store) == before
    assert store.count_items() == 1
    assert not ids(store) & {"g1", "g2"}


def test_collision_with_an_earlier_file_is_an_id_collision_error(store, tmp_path):
    ingest_file(store, SPEC, write(tmp_path / "a.jsonl", jsonl({"id": "k", "text": "one"})), id_field="id")
    path = write(tmp_path / "b.jsonl", jsonl({"id": "k", "text": "two"}))
    with pytest.raises(IdCollisionError):
        ingest_file(store, SPEC, path, id_field="id")
    assert rows(store) == [("k", "one", {}, 1)]


def test_bad_record_after_several_batches_writes_nothing(store, tmp_path):
    good = [{"text": f"line {n}"} for n in range(BATCH * 2 + 10)]
    path = write(tmp_path / "in.jsonl", jsonl(*good) + "{oops\n")
    with pytest.raises(InputError) as info:
        ingest_file(store, SPEC, path)
    assert info.value.line == len(good) + 1
    assert store.count_items() == 0


def test_unknown_suffix(store, tmp_path):
    path = write(tmp_path / "data.xml", "<items/>")
    with pytest.raises(InputError) as info:
        ingest_file(store, SPEC, path)
    assert info.value.line is None
    assert str(info.value) == f"{path}: cannot tell the format from '.xml'; pass --format"
    assert store.count_items() == 0


def test_missing_file(store, tmp_path):
    path = tmp_path / "absent.jsonl"
    with pytest.raises(InputError) as info:
        ingest_file(store, SPEC, path)
    assert str(info.value) == f"{path}: file not found"


def test_directory_is_not_a_file(store, tmp_path):
    path = tmp_path / "dir.jsonl"
    path.mkdir()
    with pytest.raises(InputError, match="file not found"):
        ingest_file(store, SPEC, path)


# -- skip_bad --------------------------------------------------------------------------

def test_skip_bad_adds_good_lines_and_writes_one_reject_per_bad_record(store, tmp_path):
    ingest_file(store, SPEC, write(tmp_path / "earlier.jsonl", jsonl({"id": "old", "text": "original"})), id_field="id")
    path = write(tmp_path / "in.jsonl",
                 jsonl({"id": "a", "text": "alpha"}) +                      # 1 good
                 "{broken\n" +                                             # 2 invalid JSON
                 jsonl({"id": "b", "text": "beta"},                         # 3 good
                       {"id": "c"},                                         # 4 missing text
                       {"id": "d", "text": ""}) +                           # 5 empty text
                 "[1, 2]\n" +                                              # 6 not an object
                 jsonl({"id": "old", "text": "changed"},                    # 7 collides with earlier file
                       {"id": "e", "text": "epsilon"},                      # 8 good
                       {"id": "a", "text": "alpha"}))                       # 9 duplicate of line 1
    rejects = tmp_path / "rejects.jsonl"
    result = ingest_file(store, SPEC, path, id_field="id", skip_bad=rejects)
    assert (result.added, result.duplicates, result.rejected) == (3, 1, 5)
    assert result.rejects_path == str(rejects)
    assert [item_id for item_id, *_ in rows(store)] == ["old", "a", "b", "e"]
    assert rows(store)[0] == ("old", "original", {}, 1)
    records = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 5
    summary = sorted((r["file"], r["line"], r["field"], r["error"]) for r in records)
    assert [s[:3] for s in summary] == [(str(path), 2, None), (str(path), 4, "text"), (str(path), 5, "text"),
                                        (str(path), 6, None), (str(path), 7, "id")]
    assert summary[0][3].startswith("invalid JSON (")
    assert [s[3] for s in summary[1:]] == ["missing", "is empty", "a line must be a JSON object",
                                           "id 'old' already exists with different content"]
    by_line = {r["line"]: r for r in records}
    assert by_line[2]["raw"] == "{broken\n"
    assert by_line[7]["raw"] == "changed"
    assert not (tmp_path / "rejects.jsonl.tmp").exists()


def test_skip_bad_with_invalid_utf8_in_csv(store, tmp_path):
    path = write(tmp_path / "in.csv", b"id,text\nx1,fine\nx2,caf\xe9\nx3,also fine\n")
    rejects = tmp_path / "rejects.jsonl"
    result = ingest_file(store, SPEC, path, id_field="id", skip_bad=rejects)
    assert (result.added, result.duplicates, result.rejected) == (2, 0, 1)
    assert rows(store) == [("x1", "fine", {}, 2), ("x3", "also fine", {}, 4)]
    [record] = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert (record["file"], record["line"], record["field"], record["error"]) == (
        str(path), 3, None, "not valid UTF-8 (byte 0xe9 at column 7)")


def test_skip_bad_with_nothing_bad_leaves_an_empty_rejects_file(store, tmp_path):
    path = write(tmp_path / "in.jsonl", jsonl({"text": "fine"}))
    rejects = tmp_path / "rejects.jsonl"
    result = ingest_file(store, SPEC, path, skip_bad=rejects)
    assert (result.added, result.rejected, result.rejects_path) == (1, 0, str(rejects))
    assert rejects.read_text(encoding="utf-8") == ""


def test_skip_bad_rejects_a_collision_within_the_same_file(store, tmp_path):
    path = write(tmp_path / "in.jsonl", jsonl({"id": "a", "text": "one"}, {"id": "b", "text": "two"},
                                              {"id": "a", "text": "changed"}))
    rejects = tmp_path / "rejects.jsonl"
    result = ingest_file(store, SPEC, path, id_field="id", skip_bad=rejects)
    assert (result.added, result.duplicates, result.rejected) == (2, 0, 1)
    [record] = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert (record["line"], record["field"]) == (3, "id")


def test_skip_bad_rejects_a_collision_with_an_earlier_batch_of_the_same_file(store, tmp_path):
    records = [{"id": f"n{n}", "text": f"text {n}"} for n in range(BATCH + 5)]
    records.append({"id": "n0", "text": "changed"})
    path = write(tmp_path / "in.jsonl", jsonl(*records))
    rejects = tmp_path / "rejects.jsonl"
    result = ingest_file(store, SPEC, path, id_field="id", skip_bad=rejects)
    assert (result.added, result.duplicates, result.rejected) == (BATCH + 5, 0, 1)
    [record] = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert (record["line"], record["field"], record["error"]) == (
        BATCH + 6, "id", "id 'n0' already exists with different content")
    assert store.first_item().text == "text 0"


@pytest.mark.parametrize("name, content", [
    pytest.param("in.csv", b"id,te\xffxt\ng1,good\n", id="csv-header-not-utf8"),
    pytest.param("in.parquet", b"this is not parquet", id="broken-parquet"),
])
def test_skip_bad_leaves_no_rejects_file_when_ingest_fails_otherwise(store, tmp_path, name, content):
    path = write(tmp_path / name, content)
    rejects = tmp_path / "rejects.jsonl"
    with pytest.raises(InputError) as info:
        ingest_file(store, SPEC, path, id_field="id", skip_bad=rejects)
    assert info.value.path == str(path)
    assert not rejects.exists()
    assert not (tmp_path / "rejects.jsonl.tmp").exists()
    assert store.count_items() == 0


def test_skip_bad_leaves_no_rejects_file_for_an_unknown_suffix(store, tmp_path):
    path = write(tmp_path / "data.xml", "<x/>")
    rejects = tmp_path / "rejects.jsonl"
    with pytest.raises(InputError):
        ingest_file(store, SPEC, path, skip_bad=rejects)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rejects")) == []


# -- streaming ------------------------------------------------------------------------

def test_large_jsonl_streams_in(store, tmp_path):
    count = 200_000
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            handle.write(f'{{"id": "r{n}", "text": "record number {n}"}}\n')
    started = time.monotonic()
    result = ingest_file(store, SPEC, path, id_field="id")
    elapsed = time.monotonic() - started
    assert (result.added, result.duplicates) == (count, 0)
    assert store.count_items() == count
    assert elapsed < 20, f"ingest of {count} lines took {elapsed:.1f} s"
