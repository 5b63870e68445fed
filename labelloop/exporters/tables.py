"""Table formats: ``csv``, ``parquet`` (extra ``parquet``) and a Hugging Face ``hf`` dataset folder (extra ``hf``).

The output is flattened into one column per field (multilabel: plus one 0/1 ``label:<name>`` column per
label), then the provenance columns, what the spec adds and the kept item fields. Text columns hold
strings as they are and other values JSON-encoded; typed columns follow the field's one JSON type.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from ..spec import MultilabelSpec, TaskSpec
from ..store import Item
from . import Exporter, ExportOptions, Records, spec_columns

BASE_COLUMNS = {
    "id": "string",
    "text": "string",
    "source": "string",
    "method": "string",
    "decided_by": "string",
    "confidence": "float64",
    "model": "string",
    "prompt_version": "string",
}
ONE_HOT_PREFIX = "label:"
_DTYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}
_BATCH = 1000


def column_types(spec: TaskSpec, keep: Iterable[str]) -> dict[str, str]:
    """Each flat column's type: the answer's fields (schema order; multilabel: then one 0/1 column
    per label), provenance, what the spec adds, kept fields."""
    properties = spec.output_schema()["properties"]
    output = {name: _dtype(properties[name]) for name in spec.output_fields}
    one_hot = dict.fromkeys(_one_hot_columns(spec), "int64")
    return {
        **output,
        **one_hot,
        **BASE_COLUMNS,
        **dict.fromkeys(spec_columns(spec), "string"),
        **dict.fromkeys(keep, "string"),
    }


def output_columns(spec: TaskSpec) -> list[str]:
    """The columns a tabular export gives the answer."""
    return [*spec.output_fields, *_one_hot_columns(spec)]


def _one_hot_columns(spec: TaskSpec) -> list[str]:
    return [ONE_HOT_PREFIX + name for name in spec.label_names] if isinstance(spec, MultilabelSpec) else []


def _row_values(spec: TaskSpec) -> Callable[[tuple[dict[str, Any], Item]], dict[str, Any]]:
    """The values of one table row: the record, its answer's fields and (multilabel) the one-hot columns."""
    columns = _one_hot_columns(spec)

    def values(row: tuple[dict[str, Any], Item]) -> dict[str, Any]:
        record = row[0]
        one_hot = {c: int(c[len(ONE_HOT_PREFIX) :] in record["output"]["labels"]) for c in columns}
        return {**record, **record["output"], **one_hot}

    return values


def _dtype(prop: dict[str, Any]) -> str:
    """A column type for a schema property: its one scalar JSON type, else text."""
    types = prop.get("type", [])
    types = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
    return _DTYPES.get(types[0], "string") if len(types) == 1 else "string"


def _flatten(values: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
    """One flat row; text columns hold strings as they are and other values JSON-encoded."""
    return {name: _cell(values.get(name), dtype) for name, dtype in types.items()}


def _cell(value: Any, dtype: str) -> Any:
    return value if dtype != "string" or value is None or isinstance(value, str) else _json(value)


def _write_csv(records: Iterable[dict[str, Any]], path: Path, types: dict[str, str]) -> None:
    as_text = dict.fromkeys(types, "string")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(types))
        writer.writeheader()
        writer.writerows(_flatten(record, as_text) for record in records)


def _write_parquet(records: Iterable[dict[str, Any]], path: Path, types: dict[str, str]) -> None:
    pq = importlib.import_module("pyarrow.parquet")
    pa = importlib.import_module("pyarrow")
    schema = pa.schema([(name, pa.type_for_alias(dtype)) for name, dtype in types.items()])
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches((_flatten(record, types) for record in records), _BATCH):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def _write_hf(records: Iterable[dict[str, Any]], path: Path, types: dict[str, str]) -> None:
    datasets = importlib.import_module("datasets")
    features = datasets.Features({name: datasets.Value(dtype) for name, dtype in types.items()})
    rows = [_flatten(record, types) for record in records]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(path))


def _batches(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _table(write: Callable[[Iterable[dict[str, Any]], Path, dict[str, str]], None]) -> Callable[..., None]:
    """A table writer over the export's records: each row flattened to the task's columns."""

    def write_records(records: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
        write(map(_row_values(spec), records), path, column_types(spec, options.keep_fields))

    return write_records


CSV = Exporter("csv", _table(_write_csv), layout="table")
PARQUET = Exporter("parquet", _table(_write_parquet), layout="table", requires=("pyarrow.parquet", "parquet"))
HF = Exporter("hf", _table(_write_hf), layout="table", requires=("datasets", "hf"))
