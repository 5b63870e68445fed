"""Importing answers people made elsewhere (long format: item, annotator, answer) and reference answers.

Every row is checked against the task's JSON Schema and must name an item of the project; a bad row stops
the file with ``file:line: field 'x': ...`` and nothing of it is written. Importing a file again adds nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from . import labelers
from .errors import InputError
from .readers import Record, read_records
from .spec import TaskSpec
from .store import Store


@dataclass
class AnnotationImport:
    """What an annotation import did."""

    path: str
    records: int
    added: int  # new answers (re-imported ones are not added again)
    annotators: int
    items: int
    fixed_labels: int = 0  # labels matched to an allowed one by ``fix_labels``


def ingest_annotations(
    store: Store,
    spec: TaskSpec,
    path: str | Path,
    *,
    item_field: str = "item",
    annotator_field: str = "annotator",
    value_field: str | None = "labels",
    fmt: str | None = None,
    labeler: str = labelers.LLM,
    fix_labels: bool = False,
) -> AnnotationImport:
    """Import people's answers made elsewhere, one row per (item, annotator), all of a file or nothing.

    The answer is the row's ``value_field``: an object of output fields, or the value of the task's only
    output field (a JSON list in a CSV cell is read as a list). Without ``value_field`` the output fields
    are read from the row itself. Every answer must satisfy the task's schema and name a known item.
    Importing a file again adds nothing. ``fix_labels`` matches a label that is not allowed as written to
    the one allowed label it equals once brackets, quotes, spaces and case are ignored (``"[CAUSES"``).
    """
    path = Path(path)
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    fixer = _LabelFixer(spec) if fix_labels else None
    rows: list[dict[str, Any]] = []
    for record in read_records(path, fmt):
        if record.error is not None:
            raise record.error
        rows.append(
            _annotation_row(spec, validator, str(path), record, item_field, annotator_field, value_field, fixer)
        )
    missing = {r["item_id"] for r in rows} - store.existing_ids(r["item_id"] for r in rows)
    if missing:
        first = next(r for r in rows if r["item_id"] in missing)
        raise InputError(
            str(path),
            first.pop("line"),
            f"no item {first['item_id']!r} in the project ({len(missing)} unknown; ingest the items first)",
            field=item_field,
        )
    for row in rows:
        row.pop("line")
    added = store.add_imported_annotations(rows, source="import", labeler=labeler)
    return AnnotationImport(
        str(path),
        len(rows),
        added,
        len({r["annotator"] for r in rows}),
        len({r["item_id"] for r in rows}),
        fixer.fixed if fixer else 0,
    )


class _LabelFixer:
    """Maps near-miss labels (stray brackets, quotes, spaces, case) to the task's allowed labels."""

    _NOISE = str.maketrans("", "", "[]{}()\"' ")

    def __init__(self, spec: TaskSpec):
        self.fixed = 0
        self.allowed: dict[str, dict[str, Any]] = {}
        for name, prop in spec.output_schema()["properties"].items():
            options = prop.get("enum") or (prop.get("items") or {}).get("enum") or []
            self.allowed[name] = {self._key(o): o for o in options if isinstance(o, str)}

    def _key(self, value: str) -> str:
        return value.translate(self._NOISE).casefold()

    def fix(self, output: Any) -> Any:
        if not isinstance(output, dict):
            return output
        return {name: self._fix_value(name, value) for name, value in output.items()}

    def _fix_value(self, name: str, value: Any) -> Any:
        if isinstance(value, list):
            return list(dict.fromkeys(self._fix_value(name, v) for v in value))
        options = self.allowed.get(name) or {}
        if isinstance(value, str) and value not in options.values() and self._key(value) in options:
            self.fixed += 1
            return options[self._key(value)]
        return value


def read_gold(spec: TaskSpec, path: str | Path, fmt: str | None = None) -> dict[str, dict[str, Any]]:
    """Reference answers from a file: an ``item`` (or ``id``) and the output fields (or ``output``) per row."""
    path = Path(path)
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    gold: dict[str, dict[str, Any]] = {}
    for record in read_records(path, fmt):
        if record.error is not None:
            raise record.error
        data = record.data or {}
        item_field = "item" if "item" in data else "id"
        row = _annotation_row(
            spec, validator, str(path), record, item_field, item_field, "output" if "output" in data else None
        )
        gold[row["item_id"]] = row["output"]
    return gold


def _annotation_row(
    spec: TaskSpec,
    validator: jsonschema.Draft202012Validator,
    path: str,
    record: Record,
    item_field: str,
    annotator_field: str,
    value_field: str | None,
    fixer: _LabelFixer | None = None,
) -> dict[str, Any]:
    data = record.data or {}
    for name in (item_field, annotator_field, *([value_field] if value_field else [])):
        if data.get(name) in (None, ""):
            raise InputError(path, record.line, "missing", field=name)
    output = _annotation_output(spec, data, value_field)
    if fixer is not None:
        output = fixer.fix(output)
    error = jsonschema.exceptions.best_match(validator.iter_errors(output))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise InputError(
            path, record.line, f"does not fit the task: {error.message}", field=value_field or where or None
        )
    item_id, annotator = str(data[item_field]), str(data[annotator_field])
    return {
        "item_id": item_id,
        "annotator": annotator,
        "output": output,
        "action": "import",
        "external_id": f"{Path(path).name}:{item_id}:{annotator}",
        "line": record.line,
    }


def _annotation_output(spec: TaskSpec, data: dict[str, Any], value_field: str | None) -> Any:
    props = spec.output_schema()["properties"]
    if value_field is None:
        return {name: _cell_value(props[name], data.get(name)) for name in props if name in data}
    value = data[value_field]
    if isinstance(value, dict):
        return value
    if len(props) == 1:
        [(name, prop)] = props.items()
        return {name: _cell_value(prop, value)}
    return _cell_value({"type": "object"}, value)


def _cell_value(prop: dict[str, Any], value: Any) -> Any:
    """A CSV cell holds text: read JSON where the schema wants a list, object, number or boolean."""
    types = prop.get("type", "string")
    types = types if isinstance(types, list) else [types]
    if isinstance(value, str) and not {"string"} & set(types):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
