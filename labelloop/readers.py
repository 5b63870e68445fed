"""Readers of input files: JSONL, CSV/TSV and Parquet, streamed one record at a time.

Each reader yields a :class:`Record` per record with its 1-based line (or row); a record that cannot
be read carries the error naming file, line and what is wrong, so the caller decides whether it stops
the file (ingest, annotation import) or goes to a rejects file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ._extras import require
from .errors import InputError

FORMATS = ("jsonl", "csv", "tsv", "parquet")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BATCH = 1000  # Parquet rows read at a time


@dataclass(frozen=True)
class Record:
    """One record of an input file: its 1-based line (or row), its data, the raw text, or what is wrong."""

    line: int
    data: dict[str, Any] | None
    raw: str
    error: InputError | None = None


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The reader to use: the one named, or the one the file's suffix implies."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(str(path), None, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(str(path), None, f"cannot tell the format from '{suffix}'; pass --format")
    return _SUFFIXES[suffix]


def _decoded_lines(path: Path, handle: BinaryIO | None = None) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None when not UTF-8, error text) for each physical line (of ``handle`` when given:
    a stream opened elsewhere, e.g. on a remote file system)."""
    with path.open("rb") if handle is None else handle as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError as exc:
                yield number, None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def _read_jsonl(path: Path, handle: BinaryIO | None = None, name: str | None = None) -> Iterator[Record]:
    """The records of a JSONL file (or of ``handle``, a stream ``name`` names in errors: a URL stays whole)."""
    name = name or str(path)
    for number, text, problem in _decoded_lines(path, handle):
        if text is None:
            yield Record(number, None, "", InputError(name, number, problem))
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield Record(number, None, text, InputError(name, number, f"invalid JSON ({exc})"))
            continue
        except RecursionError:
            yield Record(number, None, text[:200], InputError(name, number, "JSON nested too deeply"))
            continue
        if not isinstance(data, dict):
            yield Record(number, None, text, InputError(name, number, "a line must be a JSON object"))
            continue
        unstorable = _unstorable(data)
        yield Record(
            number,
            None if unstorable else data,
            text[:200] if unstorable else text,
            InputError(name, number, unstorable) if unstorable else None,
        )


MAX_DEPTH = 100  # JSON nesting a record may have: deeper ones would overflow the encoder later


def _unstorable(data: dict[str, Any]) -> str | None:
    """Why a parsed record cannot be stored as UTF-8 JSON (nesting too deep, lone surrogate escapes), if so."""
    if _depth(data) > MAX_DEPTH:
        return f"JSON nested more than {MAX_DEPTH} levels deep"
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate escape (\\u{ord(exc.object[exc.start]):04x}), which is not text"
    return None


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _read_delimited(path: Path, delimiter: str) -> Iterator[Record]:
    csv.field_size_limit(sys.maxsize)
    problems: dict[int, str] = {}

    def text_lines() -> Iterator[str]:
        for number, text, problem in _decoded_lines(path):
            if text is None:
                problems[number] = problem
                text = "\n"
            yield text

    reader = csv.reader(text_lines(), delimiter=delimiter)
    header: list[str] | None = None
    start = 1

    def current_line() -> int:  # where the reader has got to, read when a malformed line stops it
        return start

    for row in _csv_rows(reader, path, current_line):
        line, start = start, reader.line_num + 1
        problem = next((problems[n] for n in range(line, start) if n in problems), None)
        if header is None:
            if problem:
                raise InputError(str(path), line, problem)
            header = row
            continue
        raw = delimiter.join(row)
        if problem:
            yield Record(line, None, raw, InputError(str(path), line, problem))
        elif not any(cell.strip() for cell in row):
            continue
        elif len(row) != len(header):
            yield Record(
                line, None, raw, InputError(str(path), line, f"has {len(row)} columns, the header has {len(header)}")
            )
        else:
            yield Record(line, dict(zip(header, row)), raw)


def _csv_rows(reader: Any, path: Path, line: Callable[[], int]) -> Iterator[list[str]]:
    """The reader's rows; a malformed line (a bare carriage return, say) is an error at its line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise InputError(str(path), line(), f"not readable as CSV/TSV ({exc})") from None


def _read_csv(path: Path) -> Iterator[Record]:
    return _read_delimited(path, ",")


def _read_tsv(path: Path) -> Iterator[Record]:
    return _read_delimited(path, "\t")


def _read_parquet(path: Path) -> Iterator[Record]:
    pq = require("pyarrow.parquet", "parquet", f"{path}: reading Parquet")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise InputError(str(path), None, f"not a readable Parquet file ({exc})") from None
    yield from parquet_records(str(path), lambda: parquet.iter_batches(batch_size=BATCH))


def parquet_records(name: str, batches: Callable[[], Iterable[Any]], row: int = 0) -> Iterator[Record]:
    """The records of Arrow record batches read from the Parquet file ``name`` (``batches`` starts the
    reading), numbered on from ``row``; an unreadable part raises naming file and row."""
    try:
        for batch in batches():
            for data in batch.to_pylist():
                row += 1
                raw = json.dumps(data, ensure_ascii=False, default=str)  # dates, decimals: as text
                yield Record(row, json.loads(raw), raw)
    except (OSError, ValueError) as exc:  # a corrupt page, invalid UTF-8 in a string column (pyarrow)
        raise InputError(name, row + 1, f"unreadable Parquet data ({' '.join(str(exc).split())})") from None


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "tsv": _read_tsv, "parquet": _read_parquet}


def read_records(path: Path, fmt: str | None = None) -> Iterator[Record]:
    """The records of a JSONL, CSV/TSV or Parquet file, each with its line (bad ones carry ``error``)."""
    return _READERS[detect_format(path, fmt)](path)


def read_jsonl_stream(name: str, handle: BinaryIO) -> Iterator[Record]:
    """The records of a JSONL stream opened elsewhere (a remote file system), ``name`` naming it in errors."""
    return _read_jsonl(Path(name), handle, name)
