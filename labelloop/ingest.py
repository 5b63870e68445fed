"""Ingest: stream JSONL, CSV/TSV or Parquet records into the store, all of a file or nothing.

A bad record stops the file with ``file:line: what is wrong`` and nothing of that file is
written, unless ``skip_bad`` names a rejects file: then bad records go there with the reason.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .store import Item, Store

FORMATS = ("jsonl", "csv", "tsv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
             ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
BATCH = 1000


@dataclass
class IngestResult:
    """What one ingest did."""

    path: str
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects_path: str | None = None
    filtered: dict[str, int] = field(default_factory=dict)  # left out by cleaning, by reason
    hygiene: dict[str, Any] | None = None  # what cleaning and PII masking did (labelloop.prepare)


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


def content_hash(text: str, fields: dict[str, Any]) -> str:
    """A stable hash of what a model sees of an item."""
    canonical = json.dumps({"text": text, "fields": fields}, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def ingest_file(store: Store, path: str | Path, *, text_field: str = "text", id_field: str | None = None,
                fmt: str | None = None, skip_bad: str | Path | None = None,
                prepare: Callable[[str], Any] | None = None) -> IngestResult:
    """Add the records of ``path`` to ``store`` as items, in one transaction. ``prepare`` (a
    :class:`~labelloop.prepare.Preparer`) cleans and masks each text, or names why it is filtered out."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), None, "file not found")
    reader = _READERS[detect_format(path, fmt)]
    result = IngestResult(str(path))
    rejects = _RejectsWriter(Path(skip_bad)) if skip_bad else None
    try:
        with store.transaction():
            batch: list[Item] = []
            for record in reader(path):
                item = _to_item(record, str(path), text_field, id_field, prepare)
                if isinstance(item, InputError):
                    _reject(rejects, item, record.raw, result)
                    continue
                if isinstance(item, str):  # filtered out by cleaning (too short, another language, ...)
                    result.filtered[item] = result.filtered.get(item, 0) + 1
                    continue
                batch.append(item)
                if len(batch) >= BATCH:
                    _add_batch(store, batch, rejects, result)
                    batch = []
            _add_batch(store, batch, rejects, result)
    except BaseException:
        if rejects:
            rejects.discard()
        raise
    if rejects:
        result.rejects_path = rejects.commit()
    return result


def _add_batch(store: Store, batch: list[Item], rejects: "_RejectsWriter | None", result: IngestResult) -> None:
    if rejects:
        bad = {id(item): reason for item, reason in store.check_collisions(batch)}
        first_seen: dict[str, str] = {}
        for item in batch:
            known = first_seen.setdefault(item.id, item.content_hash)
            if known != item.content_hash and id(item) not in bad:
                bad[id(item)] = f"id {item.id!r} appears earlier in this file with different content"
        for item in batch:
            if id(item) in bad:
                error = InputError(item.source_file or "?", item.source_line, bad[id(item)], field="id")
                _reject(rejects, error, item.text, result)
        batch = [item for item in batch if id(item) not in bad]
    added, repeats = store.add_items(batch)
    result.added += added
    result.duplicates += len(repeats)


def _reject(rejects: "_RejectsWriter | None", error: InputError, raw: str, result: IngestResult) -> None:
    if rejects is None:
        raise error
    rejects.write(error, raw)
    result.rejected += 1


def _to_item(record: Record, source: str, text_field: str, id_field: str | None,
             prepare: Callable[[str], Any] | None = None) -> Item | InputError | str:
    if record.error is not None:
        return record.error
    data = record.data
    assert data is not None
    if text_field not in data:
        return InputError(source, record.line, "missing", field=text_field)
    text = data[text_field]
    if not isinstance(text, str):
        return InputError(source, record.line, f"must be a string, got {type(text).__name__}", field=text_field)
    if not text.strip():
        return InputError(source, record.line, "is empty", field=text_field)
    prepared = prepare(text) if prepare is not None else None
    if isinstance(prepared, str):
        return prepared
    text = prepared.text if prepared is not None else text
    fields = {k: v for k, v in data.items() if k not in (text_field, id_field)}
    digest = content_hash(text, fields)
    if id_field is None:
        item_id = digest[:16]
    elif data.get(id_field) in (None, ""):
        return InputError(source, record.line, "missing", field=id_field)
    elif not isinstance(data[id_field], (str, int)) or isinstance(data[id_field], bool):
        return InputError(source, record.line, "must be a string or an integer", field=id_field)
    else:
        item_id = str(data[id_field])
    return Item(item_id, text, fields, digest, source, record.line, prepared)


# -- readers: each yields one Record per record, with its 1-based line (or row) -------------

def _decoded_lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None when not UTF-8, error text) for each physical line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError as exc:
                yield number, None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def _read_jsonl(path: Path) -> Iterator[Record]:
    for number, text, problem in _decoded_lines(path):
        if text is None:
            yield Record(number, None, "", InputError(str(path), number, problem))
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield Record(number, None, text, InputError(str(path), number, f"invalid JSON ({exc})"))
            continue
        except RecursionError:
            yield Record(number, None, text[:200], InputError(str(path), number, "JSON nested too deeply"))
            continue
        if not isinstance(data, dict):
            yield Record(number, None, text, InputError(str(path), number, "a line must be a JSON object"))
            continue
        problem = _unstorable(data)
        yield Record(number, None if problem else data, text[:200] if problem else text,
                      InputError(str(path), number, problem) if problem else None)


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
    for row in _csv_rows(reader, path, lambda: start):
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
            yield Record(line, None, raw, InputError(
                str(path), line, f"has {len(row)} columns, the header has {len(header)}"))
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
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(str(path), None, "reading Parquet needs pyarrow: pip install 'labelloop[parquet]'") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise InputError(str(path), None, f"not a readable Parquet file ({exc})") from None
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=BATCH):
            for data in batch.to_pylist():
                row += 1
                raw = json.dumps(data, ensure_ascii=False, default=str)  # dates, decimals: as text
                yield Record(row, json.loads(raw), raw)
    except (OSError, ValueError) as exc:  # a corrupt page, invalid UTF-8 in a string column (pyarrow)
        raise InputError(str(path), row + 1, f"unreadable Parquet data ({exc})") from None


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "tsv": _read_tsv, "parquet": _read_parquet}


def read_records(path: Path, fmt: str | None = None) -> Iterator[Record]:
    """The records of a JSONL, CSV/TSV or Parquet file, each with its line (bad ones carry ``error``)."""
    return _READERS[detect_format(path, fmt)](path)


class _RejectsWriter:
    """Writes rejected records to a temporary file, moved into place only when ingest succeeds."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.handle = self.tmp.open("w", encoding="utf-8")

    def write(self, error: InputError, raw: str) -> None:
        record = {"file": error.path, "line": error.line, "field": error.field, "error": error.reason, "raw": raw}
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def commit(self) -> str:
        self.handle.close()
        os.replace(self.tmp, self.path)
        return str(self.path)

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)
