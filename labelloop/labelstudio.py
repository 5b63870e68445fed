"""Label Studio as a review front end: export tasks with predictions, import its annotations, sync.

Each output field becomes one control named as the field: an enum (and a classify label, an
intent, a rating) a single-choice ``Choices``, an array of enum values (multilabel) a multiple-choice
``Choices``, an integer or number a ``Number``, a string a ``TextArea``, and the mentions of spans
and intent_slots tasks a ``Labels`` whose results are ``labels`` regions (start, end, text, label);
a nullable field left empty is null. Values map back and forth exactly, and an imported answer must
satisfy the task's JSON Schema. A task carries its item's id in ``data.labelloop_id``.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .errors import LabelloopError
from .export import atomic_output
from .spec import ClassifySpec, IntentSlotsSpec, MultilabelSpec, RateSpec, SpansSpec, TaskSpec
from .store import Store

__all__ = ["ImportResult", "LabelStudioError", "LabelStudioExport", "SyncResult", "export_tasks",
           "import_export", "labeling_config", "sync", "token_from_env"]

TEXT = "labelloop_text"  # the object tag showing the item's text
ACTION = "import-labelstudio"  # annotation action and audit-log action of an imported answer
_TAGS = {"choices": "Choices", "number": "Number", "textarea": "TextArea", "labels": "Labels"}
_VALUE_KEYS = {"choices": "choices", "number": "number", "textarea": "text", "labels": "labels"}
_PUSH_BATCH = 500


class LabelStudioError(LabelloopError):
    """A spec Label Studio cannot show, an unreadable export, or a request the server refused."""


@dataclass(frozen=True)
class _Field:
    """One output field and the control that edits it."""

    name: str
    control: str  # a key of _TAGS
    nullable: bool
    integer: bool = False
    choices: dict[str, Any] = field(default_factory=dict)  # choice (or label) text -> JSON value
    multiple: bool = False  # choices: a list of values (multilabel)
    hints: dict[str, str] = field(default_factory=dict)  # choice text -> its description

    @property
    def empty(self) -> Any:
        """The value of the field when the annotation has no region for it."""
        return [] if self.multiple or self.control == "labels" else None


@dataclass
class LabelStudioExport:
    """What ``export_tasks`` wrote: the tasks JSON and, beside it, the labeling config XML."""

    tasks_path: str
    config_path: str
    tasks: int
    predictions: int


@dataclass
class ImportResult:
    """Annotations imported, already imported before, cancelled in Label Studio, and one line per bad one."""

    imported: int = 0
    skipped_existing: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class SyncResult:
    """Tasks pushed now, tasks the project already had, annotations pulled, and the pull's error lines."""

    pushed: int
    already_pushed: int
    pulled: int
    errors: list[str]


def _fields(spec: TaskSpec) -> list[_Field]:
    """The control of each output field; a field no control can edit is a LabelStudioError."""
    if isinstance(spec, ClassifySpec):
        return [_Field("label", "choices", False, choices={n: n for n in spec.label_names},
                       hints=_label_hints(spec.labels))]
    mentions = getattr(spec, "mentions_field", None)
    hints = _hints(spec)
    fields = []
    for name, prop in spec.output_schema()["properties"].items():
        if name == mentions:
            fields.append(_Field(name, "labels", False, choices={n: n for n in spec.label_names},
                                 hints=hints.get(name, {})))
        else:
            fields.append(_field(name, prop, hints.get(name, {})))
    if TEXT in {f.name for f in fields}:
        raise LabelStudioError(f"field '{TEXT}': the name is reserved for the item's text")
    return fields


def _field(name: str, prop: dict[str, Any], hints: dict[str, str]) -> _Field:
    """The control of one output field given by its JSON Schema ``prop``."""
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    scalar = [t for t in types if t != "null"]
    nullable = "null" in types or None in prop.get("enum", ())
    if "enum" in prop:
        return _Field(name, "choices", nullable, choices=_choices(name, prop["enum"]), hints=hints)
    if scalar == ["array"] and "enum" in prop.get("items", {}):
        return _Field(name, "choices", nullable, choices=_choices(name, prop["items"]["enum"]), multiple=True,
                      hints=hints)
    if scalar and set(scalar) <= {"integer", "number"}:
        return _Field(name, "number", nullable, integer=scalar == ["integer"])
    if scalar == ["string"]:
        return _Field(name, "textarea", nullable)
    raise LabelStudioError(f"field '{name}': type {' or '.join(types) or 'any'} has no Label Studio control"
                           " (supported: enum, array of enum values, integer, number, string; each may be nullable)")


def _choices(name: str, enum: list[Any]) -> dict[str, Any]:
    """Choice text -> JSON value of an enum (null left out: an empty choice is null)."""
    values = [v for v in enum if v is not None]
    choices = {_choice_text(v): v for v in values}
    if len(choices) != len(values):
        raise LabelStudioError(f"field '{name}': enum values that read alike cannot be told apart")
    return choices


def _hints(spec: TaskSpec) -> dict[str, dict[str, str]]:
    """Per field, the description of each choice or label the spec gives one."""
    if isinstance(spec, MultilabelSpec):
        return {"labels": _label_hints(spec.labels)}
    if isinstance(spec, SpansSpec):
        return {spec.mentions_field: _label_hints(spec.labels)}
    if isinstance(spec, IntentSlotsSpec):
        return {"intent": _label_hints(spec.intents), spec.mentions_field: _label_hints(spec.slots)}
    if isinstance(spec, RateSpec):
        return {"rating": {_choice_text(level.value): level.description for level in spec.levels}}
    return {}


def _label_hints(labels: list[Any]) -> dict[str, str]:
    return {label.name: label.description for label in labels if label.description}


def _choice_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def labeling_config(spec: TaskSpec) -> str:
    """The labeling config XML of a task: the instruction, the item's text and one control per field."""
    properties = spec.output_schema()["properties"]
    view = ET.Element("View")
    ET.SubElement(view, "Header", value=spec.instruction.strip())
    ET.SubElement(view, "Text", name=TEXT, value="$text")
    for f in _fields(spec):
        if not isinstance(spec, ClassifySpec):
            about = properties[f.name].get("description")
            title = f"{f.name}: {about}" if about else f.name
            ET.SubElement(view, "Header", value=title + (" (empty: none)" if f.nullable else ""), size="5")
        control = ET.SubElement(view, _TAGS[f.control], name=f.name, toName=TEXT)
        if not f.nullable and f.empty is None:  # an empty list is an answer too
            control.set("required", "true")
        if f.control in ("choices", "labels"):
            if f.control == "choices":
                control.set("choice", "multiple" if f.multiple else "single")
            tag = "Choice" if f.control == "choices" else "Label"
            for text in f.choices:
                ET.SubElement(control, tag, {"value": text, **({"hint": f.hints[text]} if f.hints.get(text) else {})})
        elif f.control == "number":
            bounds = {"min": properties[f.name].get("minimum"), "max": properties[f.name].get("maximum")}
            control.attrib.update({key: str(v) for key, v in bounds.items() if v is not None})
            control.set("step", "1" if f.integer else "any")
        else:
            control.attrib.update(maxSubmissions="1", editable="true", rows="1")
    ET.indent(view)
    return ET.tostring(view, encoding="unicode")


def _result(fields: list[_Field], output: dict[str, Any]) -> list[dict[str, Any]]:
    """A Label Studio ``result`` holding each value of ``output`` that its field's control can show."""
    result = []
    for f in fields:
        value = output.get(f.name)
        if f.control == "labels":
            result.extend(_label_regions(f, value if isinstance(value, list) else []))
            continue
        if f.control == "choices" and f.multiple:
            shown = isinstance(value, list) and bool(value) and all(_is_choice(f, v) for v in value)
            value = [_choice_text(v) for v in value] if shown else value
        elif f.control == "choices":
            shown = _is_choice(f, value)
            value = [_choice_text(value)]
        elif f.control == "number":
            shown = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            shown, value = isinstance(value, str), [value]
        if shown:
            result.append({"from_name": f.name, "to_name": TEXT, "type": f.control,
                           "value": {_VALUE_KEYS[f.control]: value}})
    return result


def _is_choice(f: _Field, value: Any) -> bool:
    """Whether ``value`` is one of the field's choices (1 is not True, nor 1.0)."""
    return any(value == v and type(value) is type(v) for v in f.choices.values())


def _label_regions(f: _Field, mentions: list[Any]) -> list[dict[str, Any]]:
    """One ``labels`` region per mention with offsets (a mention without them cannot be shown)."""
    return [{"from_name": f.name, "to_name": TEXT, "type": "labels",
             "value": {"start": m["start"], "end": m["end"], "text": m["text"], "labels": [m["label"]]}}
            for m in mentions if isinstance(m, dict) and {"start", "end", "text", "label"} <= set(m)]


def _output(fields: list[_Field], result: Any, text: str | None = None) -> dict[str, Any]:
    """The answer a Label Studio ``result`` gives (empty nullable fields: null, empty lists: []);
    ValueError if unreadable. ``text``, the item's text, checks the offsets of ``labels`` regions."""
    by_name: dict[Any, _Field] = {f.name: f for f in fields}
    output: dict[str, Any] = {f.name: f.empty for f in fields if f.nullable or f.empty is not None}
    for region in result if isinstance(result, list) else [result]:
        f = by_name.get(region.get("from_name")) if isinstance(region, dict) else None
        if f is None or not isinstance(region.get("value"), dict):
            raise ValueError(f"a result region that is not a field of this task: {json.dumps(region)[:80]}")
        if f.control == "labels":
            output[f.name] = [*output[f.name], *_mentions(f, region["value"], text)]
        else:
            output[f.name] = _value(f, region["value"].get(_VALUE_KEYS[f.control]))
    for f in fields:
        if f.control == "labels":
            output[f.name] = sorted(output[f.name], key=lambda m: (m["start"], m["end"], m["label"]))
    return output


def _value(f: _Field, values: Any) -> Any:
    """The value of a choices, number or textarea region (ValueError if unreadable)."""
    if f.control == "number":
        return int(values) if f.integer and isinstance(values, float) and values.is_integer() else values
    if f.multiple and isinstance(values, list):
        return [f.choices.get(v, v) if isinstance(v, str) else v for v in values]
    if not isinstance(values, list) or len(values) != 1:
        raise ValueError(f"field '{f.name}': exactly one value expected, got {json.dumps(values)}")
    choice = f.control == "choices" and isinstance(values[0], str)
    return f.choices.get(values[0], values[0]) if choice else values[0]


def _offsets_fit(start: Any, end: Any, text: str | None) -> bool:
    """Whether ``start`` and ``end`` are integers with 0 <= start < end (<= len(text) where known)."""
    if type(start) is not int or type(end) is not int:
        return False
    return 0 <= start < end and (text is None or end <= len(text))


def _mentions(f: _Field, value: dict[str, Any], text: str | None) -> list[dict[str, Any]]:
    """The mentions of one ``labels`` region, one per label; in ``text`` (the item's text, where
    known) its offsets must cover exactly the region's text."""
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not _offsets_fit(start, end, text):
        raise ValueError(f"field '{f.name}': a region needs offsets 0 <= start < end <= the text's length,"
                         f" got {start}, {end}")
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"field '{f.name}': the region at [{start}:{end}] has no label")
    covered = value.get("text") if text is None else text[start:end]
    if not isinstance(covered, str) or value.get("text", covered) != covered:
        raise ValueError(f"field '{f.name}': the region at [{start}:{end}] reads {value.get('text')!r}"
                         f" but the text there is {covered!r}")
    return [{"text": covered, "label": label, "start": start, "end": end} for label in labels]


def export_tasks(store: Store, spec: TaskSpec, out: str | Path, labeler: str = "llm",
                 actor: str = "cli") -> LabelStudioExport:
    """Write every item as a task to ``out`` (JSON), with the current prediction of ``labeler`` as its
    pre-annotation, and the labeling config beside it (``out`` with the suffix ``.xml``)."""
    out = Path(out)
    if out.suffix == ".xml":
        raise LabelStudioError(f"{out}: the tasks file must not end in .xml (the labeling config goes there)")
    config_path, fields = out.with_suffix(".xml"), _fields(spec)
    tasks = [_task(row, fields) for row in store.labelstudio_items(labeler)]
    for path, text in ((config_path, labeling_config(spec)), (out, json.dumps(tasks, ensure_ascii=False, indent=1))):
        with atomic_output(path) as tmp:  # written beside, moved into place when complete
            tmp.write_text(text + "\n", encoding="utf-8")
    result = LabelStudioExport(str(out), str(config_path), len(tasks), sum("predictions" in t for t in tasks))
    store.audit(actor, "export", detail=json.dumps({"path": result.tasks_path, "format": "labelstudio",
                                                     "written": result.tasks, "config": result.config_path}))
    return result


def _task(row: Any, fields: list[_Field]) -> dict[str, Any]:
    """An item as a task; an answer of the model becomes its prediction (model@prompt version, confidence)."""
    task: dict[str, Any] = {"data": {"text": row["text"], "labelloop_id": row["id"]}}
    output = None if row["output"] is None else json.loads(row["output"])
    if isinstance(output, dict):
        prediction = {"model_version": f"{row['model']}@{row['prompt_version']}", "result": _result(fields, output)}
        if row["confidence"] is not None:
            prediction["score"] = row["confidence"]
        task["predictions"] = [prediction]
    return task


def import_export(store: Store, spec: TaskSpec, path: str | Path, labeler: str = "llm") -> ImportResult:
    """Import the annotations of a Label Studio JSON export as human annotations; importing again adds
    nothing. Each bad annotation is one line of ``errors``; the good ones are imported all the same."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelStudioError(f"{path}: cannot read a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise LabelStudioError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    return _import_tasks(store, spec, tasks, labeler, emails={})


def _import_tasks(store: Store, spec: TaskSpec, tasks: list[dict[str, Any]], labeler: str,
                  emails: dict[int, str]) -> ImportResult:
    """Check and store the annotations of ``tasks``; ``emails`` names the users given by id only."""
    fields, result = _fields(spec), ImportResult()
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    known = store.item_texts((i for i in map(_item_id, tasks) if isinstance(i, str)))
    for task in tasks:
        item_id, annotations = _item_id(task), task.get("annotations") or []
        where = f"task {task.get('id')}" + (f" (item {item_id})" if isinstance(item_id, str) else "")
        if annotations and item_id not in known:
            result.errors.append(f"{where}: " + ("the item is not in this project" if isinstance(item_id, str)
                                                 else "no data.labelloop_id (not a task labelloop exported)"))
            continue
        if not isinstance(annotations, list) or not all(isinstance(a, dict) and a.get("id") for a in annotations):
            result.errors.append(f"{where}: annotations must be a list of objects with an id")
            continue
        for annotation in annotations:  # in Label Studio's order, oldest first: a user's newest answer wins
            if annotation.get("was_cancelled"):
                result.cancelled += 1
                continue
            try:
                output = _output(fields, annotation.get("result") or [], known[item_id])
                _check(validator, output)
            except ValueError as exc:
                result.errors.append(f"{where}, annotation {annotation['id']}: {exc}")
                continue
            added = store.add_labelstudio_annotation(
                item_id=item_id, annotator=_annotator(annotation.get("completed_by"), emails), output=output,
                external_id=str(annotation["id"]), labeler=labeler, action=ACTION)
            result.imported += added
            result.skipped_existing += not added
    return result


def _item_id(task: dict[str, Any]) -> Any:
    data = task.get("data")
    return data.get("labelloop_id") if isinstance(data, dict) else None


def _check(validator: jsonschema.Draft202012Validator, output: dict[str, Any]) -> None:
    """ValueError naming every way ``output`` breaks the task's schema, field by field."""
    errors = sorted(validator.iter_errors(output), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ValueError("; ".join(f"field '{'.'.join(map(str, e.absolute_path))}': {e.message}"
                                   if e.absolute_path else e.message for e in errors))


def _annotator(completed_by: Any, emails: dict[int, str]) -> str:
    """The Label Studio user as an annotator name: the email where known, else ``ls-user-<id>``."""
    if isinstance(completed_by, dict):
        return completed_by.get("email") or f"ls-user-{completed_by.get('id')}"
    return emails.get(completed_by) or f"ls-user-{completed_by}"


def token_from_env(variable: str) -> str:
    """The Label Studio token held by the environment variable ``variable`` (never stored)."""
    token = os.environ.get(variable, "").strip()
    if not token:
        raise LabelStudioError(f"environment variable {variable} holds no Label Studio token")
    return token


def sync(store: Store, spec: TaskSpec, url: str, token: str, project_title: str, labeler: str = "llm") -> SyncResult:
    """Push the items waiting for review, with their predictions, to the Label Studio project titled
    ``project_title`` (created if needed), then pull its annotations. Nothing is pushed or imported twice."""
    url, fields = url.rstrip("/"), _fields(spec)
    client_class, api_error = _sdk()
    with _server_errors(url, api_error):
        client = client_class(base_url=url, api_key=token)
        project_id = _project(client, project_title, labeling_config(spec))
        tasks = [task.model_dump(mode="json") for task in client.tasks.list(project=project_id, fields="all")]
        known = store.pushed_items(url, project_id)
        # tasks of our items the store does not know: pushed by a sync that died before recording them
        ours = store.existing_ids((i for i in map(_item_id, tasks) if isinstance(i, str)))
        adopted = [(_item_id(t), t["id"]) for t in tasks if _item_id(t) in ours and _item_id(t) not in known]
        store.record_pushed(url, project_id, adopted)
        rows = store.unpushed_review_items(labeler, url, project_id)
        for start in range(0, len(rows), _PUSH_BATCH):
            batch = rows[start:start + _PUSH_BATCH]
            created = client.projects.import_tasks(project_id, request=[_task(r, fields) for r in batch],
                                                   return_task_ids=True).task_ids or []
            if len(created) != len(batch):
                raise LabelStudioError(f"{url}: Label Studio created {len(created)} tasks for {len(batch)} items")
            store.record_pushed(url, project_id, zip((r["id"] for r in batch), created, strict=True))
        emails = _emails(client, tasks, api_error)
    pulled = _import_tasks(store, spec, tasks, labeler, emails)
    return SyncResult(len(rows), len(known) + len(adopted), pulled.imported, pulled.errors)


def _sdk() -> tuple[Any, type[Exception]]:
    """The SDK's client class and HTTP error class (imported on use: the SDK is an extra)."""
    try:
        from label_studio_sdk import LabelStudio
        from label_studio_sdk.core.api_error import ApiError
    except ImportError:
        raise LabelStudioError("sync needs the Label Studio SDK: pip install 'labelloop[labelstudio]'") from None
    return LabelStudio, ApiError


def _project(client: Any, title: str, config: str) -> int:
    """The id of the project titled ``title`` (the oldest of several), created or updated to ``config``."""
    found = sorted(p.id for p in client.projects.list(title=title) if p.title == title)
    if not found:
        return client.projects.create(title=title, label_config=config).id
    if client.projects.get(found[0]).label_config != config:
        client.projects.update(found[0], label_config=config)
    return found[0]


def _emails(client: Any, tasks: list[dict[str, Any]], api_error: type[Exception]) -> dict[int, str]:
    """The emails of the users who wrote the annotations (one the token may not see stays an id)."""
    emails = {}
    users = [a.get("completed_by") for t in tasks for a in t.get("annotations") or []]
    for user_id in {u for u in users if isinstance(u, int)}:
        try:
            emails[user_id] = client.users.get(user_id).email
        except api_error:
            pass
    return emails


@contextmanager
def _server_errors(url: str, api_error: type[Exception]) -> Iterator[None]:
    """Turn the SDK's HTTP and connection errors into one-line LabelStudioErrors."""
    import httpx  # the SDK's HTTP client

    try:
        yield
    except api_error as exc:
        body, status = getattr(exc, "body", None), getattr(exc, "status_code", None)
        detail = (body.get("detail") or body) if isinstance(body, dict) else body
        hint = " (use a personal access token: Label Studio > Account & Settings)" if status == 401 else ""
        raise LabelStudioError(f"{url}: Label Studio answered {status}: {detail}{hint}") from None
    except httpx.HTTPError as exc:
        raise LabelStudioError(f"{url}: cannot reach Label Studio ({exc})") from None
