"""The fields and behaviour every kind of task shares."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic import Field, field_validator, model_validator

from ..rules import check_rule, load_validator
from .settings import (
    AnnotationSettings,
    CleanSettings,
    DedupSettings,
    Example,
    InputSettings,
    LearnSettings,
    ModelSettings,
    MonitorSettings,
    PiiSettings,
    PromptSettings,
    ReviewSettings,
    Rule,
    _Strict,
)


class _LocatedError(ValueError):
    """A validation error raised with the path of the key it concerns."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        self.loc = loc
        super().__init__(message)


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
    annotation: AnnotationSettings = AnnotationSettings()
    learn: LearnSettings = LearnSettings()
    clean: CleanSettings | None = None
    pii: PiiSettings | None = None
    dedup: DedupSettings = DedupSettings()
    monitor: MonitorSettings = MonitorSettings()
    prompt: PromptSettings = PromptSettings()
    model: ModelSettings = ModelSettings()
    input: InputSettings = InputSettings()
    store: str | None = Field(
        None,
        description="where the project's data lives: a postgresql:// URL, or a SQLite file relative to this spec;"
        " unset = labelloop.db beside it (LABELLOOP_DATABASE_URL overrides both)",
    )

    @field_validator("store")
    @classmethod
    def _store_location(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"{value.split('://')[0]}:// is not a store; use postgresql://… or a SQLite file path")
        return value

    @field_validator("rules", mode="before")
    @classmethod
    def _strings_as_rules(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"rule": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def output_fields(self) -> list[str]:
        return list(self.output_schema()["properties"])

    @property
    def threshold_keys(self) -> list[str]:
        """What ``review.fields`` may name: the output fields (and, for multilabel, each label)."""
        return self.output_fields

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
    def _rules_and_validators_load(self) -> TaskSpec:
        for index, rule in enumerate(self.rules):
            problem = check_rule(rule.rule, self.output_fields)
            if problem:
                raise _LocatedError(("rules", index), f"rule {rule.rule!r}: {problem}")
        for index, name in enumerate(self.validators):
            try:
                load_validator(name)
            except ValueError as exc:
                raise _LocatedError(("validators", index), str(exc)) from None
        unknown = sorted(set(self.review.fields) - set(self.threshold_keys))
        if unknown:
            raise _LocatedError(("review", "fields"), f"not output fields: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _examples_match_schema(self) -> TaskSpec:
        validator = jsonschema.Draft202012Validator(self.output_schema())
        for index, example in enumerate(self.examples):
            error = jsonschema.exceptions.best_match(validator.iter_errors(example.output))
            if error is not None:
                raise _LocatedError(("examples", index, "output"), f"does not match the output schema: {error.message}")
        return self
