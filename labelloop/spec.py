"""The task spec: what to label and how, loaded from ``labelloop.yaml`` and validated up front."""

from __future__ import annotations

import difflib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from ._yaml import line_of, load_with_lines
from .errors import SpecError

SPEC_FILENAME = "labelloop.yaml"
ENV_PREFIX = "LABELLOOP_"
DEFAULT_ROLE = "You are a careful data annotator. You follow the guidelines exactly and answer only with JSON."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSettings(_Strict):
    """Which model labels, and with which decoding parameters."""

    backend: str = "llamacpp"
    model: str | None = Field(None, description="Model name (openai) or GGUF path (llamacpp; default: embedded SmolLM2)")
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the API key")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1)
    top_logprobs: int = Field(5, ge=0, le=5, description="0 disables logprobs")
    seed: int | None = None
    concurrency: int = Field(16, ge=1, le=4096)
    timeout: float = Field(120.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(1.0, ge=0.0, description="first retry delay in seconds; doubles per retry, with jitter")

    def with_overrides(self, overrides: dict[str, Any], environ: dict[str, str] | None = None) -> "ModelSettings":
        """Apply ``LABELLOOP_*`` environment variables, then explicit overrides (None = not given)."""
        environ = os.environ if environ is None else environ
        merged = self.model_dump()
        for name in type(self).model_fields:
            env_value = environ.get(ENV_PREFIX + name.upper())
            if env_value is not None:
                merged[name] = env_value
        merged.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return type(self).model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise SpecError("settings", None, f"model.{key}", err["msg"]) from None

    def decoding_params(self) -> dict[str, Any]:
        """The parameters that change the model's answer (part of the cache key)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens,
                "top_logprobs": self.top_logprobs, "seed": self.seed}


class PromptSettings(_Strict):
    """How the prompt is written; the defaults suit most tasks."""

    role: str = DEFAULT_ROLE
    item_template: str = Field("{{ text }}", description="Jinja2 template of the item message")


class InputSettings(_Strict):
    """Defaults for ``ingest``: which fields hold the text and the id."""

    text_field: str = "text"
    id_field: str | None = None


class Label(_Strict):
    name: str = Field(min_length=1)
    description: str = ""


class Rule(_Strict):
    """A check on every answer: a safe expression over the output's fields, ``item`` and ``text``."""

    rule: str = Field(min_length=1)
    message: str = ""

    @property
    def name(self) -> str:
        return self.message or self.rule


class ReviewSettings(_Strict):
    """When an answer is trusted, and what happens when it is not."""

    threshold: float = Field(0.7, ge=0.0, le=1.0, description="auto-accept at or above this confidence")
    fields: dict[str, float] = Field({}, description="per-field thresholds, e.g. {passenger_count: 0.8}")
    feedback_retries: int = Field(1, ge=0, le=5, description="re-asks with the validation errors fed back")
    accept_without_confidence: bool = Field(False, description="accept valid answers when no logprobs exist")
    self_consistency: int = Field(0, ge=0, le=20, description=(
        "without logprobs, draw this many answers in all and use their agreement as the confidence (k calls)"))
    sample_temperature: float = Field(0.7, gt=0.0, le=2.0, description="temperature of the extra samples")

    @field_validator("fields")
    @classmethod
    def _thresholds_in_range(cls, fields: dict[str, float]) -> dict[str, float]:
        bad = [name for name, value in fields.items() if not 0.0 <= value <= 1.0]
        if bad:
            raise ValueError(f"thresholds must be between 0 and 1: {', '.join(bad)}")
        return fields

    def threshold_for(self, field_name: str) -> float:
        return self.fields.get(field_name, self.threshold)


class Example(_Strict):
    input: str = Field(min_length=1)
    output: Any


class TaskSpec(_Strict):
    """Fields shared by every kind of task."""

    name: str = Field(min_length=1)
    kind: str
    instruction: str = Field(min_length=1, description="What the annotator must do, in one or two sentences")
    guidelines: str = ""
    examples: list[Example] = []
    rules: list[Rule] = []
    validators: list[str] = Field([], description="custom validators: 'module:function' or entry-point names")
    review: ReviewSettings = ReviewSettings()
    prompt: PromptSettings = PromptSettings()
    model: ModelSettings = ModelSettings()
    input: InputSettings = InputSettings()

    @field_validator("rules", mode="before")
    @classmethod
    def _strings_as_rules(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"rule": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def output_fields(self) -> list[str]:
        return list(self.output_schema()["properties"])

    def output_schema(self) -> dict[str, Any]:
        """The JSON Schema every model answer must satisfy."""
        raise NotImplementedError

    def output_description(self) -> str:
        """Prompt text that tells the model what to answer."""
        raise NotImplementedError

    def guided_schema(self) -> dict[str, Any] | None:
        """The schema the model's decoding is bound to (None: free text, as in label scoring)."""
        return self.output_schema()

    def answer_text(self, output: Any) -> str:
        """How a model writes ``output`` (few-shot examples): JSON."""
        return json.dumps(output, ensure_ascii=False)

    @model_validator(mode="after")
    def _rules_and_validators_load(self) -> "TaskSpec":
        from .validate import check_rule, load_validator  # validate depends on spec, not the reverse

        for index, rule in enumerate(self.rules):
            problem = check_rule(rule.rule, self.output_fields)
            if problem:
                raise _LocatedError(("rules", index), f"rule {rule.rule!r}: {problem}")
        for index, name in enumerate(self.validators):
            try:
                load_validator(name)
            except ValueError as exc:
                raise _LocatedError(("validators", index), str(exc)) from None
        unknown = sorted(set(self.review.fields) - set(self.output_fields))
        if unknown:
            raise _LocatedError(("review", "fields"), f"not output fields: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _examples_match_schema(self) -> "TaskSpec":
        validator = jsonschema.Draft202012Validator(self.output_schema())
        for index, example in enumerate(self.examples):
            error = jsonschema.exceptions.best_match(validator.iter_errors(example.output))
            if error is not None:
                raise _LocatedError(("examples", index, "output"), f"does not match the output schema: {error.message}")
        return self


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


AnySpec = Annotated[Union[ClassifySpec, ExtractSpec], Field(discriminator="kind")]
_SPEC_ADAPTER: TypeAdapter[AnySpec] = TypeAdapter(AnySpec)
_SPEC_CLASSES: dict[str, type[TaskSpec]] = {"classify": ClassifySpec, "extract": ExtractSpec}
KINDS = tuple(_SPEC_CLASSES)


class _LocatedError(ValueError):
    """A validation error raised with the path of the key it concerns."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        self.loc = loc
        super().__init__(message)


def parse_spec(text: str, filename: str = SPEC_FILENAME) -> TaskSpec:
    """Parse and validate a task spec from YAML text; errors name the line and key."""
    data, lines = load_with_lines(text, filename)
    if not isinstance(data, dict):
        raise SpecError(filename, 1, "", "the task spec must be a YAML mapping")
    if data.get("kind") not in KINDS:
        line = line_of(lines, ("kind",)) or 1
        raise SpecError(filename, line, "kind", f"must be one of {', '.join(KINDS)} (got {data.get('kind')!r})")
    try:
        return _SPEC_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _spec_error(exc, lines, filename, _SPEC_CLASSES[data["kind"]]) from None


def load_spec(path: str | Path) -> TaskSpec:
    """Read and validate a task spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), None, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), None, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_spec(text, str(path))


def _spec_error(exc: ValidationError, lines: dict, filename: str, spec_class: type[TaskSpec]) -> SpecError:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains the rest
    err = errors[0]
    loc = tuple(p for p in err["loc"] if p not in KINDS)  # drop the union tag
    message = err["msg"].removeprefix("Value error, ")
    located = err.get("ctx", {}).get("error")
    if isinstance(located, _LocatedError):
        loc = located.loc
    if loc and loc[0] == "json_schema":
        loc = ("schema",) + loc[1:]
    if err["type"] == "extra_forbidden":
        message += _did_you_mean(loc, spec_class)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    key = ".".join(str(p) for p in loc)
    return SpecError(filename, line_of(lines, loc), key, message + more)


def _did_you_mean(loc: tuple[str | int, ...], spec_class: type[TaskSpec]) -> str:
    """Suggest the allowed key closest to an unknown one."""
    model: type[BaseModel] | None = spec_class
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return ""
    names = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def template_names() -> list[str]:
    """Names of the bundled task templates."""
    folder = resources.files("labelloop") / "templates"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def template_text(name: str) -> str:
    """The YAML text of a bundled template (kept verbatim, comments included)."""
    if name not in template_names():
        raise SpecError(name, None, "", f"unknown template; choose one of {', '.join(template_names())}")
    return (resources.files("labelloop") / "templates" / f"{name}.yaml").read_text(encoding="utf-8")


def _type_text(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _json_text(value: Any) -> str:
    return "null" if value is None else str(value)
