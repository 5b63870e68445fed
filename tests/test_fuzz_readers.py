"""Fuzzing the ingest readers: whatever the bytes, a file is ingested or refused with an InputError naming it.

The contract checked for every input: ``read_records`` and ``ingest_file`` either succeed or raise
``InputError`` whose message starts with ``path:`` (``path:LINE:`` where the line is known), and a failed
ingest leaves no item of that file in the store (nor a rejects file). Crashes found so far are pinned by
regression tests at the end (each one a crash the fuzzers found and ingest.py now refuses cleanly).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelloop.errors import InputError
from labelloop.ingest import IngestResult, ingest_file
from labelloop.readers import read_records
from labelloop.spec import parse_spec, template_text
from labelloop.store import Store

SPEC = parse_spec(template_text("sentiment"))
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = (".jsonl", ".csv", ".tsv")
TEN_MB = 10 * 1024 * 1024
SEED_TEXT = "an item from another file"

# -- the contract ------------------------------------------------------------------------------


def _assert_names_place(exc: InputError, path: Path, data: bytes) -> None:
    prefix = f"{path}: " if exc.line is None else f"{path}:{exc.line}: "
    assert str(exc).startswith(prefix), str(exc)
    assert exc.line is None or 1 <= exc.line <= data.count(b"\n") + 1, str(exc)


def check_records(path: Path, data: bytes) -> None:
    """``read_records`` yields dicts or records with an InputError at their line, or raises an InputError."""
    try:
        records = list(read_records(path))
    except InputError as exc:
        _assert_names_place(exc, path, data)
        return
    assert [r.line for r in records] == sorted(r.line for r in records)
    for record in records:
        assert 1 <= record.line <= data.count(b"\n") + 1
        if record.error is None:
            assert isinstance(record.data, dict) and all(isinstance(k, str) for k in record.data)
        else:
            assert record.data is None and record.error.line == record.line
            _assert_names_place(record.error, path, data)


def check_ingest(path: Path, data: bytes, **options) -> IngestResult | InputError:
    """Write ``data`` to ``path``, ingest it into a store holding one other item, and check the contract."""
    path.write_bytes(data)
    store = Store.open(path.parent / "s.db")
    try:
        seed = path.parent / "seed.jsonl"
        seed.write_text(json.dumps({"text": SEED_TEXT}) + "\n")
        ingest_file(store, SPEC, seed)
        try:
            result = ingest_file(store, SPEC, path, **options)
        except InputError as exc:
            _assert_names_place(exc, path, data)
            assert [item.source_file for item in store.iter_items()] == [str(seed)]
            assert not list(path.parent.glob("rejects*"))
            return exc
        assert store.count_items() == 1 + result.added
        if options.get("skip_bad"):
            rejects = Path(result.rejects_path or "").read_text(encoding="utf-8").split("\n")[:-1]  # not at U+0085
            assert len(rejects) == result.rejected
            assert all(json.loads(line)["file"] == str(path) for line in rejects)
        return result
    finally:
        store.close()


@contextmanager
def fresh_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def fuzz(data: bytes, suffix: str, options: dict | None = None) -> None:
    """Check ingest and read_records on ``data``; a ``skip_bad`` name is put in the example's directory."""
    with fresh_dir() as tmp:
        path = tmp / f"in{suffix}"
        options = dict(options or {})
        if "skip_bad" in options:
            options["skip_bad"] = tmp / options["skip_bad"]
        check_ingest(path, data, **options)
        check_records(path, data)


# -- strategies --------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    b'{"text": "', b'{"id": 1, "text": "', b'"}', b'", "id": "a"}', b"\n", b"\r\n", b"\r", b",", b"\t", b'"', b'""',
    b"\xef\xbb\xbf", b"\x00", b"\xff", b"\xc3", b"\xe4\xb8", b"\xe4\xb8\xad", b"\xed\xa0\x80", b"[", b"]", b"{", b"}",
    b":", b"null", b"1e999", b"NaN", b"-0", b"9" * 30, b"text", b"id", b"hello", b" ", b"\\", b"\\n", b"\\u0000",
    b"\\u00e9", b"\\ud83d\\ude00", b"\xf0\x9f\x98\x80", b"\x1b", b"\x0c", b"\xc2\x85", b"\xe2\x80\xa8",
])
FRAGMENTED = st.lists(FRAGMENTS, max_size=200).map(b"".join)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
JSON_RECORDS = st.dictionaries(st.sampled_from(["text", "id", "meta", ""]) | st.text(max_size=6), JSON_VALUES,
                               max_size=5)
OPTIONS = st.fixed_dictionaries({}, optional={"id_field": st.sampled_from(["id", "text", "missing"]),
                                              "skip_bad": st.just("rejects.jsonl")})


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random bytes written over or inserted."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(buffer)))
        buffer[at:at + draw(st.integers(0, 1))] = draw(st.binary(min_size=1, max_size=3))
    return bytes(buffer)


def jsonl_bytes(records: list[dict], ascii_only: bool) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in records).encode("utf-8")


def delimited_bytes(rows: list[list[str]], delimiter: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode("utf-8")


# -- fuzzers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes(suffix: str, data: bytes) -> None:
    fuzz(data, suffix)


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=FRAGMENTED, options=OPTIONS)
def test_fragments_of_records(suffix: str, data: bytes, options: dict) -> None:
    fuzz(data, suffix, options)


@FUZZ
@given(records=st.lists(JSON_RECORDS, max_size=8), ascii_only=st.booleans(), options=OPTIONS, noise=st.data())
def test_jsonl_records_with_noise(records: list[dict], ascii_only: bool, options: dict, noise: st.DataObject) -> None:
    data = noise.draw(corrupted(jsonl_bytes(records, ascii_only)))
    fuzz(data, ".jsonl", options)


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
@FUZZ
@given(header=st.lists(st.sampled_from(["text", "id", "meta"]) | st.text(max_size=5), min_size=1, max_size=4),
       rows=st.lists(st.lists(st.text(max_size=12), max_size=5), max_size=6), options=OPTIONS, noise=st.data())
def test_delimited_rows_with_noise(suffix: str, delimiter: str, header: list[str], rows: list[list[str]],
                                   options: dict, noise: st.DataObject) -> None:
    data = noise.draw(corrupted(delimited_bytes([header, *rows], delimiter)))
    fuzz(data, suffix, options)


# -- single inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, head, tail", [
    (".jsonl", b'{"text": "', b'"}\n'),
    (".csv", b"id,text\n1,", b"\n"),
    (".tsv", b"id\ttext\n1\t", b""),
])
def test_ten_megabyte_line_is_ingested(tmp_path: Path, suffix: str, head: bytes, tail: bytes) -> None:
    result = check_ingest(tmp_path / f"big{suffix}", head + b"x" * TEN_MB + tail)
    assert isinstance(result, IngestResult) and result.added == 1
    store = Store.open(tmp_path / "s.db")
    assert max(len(item.text) for item in store.iter_items()) == TEN_MB
    store.close()


@pytest.mark.parametrize("suffix, head, tail, where", [
    (".jsonl", b'{"text": "', b"\n", ":1: invalid JSON"),
    (".csv", b"text\n", b"\xff\n", f":2: not valid UTF-8 (byte 0xff at column {TEN_MB + 1})"),
])
def test_ten_megabyte_bad_line_is_refused_at_its_line(tmp_path: Path, suffix: str, head: bytes, tail: bytes,
                                                      where: str) -> None:
    path = tmp_path / f"big{suffix}"
    error = check_ingest(path, head + b"x" * TEN_MB + tail)
    assert isinstance(error, InputError) and str(error).startswith(f"{path}{where}")


@pytest.mark.parametrize("suffix, data", [
    (".jsonl", b'\xef\xbb\xbf{"text": "a"}\n'),
    (".csv", b"\xef\xbb\xbftext,id\na,1\n"),
    (".tsv", b"\xef\xbb\xbftext\tid\na\t1\n"),
])
def test_bom_at_start_is_skipped(tmp_path: Path, suffix: str, data: bytes) -> None:
    result = check_ingest(tmp_path / f"bom{suffix}", data)
    assert isinstance(result, IngestResult) and result.added == 1


def test_bom_after_the_start_is_an_error_at_its_line(tmp_path: Path) -> None:
    error = check_ingest(tmp_path / "bom.jsonl", b'{"text": "a"}\n\xef\xbb\xbf{"text": "b"}\n')
    assert isinstance(error, InputError) and error.line == 2


@pytest.mark.parametrize("suffix, data, outcome", [
    (".jsonl", b'{"text": "a\x00b"}\n', ":1: invalid JSON"),  # a raw NUL is a control character in JSON
    (".jsonl", b'{"text": "a\\u0000b"}\n', "a\x00b"),
    (".csv", b"text\na\x00b\n", "a\x00b"),
    (".tsv", b"te\x00xt\nab\n", ":2: field 'text': missing"),
])
def test_nul_bytes(tmp_path: Path, suffix: str, data: bytes, outcome: str) -> None:
    path = tmp_path / f"nul{suffix}"
    result = check_ingest(path, data)
    if isinstance(result, InputError):
        assert str(result).startswith(f"{path}{outcome}")
    else:
        store = Store.open(tmp_path / "s.db")
        assert outcome in [item.text for item in store.iter_items()]
        store.close()


@pytest.mark.parametrize("suffix, data, message", [
    (".jsonl", b'{"text": "a"}\n{"text": "a\xffb"}\n', ":2: not valid UTF-8 (byte 0xff at column 12)"),
    (".jsonl", b'{"text": "a"}\n{"text": "\xe4\xb8', ":2: not valid UTF-8 (byte 0xe4 at column 11)"),
    (".csv", b"te\xc3xt\nab\n", ":1: not valid UTF-8 (byte 0xc3 at column 3)"),
    (".tsv", b'text\n"a\n\xed\xa0\x80"\nb\n', ":2: not valid UTF-8 (byte 0xed at column 1)"),
])
def test_broken_utf8_is_refused_at_its_line(tmp_path: Path, suffix: str, data: bytes, message: str) -> None:
    path = tmp_path / f"broken{suffix}"
    error = check_ingest(path, data)
    assert isinstance(error, InputError) and str(error) == f"{path}{message}"


def test_a_bad_line_leaves_nothing_of_its_file(tmp_path: Path) -> None:
    good = b"".join(b'{"text": "item %d"}\n' % i for i in range(2500))  # more than two insert batches
    error = check_ingest(tmp_path / "late.jsonl", good + b'{"text": 3}\n')
    assert isinstance(error, InputError) and error.line == 2501 and error.field == "text"


@pytest.mark.parametrize("skip_bad", [None, "rejects.jsonl"])
def test_deeply_nested_json_line_is_refused_at_its_line(tmp_path: Path, skip_bad: str | None) -> None:
    data = b'{"text": "a"}\n' + b"[" * 100_000 + b"\n"
    outcome = check_ingest(tmp_path / "deep.jsonl", data, skip_bad=skip_bad and tmp_path / skip_bad)
    if skip_bad:
        assert isinstance(outcome, IngestResult) and (outcome.added, outcome.rejected) == (1, 1)
    else:
        assert isinstance(outcome, InputError) and outcome.line == 2


# -- crashes the fuzzers found, now refused with an InputError ------------------------------------


def test_json_nested_just_under_the_decoder_limit(tmp_path: Path) -> None:
    limit = next(depth for depth in range(1, 100_000) if not _json_loads_reads(depth))
    for depth in range(limit - 60, limit + 1):
        line = '{"text": "a", "x": ' + "[" * depth + "]" * depth + "}\n"
        with fresh_dir() as tmp:
            check_ingest(tmp / "deep.jsonl", line.encode())


def _json_loads_reads(depth: int) -> bool:
    try:
        json.loads("[" * depth + "]" * depth)
    except RecursionError:
        return False
    return True


@pytest.mark.parametrize("line", [
    b'{"text": "a\\ud800b"}', b'{"text": "a", "\\udfff": 1}', b'{"text": "a", "m": "\\udc00"}',
])
def test_lone_surrogate_escape(tmp_path: Path, line: bytes) -> None:
    check_ingest(tmp_path / "surrogate.jsonl", line + b"\n")


@pytest.mark.parametrize("suffix, data", [
    (".csv", b"text\na\rb\n"),
    (".tsv", b"text\tx\na\rb\tc\n"),
    (".csv", b"text\rhello\r"),  # classic Mac line endings
])
def test_lone_carriage_return_in_delimited_files(tmp_path: Path, suffix: str, data: bytes) -> None:
    check_ingest(tmp_path / f"cr{suffix}", data)


def _parquet_bytes(tmp_path: Path) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["hello world"]}), tmp_path / "g.parquet", compression="none",
                   write_statistics=False)
    return (tmp_path / "g.parquet").read_bytes()


def test_parquet_with_a_corrupt_page(tmp_path: Path) -> None:
    good = _parquet_bytes(tmp_path)
    check_ingest(tmp_path / "page.parquet", good[:4] + b"\xff" * 8 + good[12:])


def test_parquet_with_invalid_utf8(tmp_path: Path) -> None:
    good = _parquet_bytes(tmp_path)
    check_ingest(tmp_path / "utf8.parquet", good.replace(b"hello world", b"\xffello world"))
