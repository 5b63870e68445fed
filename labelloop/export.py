"""Export the final labels: a person's answer where one exists, otherwise an accepted model answer.

Every exported output is checked against the task's JSON Schema first; whatever is left out is
counted by reason. Files are written beside their destination and moved into place only when
complete, so a crash never leaves a half-written export.

Every kind exports as :data:`FORMATS`; mention kinds (spans, intent_slots) also as CoNLL, ATIS
(intent_slots) and a spaCy DocBin (:mod:`labelloop.export_text`), and every mention they export
carries its offsets. Tabular exports of multilabel add one-hot ``label:<name>`` columns; rate
records carry the spec's ``rubric_version``; alpaca and chat records of generate hold the text.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice, starmap
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema

from . import labelers
from ._actor import actor_or_default
from .aggregate import aggregate
from .errors import InputError
from .export_text import SPACY_HINT, TEXT_FORMATS, TEXT_WRITERS, place_mentions
from .prompt import build_prompt
from .route import ACCEPTED, FAILED
from .spans import TOKENIZERS
from .spec import GenerateSpec, MultilabelSpec, RateSpec, TaskSpec
from .store import Item, Store

FORMATS = ("jsonl", "csv", "parquet", "hf", "alpaca", "chat")  # the formats of every kind
REASONS = ("needs_review", "disputed", "failed", "unlabeled", "invalid")
SOURCES = ("human", "model")
_TABULAR = ("csv", "parquet", "hf")
_BASE_COLUMNS = {"id": "string", "text": "string", "source": "string", "method": "string",
                 "decided_by": "string", "confidence": "float64", "model": "string", "prompt_version": "string"}
_DTYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}
_EXTRAS = {"parquet": ("pyarrow.parquet", "pip install 'labelloop[parquet]'"),
           "hf": ("datasets", "pip install 'labelloop[hf]'"), "spacy": ("spacy", SPACY_HINT)}
ONE_HOT_PREFIX = "label:"
_BATCH = 1000


@dataclass
class ExportResult:
    """What an export wrote, and what it left out and why.

    ``excluded`` counts items by reason (:data:`REASONS`); ``by_source`` counts written records by
    where their label came from (:data:`SOURCES`). Every reason and source is present, zero or not.
    """

    path: str
    format: str
    written: int
    excluded: dict[str, int]
    by_source: dict[str, int]


def export(store: Store, spec: TaskSpec, out: str | Path, fmt: str = "jsonl", *, labeler: str = labelers.LLM,
           keep_fields: list[str] | None = None, include_unreviewed: bool = False,
           actor: str | None = None, tokenizer: str = "auto") -> ExportResult:
    """Write the final label of every item to ``out`` in format ``fmt`` and log it in the audit log.

    ``keep_fields`` carries item fields into the jsonl and tabular formats; ``include_unreviewed``
    adds model answers still waiting for review (schema-valid ones only, as always); ``tokenizer``
    ("auto", "char" or "whitespace") splits the text for the token formats (conll, atis, spacy).
    """
    keep = list(keep_fields or [])
    _check_request(store, spec, fmt, keep, tokenizer)
    aggregate(store, spec)
    out = Path(out)
    excluded: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    rows = _final_rows(store, spec, labeler, keep, include_unreviewed, excluded, by_source)
    with atomic_output(out) as tmp:
        if fmt in _TABULAR:
            _TABLE_WRITERS[fmt](map(_row_values(spec), rows), tmp, _column_types(spec, keep))
        elif fmt in TEXT_WRITERS:
            TEXT_WRITERS[fmt](rows, tmp, spec, tokenizer)
        else:
            _write_json_lines(starmap(_line_maker(fmt, spec), rows), tmp)
    result = ExportResult(str(out), fmt, sum(by_source.values()), {r: excluded[r] for r in REASONS},
                          {s: by_source[s] for s in SOURCES})
    store.audit(actor_or_default(actor), "export", detail=json.dumps(
        {"path": result.path, "format": fmt, "written": result.written, "excluded": result.excluded}))
    return result


def formats_for(spec: TaskSpec) -> tuple[str, ...]:
    """The export formats that fit the task's kind."""
    return (*FORMATS, *(fmt for fmt, kinds in TEXT_FORMATS.items() if spec.kind in kinds))


def _check_request(store: Store, spec: TaskSpec, fmt: str, keep: list[str], tokenizer: str) -> None:
    """Refuse, before writing anything, a format, field or missing package that cannot work."""
    _check_format(spec, fmt, tokenizer)
    if keep and fmt not in ("jsonl", *_TABULAR):
        raise InputError("export", None, f"the {fmt} format has a fixed shape: keep_fields are not supported")
    names = [*(_output_columns(spec) if fmt in _TABULAR else ["output"]), *_BASE_COLUMNS, *_spec_columns(spec),
             *keep]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise InputError("export", None, "names two columns of the export at once (drop it from keep_fields,"
                                         " or export as jsonl)", field=", ".join(clashes))
    present = store.fields_present(keep) if keep else set()
    missing = [name for name in keep if name not in present]
    if missing:
        raise InputError("keep_fields", None, "no item has this field", field=", ".join(missing))
    if fmt in _EXTRAS:
        _require(fmt)


def _check_format(spec: TaskSpec, fmt: str, tokenizer: str) -> None:
    """An unknown format, a format of other kinds, or a tokenizer that does not apply is an InputError."""
    fits = formats_for(spec)
    if fmt not in (*FORMATS, *TEXT_FORMATS):
        raise InputError("export", None, f"unknown format {fmt!r}; choose one of {', '.join(fits)}")
    if fmt not in fits:
        kinds = " or ".join(TEXT_FORMATS[fmt])
        raise InputError("export", None, f"the {fmt} format is for {kinds} tasks, not {spec.kind};"
                                         f" a {spec.kind} task exports as {', '.join(fits)}")
    if tokenizer not in TOKENIZERS:
        raise InputError("export", None, f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    if tokenizer != "auto" and fmt not in TEXT_FORMATS:
        raise InputError("export", None, f"the {fmt} format has no tokens: a tokenizer applies to"
                                         f" {', '.join(TEXT_FORMATS)} only")


def _require(fmt: str) -> ModuleType:
    """Import the optional package a format needs, or say how to install it."""
    module, hint = _EXTRAS[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError("export", None, f"the {fmt} format needs {module.split('.')[0]}: {hint}") from None


def _final_rows(store: Store, spec: TaskSpec, labeler: str, keep: list[str], include_unreviewed: bool,
                excluded: Counter[str], by_source: Counter[str]) -> Iterator[tuple[dict[str, Any], Item]]:
    """Stream each exported record with its item; count the items left out by reason."""
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    extra = _spec_columns(spec)
    small = [labelers.SMALL] if spec.learn.policy.small_alone and labeler != labelers.SMALL else []
    for row in store.final_records(labeler, [*small, labelers.DUPLICATES]):
        outcome = _outcome(row, include_unreviewed)
        raw = row["human_output"] if outcome == "human" else row["model_output"]
        output = None if raw is None else json.loads(raw)
        if outcome in SOURCES:
            output = place_mentions(spec, output, row["text"]) if validator.is_valid(output) else None
            outcome = "invalid" if output is None else outcome
        if outcome not in SOURCES:
            excluded[outcome] += 1
            continue
        by_source[outcome] += 1
        item = Item(row["id"], row["text"], json.loads(row["fields"]), "")
        yield _record(row, outcome, output, item, keep, extra), item


def _outcome(row: Any, include_unreviewed: bool) -> str:
    """Where the final label comes from ("human" or "model"), or why there is none."""
    if row["gold_status"] == "disputed":
        return "disputed"
    if row["human_output"] is not None:
        return "human"
    if row["prediction_id"] is None:
        return "unlabeled"
    if row["route"] == ACCEPTED:
        return "model"
    if row["route"] == FAILED or row["status"] == "failed":
        return "failed"
    return "model" if include_unreviewed else "needs_review"  # needs_review, or not routed yet


def _record(row: Any, source: str, output: Any, item: Item, keep: list[str],
            extra: dict[str, Any]) -> dict[str, Any]:
    """The JSONL record: answer, provenance, what the spec adds (``extra``) and the kept item fields."""
    record: dict[str, Any] = {"id": item.id, "text": item.text, "output": output, "source": source}
    if source == "human":
        record.update(method=row["method"], decided_by=",".join(json.loads(row["decided_by"])))
    if source == "model" and row["duplicate_of"]:
        record["duplicate_of"] = row["duplicate_of"]
    record.update(confidence=_human_confidence(row) if source == "human" else row["confidence"], model=row["model"],
                  prompt_version=row["prompt_version"], **extra)
    record.update({name: item.fields.get(name) for name in keep})
    return record


def _human_confidence(row: Any) -> float:
    """People's labels: 1.0 when one person or an expert decided, else the vote share or posterior."""
    return 1.0 if row["gold_confidence"] is None else row["gold_confidence"]


def _spec_columns(spec: TaskSpec) -> dict[str, Any]:
    """What every record of this task carries besides provenance: rate, its rubric version."""
    return {"rubric_version": spec.rubric_version} if isinstance(spec, RateSpec) else {}


def _line_maker(fmt: str, spec: TaskSpec) -> Callable[[dict[str, Any], Item], dict[str, Any]]:
    """How one record becomes one line of a jsonl, alpaca or chat file."""
    if fmt == "jsonl":
        return lambda record, item: record
    extra = _spec_columns(spec)
    answer = _answer_text(spec)
    if fmt == "alpaca":
        return lambda record, item: {"instruction": spec.instruction, "input": item.text,
                                     "output": answer(record["output"]), **extra}
    prompt = build_prompt(spec)
    system = _generate_system(spec) if isinstance(spec, GenerateSpec) else prompt.shared[0]["content"]
    return lambda record, item: {"messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt.item_messages(item)[0]["content"]},
        {"role": "assistant", "content": answer(record["output"])}], **extra}


def _answer_text(spec: TaskSpec) -> Callable[[dict[str, Any]], str]:
    """The answer of a training example: the generated text (generate), else the output as JSON."""
    return (lambda output: output["output"]) if isinstance(spec, GenerateSpec) else _json


def _generate_system(spec: GenerateSpec) -> str:
    """The system message of a generate example: the task, without labelloop's JSON answer format."""
    return "\n\n".join(part.strip() for part in (spec.instruction, spec.guidelines) if part.strip())


def _write_json_lines(lines: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(_json(line) + "\n")


def _column_types(spec: TaskSpec, keep: list[str]) -> dict[str, str]:
    """Each flat column's type: the answer's fields (schema order; multilabel: then one 0/1 column
    per label), provenance, what the spec adds, kept fields."""
    properties = spec.output_schema()["properties"]
    output = {name: _dtype(properties[name]) for name in spec.output_fields}
    one_hot = dict.fromkeys(_one_hot_columns(spec), "int64")
    return {**output, **one_hot, **_BASE_COLUMNS, **dict.fromkeys(_spec_columns(spec), "string"),
            **dict.fromkeys(keep, "string")}


def _output_columns(spec: TaskSpec) -> list[str]:
    """The columns a tabular export gives the answer."""
    return [*spec.output_fields, *_one_hot_columns(spec)]


def _one_hot_columns(spec: TaskSpec) -> list[str]:
    return [ONE_HOT_PREFIX + name for name in spec.label_names] if isinstance(spec, MultilabelSpec) else []


def _row_values(spec: TaskSpec) -> Callable[[tuple[dict[str, Any], Item]], dict[str, Any]]:
    """The values of one table row: the record, its answer's fields and (multilabel) the one-hot columns."""
    columns = _one_hot_columns(spec)

    def values(row: tuple[dict[str, Any], Item]) -> dict[str, Any]:
        record = row[0]
        one_hot = {c: int(c[len(ONE_HOT_PREFIX):] in record["output"]["labels"]) for c in columns}
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
    pq = _require("parquet")
    pa = importlib.import_module("pyarrow")
    schema = pa.schema([(name, pa.type_for_alias(dtype)) for name, dtype in types.items()])
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches((_flatten(record, types) for record in records), _BATCH):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def _write_hf(records: Iterable[dict[str, Any]], path: Path, types: dict[str, str]) -> None:
    datasets = _require("hf")
    features = datasets.Features({name: datasets.Value(dtype) for name, dtype in types.items()})
    rows = [_flatten(record, types) for record in records]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(path))


_TABLE_WRITERS = {"csv": _write_csv, "parquet": _write_parquet, "hf": _write_hf}


def _batches(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch


@contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A path beside ``out`` to write to; it replaces ``out`` when the block succeeds, else vanishes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tmp = work / out.name
        yield tmp
        if tmp.is_dir() and out.exists():  # a directory cannot replace another: move the old one aside
            os.replace(out, work / "previous")
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
