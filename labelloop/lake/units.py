"""Units of work for the Ray runner: the input files (local paths, globs, directories or pyarrow file-system URLs)
cut into slices of at most ``shard_rows`` rows, each labeled by one worker and written as one shard.

A Parquet file is cut along its row groups, a JSONL file is one unit, and in store mode each unit is a Parquet
file of pending items the driver wrote. A unit's id hashes where it reads from, so a rerun over the same inputs
finds the shards already written and skips those units. Every input file's columns are checked before any work
starts: a missing text or id column stops the run naming the file and the field.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._extras import require
from ..errors import InputError
from ..ingest import to_item
from ..readers import BATCH, Record, detect_format, parquet_records, read_jsonl_stream
from ..store import Item

LAKE_FORMATS = ("parquet", "jsonl")
ITEMS = "items"  # a store-mode unit: a Parquet file of items the driver wrote (id, text, fields, content_hash)


@dataclass(frozen=True)
class Unit:
    """A slice of one input file: rows ``start``..``stop`` of row group ``row_group`` (Parquet), or the whole
    file (JSONL, ``stop`` None); ``first_row`` is the file's row number before the slice (for error lines)."""

    path: str
    fmt: str
    row_group: int = 0
    start: int = 0
    stop: int | None = None
    first_row: int = 0

    @property
    def id(self) -> str:
        where = f"{self.path}|{self.fmt}|{self.row_group}|{self.start}|{self.stop}"
        return hashlib.sha256(where.encode()).hexdigest()[:24]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Unit:
        return cls(**json.loads(text))


def filesystem(location: str) -> tuple[Any, str]:
    """The pyarrow file system and path a local path or a URL (``s3://``, ``gs://``, ``file://``, …) names."""
    fs = require("pyarrow.fs", "ray", "the Ray runner")
    if "://" in location:
        try:
            return fs.FileSystem.from_uri(location)
        except Exception as exc:  # pyarrow raises several types for an unknown scheme or a bad URL
            raise InputError(location, None, f"not a readable location ({exc})") from None
    return fs.LocalFileSystem(), os.path.abspath(location)


def input_files(locations: list[str]) -> list[str]:
    """Every Parquet and JSONL file the locations name (a file, a directory, a glob; paths or URLs), sorted."""
    found: list[str] = []
    for location in locations:
        files = _expand(location)
        if not files:
            raise InputError(location, None, "no Parquet or JSONL file found")
        found.extend(files)
    return sorted(dict.fromkeys(found))


def _expand(location: str) -> list[str]:
    fs_module = require("pyarrow.fs", "ray", "the Ray runner")
    if "://" not in location:
        paths = sorted(glob.glob(location, recursive=True)) if glob.has_magic(location) else [location]
        found = []
        for path in paths:
            if os.path.isdir(path):
                found += [str(p) for p in sorted(Path(path).rglob("*")) if p.is_file() and _lake_format(p.name)]
            elif os.path.isfile(path):
                found.append(path)
        return [os.path.abspath(p) for p in found]
    fs, path = filesystem(location)
    scheme = location.split("://", 1)[0]
    pattern = path if glob.has_magic(path) else None
    base = path.split("*", 1)[0].rsplit("/", 1)[0] if pattern else path
    info = fs.get_file_info(base)
    if info.type == fs_module.FileType.File and pattern is None:
        return [location]
    if info.type != fs_module.FileType.Directory:
        return []
    listed = fs.get_file_info(fs_module.FileSelector(base, recursive=True))
    return [
        f"{scheme}://{entry.path}"
        for entry in listed
        if entry.type == fs_module.FileType.File
        and _lake_format(entry.path)
        and (pattern is None or fnmatch.fnmatch(entry.path, pattern))
    ]


def _lake_format(name: str) -> str | None:
    try:
        fmt = detect_format(Path(name))
    except InputError:
        return None
    return fmt if fmt in LAKE_FORMATS else None


def plan_units(files: list[str], text_field: str, id_field: str | None, shard_rows: int) -> list[Unit]:
    """The units of ``files``; every Parquet file's schema is checked for the text and id columns first."""
    units: list[Unit] = []
    for path in files:
        fmt = _lake_format(path)
        if fmt is None:
            raise InputError(path, None, f"the Ray runner reads {' and '.join(LAKE_FORMATS)} files")
        units += _parquet_units(path, text_field, id_field, shard_rows) if fmt == "parquet" else [Unit(path, fmt)]
    return units


def _parquet_units(path: str, text_field: str, id_field: str | None, shard_rows: int) -> list[Unit]:
    metadata = _parquet_file(path).metadata
    names = set(metadata.schema.names)
    for name in (text_field, id_field):
        if name is not None and name not in names:
            raise InputError(path, None, "no such column", field=name)
    units, row = [], 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        for start in range(0, rows, shard_rows):
            units.append(Unit(path, "parquet", group, start, min(rows, start + shard_rows), row + start))
        row += rows
    return units


def _parquet_file(path: str) -> Any:
    pq = require("pyarrow.parquet", "ray", "the Ray runner")
    fs, local = filesystem(path)
    try:
        return pq.ParquetFile(fs.open_input_file(local))
    except Exception as exc:  # pyarrow raises several types for a missing or broken file
        raise InputError(path, None, f"not a readable Parquet file ({' '.join(str(exc).split())})") from None


def unit_records(unit: Unit) -> Iterator[Record]:
    """The records of a unit, numbered by their row (line) in the file."""
    if unit.fmt == "jsonl":
        fs, local = filesystem(unit.path)
        yield from read_jsonl_stream(unit.path, io.BufferedReader(fs.open_input_stream(local)))
        return
    parquet = _parquet_file(unit.path)

    def batches() -> Iterator[Any]:
        if unit.fmt == ITEMS:
            yield from parquet.iter_batches(batch_size=BATCH)
            return
        table = parquet.read_row_group(unit.row_group).slice(unit.start, (unit.stop or 0) - unit.start)
        yield from table.to_batches(max_chunksize=BATCH)

    yield from parquet_records(unit.path, batches, unit.first_row)


def unit_items(
    unit: Unit, text_field: str, id_field: str | None, prepare: Callable[[str], Any] | None, filtered: dict[str, int]
) -> Iterator[Item]:
    """The items of a unit, made as ``ingest`` makes them (same ids, content hashes, cleaning and masking);
    a bad record stops the unit naming file, line and field; records cleaning filters out are counted."""
    if unit.fmt == ITEMS:
        for record in unit_records(unit):
            data = record.data or {}
            yield Item(data["id"], data["text"], json.loads(data["fields"]), data["content_hash"])
        return
    for record in unit_records(unit):
        item = to_item(record, unit.path, text_field, id_field, prepare)
        if isinstance(item, InputError):
            raise item
        if isinstance(item, str):
            filtered[item] = filtered.get(item, 0) + 1
            continue
        yield item
