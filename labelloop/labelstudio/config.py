"""Label Studio's side of a task: the control that edits each output field, the labeling config XML,
and the conversions between an output and a Label Studio ``result`` both ways (a region that cannot be
read back is a ValueError naming its field). :class:`LabelStudioError` is the error of the whole bridge."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from ..errors import LabelloopError
from ..spec import ClassifySpec, IntentSlotsSpec, MentionSpec, MultilabelSpec, RateSpec, SpansSpec, TaskSpec

TEXT = "labelloop_text"  # the object tag showing the item's text
_TAGS = {"choices": "Choices", "number": "Number", "textarea": "TextArea", "labels": "Labels"}
_VALUE_KEYS = {"choices": "choices", "number": "number", "textarea": "text", "labels": "labels"}


class LabelStudioError(LabelloopError):
    """A spec Label Studio cannot show, an unreadable export, or a request the server refused."""


@dataclass(frozen=True)
class Field:
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


def fields_of(spec: TaskSpec) -> list[Field]:
    """The control of each output field; a field no control can edit is a LabelStudioError."""
    if isinstance(spec, ClassifySpec):
        return [
            Field("label", "choices", False, choices={n: n for n in spec.label_names}, hints=_label_hints(spec.labels))
        ]
    hints = _hints(spec)
    fields = []
    for name, prop in spec.output_schema()["properties"].items():
        if isinstance(spec, MentionSpec) and name == spec.mentions_field:
            fields.append(
                Field(name, "labels", False, choices={n: n for n in spec.label_names}, hints=hints.get(name, {}))
            )
        else:
            fields.append(_field(name, prop, hints.get(name, {})))
    if TEXT in {f.name for f in fields}:
        raise LabelStudioError(f"field '{TEXT}': the name is reserved for the item's text")
    return fields


def _field(name: str, prop: dict[str, Any], hints: dict[str, str]) -> Field:
    """The control of one output field given by its JSON Schema ``prop``."""
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    scalar = [t for t in types if t != "null"]
    nullable = "null" in types or None in prop.get("enum", ())
    if "enum" in prop:
        return Field(name, "choices", nullable, choices=_choices(name, prop["enum"]), hints=hints)
    if scalar == ["array"] and "enum" in prop.get("items", {}):
        return Field(
            name, "choices", nullable, choices=_choices(name, prop["items"]["enum"]), multiple=True, hints=hints
        )
    if scalar and set(scalar) <= {"integer", "number"}:
        return Field(name, "number", nullable, integer=scalar == ["integer"])
    if scalar == ["string"]:
        return Field(name, "textarea", nullable)
    raise LabelStudioError(
        f"field '{name}': type {' or '.join(types) or 'any'} has no Label Studio control"
        " (supported: enum, array of enum values, integer, number, string; each may be nullable)"
    )


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
    for f in fields_of(spec):
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


def to_result(fields: list[Field], output: dict[str, Any]) -> list[dict[str, Any]]:
    """A Label Studio ``result`` holding each value of ``output`` that its field's control can show."""
    result = []
    for f in fields:
        value: Any = output.get(f.name)  # any JSON value
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
            result.append(
                {"from_name": f.name, "to_name": TEXT, "type": f.control, "value": {_VALUE_KEYS[f.control]: value}}
            )
    return result


def _is_choice(f: Field, value: Any) -> bool:
    """Whether ``value`` is one of the field's choices (1 is not True, nor 1.0)."""
    return any(value == v and type(value) is type(v) for v in f.choices.values())


def _label_regions(f: Field, mentions: list[Any]) -> list[dict[str, Any]]:
    """One ``labels`` region per mention with offsets (a mention without them cannot be shown)."""
    return [
        {
            "from_name": f.name,
            "to_name": TEXT,
            "type": "labels",
            "value": {"start": m["start"], "end": m["end"], "text": m["text"], "labels": [m["label"]]},
        }
        for m in mentions
        if isinstance(m, dict) and {"start", "end", "text", "label"} <= set(m)
    ]


def from_result(fields: list[Field], result: Any, text: str | None = None) -> dict[str, Any]:
    """The answer a Label Studio ``result`` gives (empty nullable fields: null, empty lists: []);
    ValueError if unreadable. ``text``, the item's text, checks the offsets of ``labels`` regions."""
    by_name: dict[Any, Field] = {f.name: f for f in fields}
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


def _value(f: Field, values: Any) -> Any:
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


def _mentions(f: Field, value: dict[str, Any], text: str | None) -> list[dict[str, Any]]:
    """The mentions of one ``labels`` region, one per label; in ``text`` (the item's text, where
    known) its offsets must cover exactly the region's text."""
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not _offsets_fit(start, end, text):
        raise ValueError(
            f"field '{f.name}': a region needs offsets 0 <= start < end <= the text's length, got {start}, {end}"
        )
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"field '{f.name}': the region at [{start}:{end}] has no label")
    covered = value.get("text") if text is None else text[start:end]
    if not isinstance(covered, str) or value.get("text", covered) != covered:
        raise ValueError(
            f"field '{f.name}': the region at [{start}:{end}] reads {value.get('text')!r}"
            f" but the text there is {covered!r}"
        )
    return [{"text": covered, "label": label, "start": start, "end": end} for label in labels]
