"""The kinds of task: each says what an answer looks like and how the prompt asks for it."""

from __future__ import annotations

from typing import Any, Literal

import jsonschema
from pydantic import Field, field_validator

from .base import TaskSpec
from .settings import Label


class ClassifySpec(TaskSpec):
    """Pick exactly one label from a fixed set."""

    kind: Literal["classify"]
    labels: list[Label] = Field(min_length=2)
    scoring: Literal["generate", "logprob"] = Field(
        "generate", description="logprob: the model answers the bare label in at most 3 tokens, scored by logprobs")

    @field_validator("labels", mode="before")
    @classmethod
    def _names_as_labels(cls, value: Any) -> Any:
        if isinstance(value, list):  # YAML reads yes/no/1 as bool/int: a label name is text
            return [{"name": str(v)} if isinstance(v, (str, int, float, bool)) else v for v in value]
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[Label]) -> list[Label]:
        names = [label.name for label in labels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate labels: {', '.join(duplicates)}")
        return labels

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def output_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"label": {"type": "string", "enum": self.label_names}},
                "required": ["label"], "additionalProperties": False}

    @property
    def scores_bare_label(self) -> bool:
        return self.scoring == "logprob"

    def output_description(self) -> str:
        lines = ["Choose exactly one label:"]
        for label in self.labels:
            lines.append(f"- {label.name}: {label.description}" if label.description else f"- {label.name}")
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


def _type_text(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _json_text(value: Any) -> str:
    return "null" if value is None else str(value)
