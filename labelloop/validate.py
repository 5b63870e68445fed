"""Validation: parse the model's answer, check it against the schema, the rules and custom validators.

Every problem is recorded with its kind and field; a repaired answer is flagged, never treated as clean.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import json_repair
import jsonschema
import simpleeval

from . import grounding
from .rules import ALLOWED_FUNCTIONS, load_validator
from .spans import ground
from .spec import ClassifySpec, CoherenceSpec, MentionSpec, QaGenerateSpec, QaSpec, TaskSpec
from .store import Item


@dataclass(frozen=True)
class Problem:
    """One reason an answer cannot be trusted as it is."""

    kind: str  # "parse", "schema", "span", "overlap", "vocabulary", "rule", "custom", or a grounding.REASONS key
    message: str
    field: str | None = None

    def reason(self) -> str:
        """The routing reason, e.g. ``invalid[time]`` or ``invalid[rule: departure_city != arrival_city]``."""
        if self.kind == "parse":
            return "unparsable"
        if self.kind == "span":
            return "ungrounded"
        if self.kind == "overlap":
            return "label_conflict"
        if self.kind == "vocabulary":
            return f"vocabulary[{self.field}]"
        if self.kind in grounding.REASONS:
            return grounding.REASONS[self.kind]
        target = self.field if self.kind == "schema" and self.field else f"{self.kind}: {self.message}"
        return f"invalid[{target}]"


@dataclass
class Validation:
    """The outcome of validating one answer."""

    output: dict[str, Any] | None
    repaired: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.output is not None and not self.problems

    def problems_json(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.problems]

    def feedback(self) -> str:
        """A message telling the model what to fix."""
        lines = [f"- {p.field + ': ' if p.field else ''}{p.message}" for p in self.problems]
        return (
            "Your answer has these problems:\n"
            + "\n".join(lines)
            + "\nAnswer again with one corrected JSON object and nothing else."
        )


def parse_answer(spec: TaskSpec, text: str) -> tuple[dict[str, Any] | None, bool]:
    """Strict JSON first, then json-repair; returns (object or None, repaired).

    In label scoring (classify with ``scoring: logprob``) the answer is the bare label.
    """
    if isinstance(spec, ClassifySpec) and spec.scores_bare_label:
        label = spec.label_from_text(text)
        return ({"label": label} if label else None), False
    try:
        value = json.loads(text)
        return (value, False) if isinstance(value, dict) else (None, False)
    except ValueError:
        pass
    repaired = json_repair.loads(text)
    return (repaired, True) if isinstance(repaired, dict) and repaired else (None, True)


def validate_answer(spec: TaskSpec, text: str, item: Item) -> Validation:
    """Parse ``text`` and run every check the spec defines."""
    output, repaired = parse_answer(spec, text)
    if output is None:
        expected = "one of the labels" if isinstance(spec, ClassifySpec) and spec.scores_bare_label else "a JSON object"
        return Validation(None, repaired, [Problem("parse", f"not {expected}: {_snippet(text)}")])
    problems = _schema_problems(spec, output)
    if not problems and isinstance(spec, MentionSpec):
        output, problems = _grounded(spec, output, item)
    elif not problems:
        output, problems = _grounded_quotes(spec, output, item)
    if not problems:  # rules and validators may assume the schema holds
        problems = _rule_problems(spec, output, item) + _custom_problems(spec, output, item)
    return Validation(output, repaired, problems)


def _grounded(spec: MentionSpec, output: dict[str, Any], item: Item) -> tuple[dict[str, Any], list[Problem]]:
    """Find each mention's offsets in the item text; a mention that is not there is ``ungrounded``."""
    field_name = spec.mentions_field
    found = ground(item.text, output[field_name], overlaps=spec.overlaps)
    mentions = [{"text": span.text, "label": span.label, "start": span.start, "end": span.end} for span in found.spans]
    problems = [
        Problem("span", f"{entity.get('text')!r} ({entity.get('label')}): {entity['reason']}", field_name)
        for entity in found.ungrounded
    ]
    problems += [
        Problem("overlap", f"{span.text!r} ({span.label}): {why}", field_name)
        for span, why in found.dropped
        if "label conflict" in why
    ]  # one text, two labels: ask a person
    vocabularies = getattr(spec, "vocabulary_terms", {})
    problems += [
        Problem("vocabulary", f"{span.text!r} is not in the {span.label} vocabulary", span.label)
        for span in found.spans
        if span.label in vocabularies and span.text not in vocabularies[span.label]
    ]
    return {**output, field_name: mentions}, problems


def _grounded_quotes(spec: TaskSpec, output: dict[str, Any], item: Item) -> tuple[dict[str, Any], list[Problem]]:
    """The document kinds' quotes found in their text (see :mod:`labelloop.grounding`)."""
    if isinstance(spec, QaSpec):
        output, found = grounding.qa_problems(output, item.fields.get(grounding.PASSAGES, []))
    elif isinstance(spec, QaGenerateSpec):
        output, found = grounding.pair_problems(output, item.text)
    elif isinstance(spec, CoherenceSpec):
        output, found = grounding.coherence_problems(output, item.text, item.fields)
    else:
        return output, []
    return output, [Problem(kind, message, field) for kind, message, field in found]


def _schema_problems(spec: TaskSpec, output: dict[str, Any]) -> list[Problem]:
    validator = _schema_validator(json.dumps(spec.output_schema(), sort_keys=True))
    problems = []
    for error in sorted(validator.iter_errors(output), key=lambda e: list(e.absolute_path)):
        path: str | None = ".".join(str(p) for p in error.absolute_path)
        if not path and error.validator == "required":
            path = error.message.split("'")[1] if "'" in error.message else None
        problems.append(Problem("schema", error.message, path or None))
    return problems


@lru_cache(maxsize=32)
def _schema_validator(schema_json: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads(schema_json), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _rule_problems(spec: TaskSpec, output: dict[str, Any], item: Item) -> list[Problem]:
    names = {name: output.get(name) for name in spec.output_fields}
    names.update(output=output, item={"id": item.id, "text": item.text, **item.fields}, text=item.text)
    evaluator = simpleeval.EvalWithCompoundTypes(names=names, functions=dict(ALLOWED_FUNCTIONS))
    problems = []
    for rule in spec.rules:
        try:
            passed = bool(evaluator.eval(rule.rule))
        except Exception as exc:  # a rule that cannot be evaluated on this answer is a failed rule
            problems.append(Problem("rule", f"{rule.name} (could not be evaluated: {exc})"))
            continue
        if not passed:
            problems.append(Problem("rule", rule.name))
    return problems


def _custom_problems(spec: TaskSpec, output: dict[str, Any], item: Item) -> list[Problem]:
    problems: list[Problem] = []
    for name in spec.validators:
        result = load_validator(name)(output, item)
        messages = [result] if isinstance(result, str) else list(result or [])
        problems.extend(Problem("custom", f"{name}: {message}") for message in messages)
    return problems


def _snippet(text: str, size: int = 80) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= size else text[:size] + "…")
