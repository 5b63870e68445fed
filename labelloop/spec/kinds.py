"""The kinds of task: each says what an answer looks like and how the prompt asks for it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jsonschema
from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from .base import TaskSpec
from .settings import Label, _Strict


def _as_labels(value: Any) -> Any:
    if isinstance(value, list):  # YAML reads yes/no/1 as bool/int: a label name is text
        return [{"name": str(v)} if isinstance(v, (str, int, float, bool)) else v for v in value]
    return value


def _unique_labels(labels: list[Label]) -> list[Label]:
    names = [label.name for label in labels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate labels: {', '.join(duplicates)}")
    return labels


Labels = Annotated[list[Label], BeforeValidator(_as_labels), AfterValidator(_unique_labels)]


def _label_lines(labels: list[Label]) -> list[str]:
    return [f"- {label.name}: {label.description}" if label.description else f"- {label.name}" for label in labels]


class ClassifySpec(TaskSpec):
    """Pick exactly one label from a fixed set."""

    kind: Literal["classify"]
    labels: Labels = Field(min_length=2)
    scoring: Literal["generate", "logprob"] = Field(
        "generate", description="logprob: the model answers the bare label in at most 3 tokens, scored by logprobs"
    )

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def output_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": self.label_names}},
            "required": ["label"],
            "additionalProperties": False,
        }

    @property
    def scores_bare_label(self) -> bool:
        return self.scoring == "logprob"

    def output_description(self) -> str:
        lines = ["Choose exactly one label:", *_label_lines(self.labels)]
        if self.scores_bare_label:
            lines.append("Answer with the label name only, exactly as written above, and nothing else.")
        else:
            lines.append('Answer with a JSON object of the form {"label": "<one of the labels>"}.')
        return "\n".join(lines)

    def guided_schema(self) -> dict[str, Any] | None:
        return None if self.scores_bare_label else self.output_schema()

    def answer_text(self, output: Any) -> str:
        return str(output["label"]) if self.scores_bare_label else super().answer_text(output)

    def label_from_text(self, text: str) -> str | None:
        """The label a bare answer names: exact, or the one label it is a prefix of (3 tokens may cut it)."""
        answer = text.strip().strip('"').strip()
        if answer in self.label_names:
            return answer
        starts = [name for name in self.label_names if answer and name.lower().startswith(answer.lower())]
        return starts[0] if len(starts) == 1 else None


class ExtractSpec(TaskSpec):
    """Fill a JSON object whose shape a JSON Schema gives."""

    kind: Literal["extract"]
    json_schema: dict[str, Any] = Field(alias="schema")

    @field_validator("json_schema")
    @classmethod
    def _valid_object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            raise ValueError("must be an object schema with 'properties'")
        return schema

    def output_schema(self) -> dict[str, Any]:
        return self.json_schema

    def output_description(self) -> str:
        lines = ["Fill these fields:"]
        required = set(self.json_schema.get("required", []))
        for name, prop in self.json_schema["properties"].items():
            parts = [_type_text(prop)]
            if "enum" in prop:
                parts.append("one of " + ", ".join(_json_text(v) for v in prop["enum"]))
            if prop.get("description"):
                parts.append(prop["description"])
            flag = "required" if name in required else "optional"
            lines.append(f"- {name} ({flag}; {'; '.join(parts)})")
        lines.append("Use null for a field the text does not give. Answer with one JSON object and nothing else.")
        return "\n".join(lines)


class MultilabelSpec(TaskSpec):
    """Pick every label that applies (possibly none)."""

    kind: Literal["multilabel"]
    labels: Labels = Field(min_length=2)
    max_labels: int | None = Field(None, ge=1)

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def threshold_keys(self) -> list[str]:
        return [*self.output_fields, *self.label_names]  # a threshold per label

    def output_schema(self) -> dict[str, Any]:
        array: dict[str, Any] = {
            "type": "array",
            "items": {"type": "string", "enum": self.label_names},
            "uniqueItems": True,
        }
        if self.max_labels:
            array["maxItems"] = self.max_labels
        return {
            "type": "object",
            "properties": {"labels": array},
            "required": ["labels"],
            "additionalProperties": False,
        }

    def output_description(self) -> str:
        return "\n".join(
            [
                "Choose every label that applies (an empty list when none does):",
                *_label_lines(self.labels),
                'Answer with a JSON object of the form {"labels": ["<label>", ...]}.',
            ]
        )


def _mention_schema(labels: list[str]) -> dict[str, Any]:
    """One mention as the model writes it: the exact text, its label, which occurrence when repeated."""
    return {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "label": {"type": "string", "enum": labels},
            "occurrence": {"type": ["integer", "null"], "minimum": 1},
        },
        "required": ["text", "label"],
        "additionalProperties": False,
    }


def with_offsets(schema: dict[str, Any], field: str) -> dict[str, Any]:
    """The schema of a stored answer: the items of array ``field`` (mentions, quotes) may carry the offsets
    labelloop found for them in the text."""
    array = schema["properties"][field]
    offsets = {"start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0}}
    item = {**array["items"], "properties": {**array["items"]["properties"], **offsets}}
    return {**schema, "properties": {**schema["properties"], field: {**array, "items": item}}}


_MENTION_RULES = (
    "Copy each mention's text exactly as it appears in the input. When the same text occurs"
    " more than once, give occurrence (1 for the first). Do not give character offsets."
)


class SpansSpec(TaskSpec):
    """Mark mentions (entities) in the text; labelloop finds their offsets."""

    kind: Literal["spans"]
    labels: Labels = Field(min_length=1)
    overlaps: Literal["prefer_finer", "prefer_longer", "allow"] = Field(
        "prefer_finer", description="on overlapping mentions keep the finer one, the longer one, or both"
    )
    vocabularies: dict[str, str] = Field({}, description="label -> file of allowed terms, one per line")
    mentions_field: Literal["entities"] = "entities"
    vocabulary_terms: dict[str, set[str]] = Field({}, exclude=True, repr=False)  # read when the spec loads

    @field_validator("vocabularies")
    @classmethod
    def _vocabularies_name_labels(cls, value: dict[str, str], info: Any) -> dict[str, str]:
        names = {label.name for label in info.data.get("labels", [])}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"not labels: {', '.join(unknown)}")
        return value

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def guided_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"entities": {"type": "array", "items": _mention_schema(self.label_names)}},
            "required": ["entities"],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict[str, Any]:
        return with_offsets(self.guided_schema(), "entities")

    def output_description(self) -> str:
        return "\n".join(
            [
                "Mark every mention of these kinds:",
                *_label_lines(self.labels),
                _MENTION_RULES,
                'Answer with {"entities": [{"text": "...", "label": "...", "occurrence": null}, ...]}.',
            ]
        )


class IntentSlotsSpec(TaskSpec):
    """One intent for the utterance and its slot values as mentions."""

    kind: Literal["intent_slots"]
    intents: Labels = Field(min_length=2)
    slots: Labels = Field(min_length=1)
    overlaps: Literal["prefer_finer", "prefer_longer", "allow"] = "prefer_finer"
    mentions_field: Literal["slots"] = "slots"

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.slots]

    def guided_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "intent": {"type": "string", "enum": [label.name for label in self.intents]},
                "slots": {"type": "array", "items": _mention_schema(self.label_names)},
            },
            "required": ["intent", "slots"],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict[str, Any]:
        return with_offsets(self.guided_schema(), "slots")

    def output_description(self) -> str:
        return "\n".join(
            [
                "Choose the intent:",
                *_label_lines(self.intents),
                "Mark the slot values:",
                *_label_lines(self.slots),
                _MENTION_RULES,
                'Answer with {"intent": "...", "slots": [{"text": "...", "label": "..."}, ...]}.',
            ]
        )


MentionSpec = SpansSpec | IntentSlotsSpec  # the kinds whose answers hold mentions (in ``mentions_field``)


class Level(_Strict):
    value: int
    description: str = Field(min_length=1)


def _ordered_levels(levels: list[Level]) -> list[Level]:
    values = [level.value for level in levels]
    if values != sorted(set(values)):
        raise ValueError("level values must be distinct and in ascending order")
    return levels


Levels = Annotated[list[Level], AfterValidator(_ordered_levels)]  # an ordinal scale: rate, coherence


class RateSpec(TaskSpec):
    """Rate the text on an ordinal scale described by a rubric."""

    kind: Literal["rate"]
    levels: Levels = Field(min_length=2)
    criteria: list[str] = Field([], description="what the rating weighs, e.g. topic consistency, causal links")
    rubric_version: str = "1"

    def output_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"rating": {"type": "integer", "enum": [level.value for level in self.levels]}},
            "required": ["rating"],
            "additionalProperties": False,
        }

    def output_description(self) -> str:
        lines = ["Rate the input on this scale:", *(f"- {lv.value}: {lv.description}" for lv in self.levels)]
        if self.criteria:
            lines.append("Weigh: " + "; ".join(self.criteria) + ".")
        lines.append('Answer with {"rating": <value>}.')
        return "\n".join(lines)


class GenerateSpec(TaskSpec):
    """Write an output for each item (translation, summary, answer) for instruction data."""

    kind: Literal["generate"]
    rubric: list[str] = Field(min_length=1, description="what a good output does; a judge rates it 1-5 on these")

    def output_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"output": {"type": "string", "minLength": 1}},
            "required": ["output"],
            "additionalProperties": False,
        }

    def output_description(self) -> str:
        return "\n".join(
            ["A good output:", *(f"- {point}" for point in self.rubric), 'Answer with {"output": "<your output>"}.']
        )


def _type_text(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _json_text(value: Any) -> str:
    return "null" if value is None else str(value)
