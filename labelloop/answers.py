"""Answers as questions: the common form that aggregation and agreement work on.

Every answer is split into *questions* with categorical values, so one method serves every task kind:

- a scalar field (a label, a rating, a city) is one question whose value is the field's value (as JSON);
- a set field (multi-label ``labels``, span ``entities``) is one yes/no question per element: "does the
  answer contain this label / this mention?" For enumerated sets every allowed label is asked.

Questions fall into *families* that share one annotator confusion matrix: a scalar field, or one label
of a set field (``labels[CAUSES]``, ``entities[DRUG]``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

from .spec import TaskSpec

Votes = Mapping[str, dict[str, Any]]  # annotator -> output

ItemT = TypeVar("ItemT", bound=Hashable)
RaterT = TypeVar("RaterT", bound=Hashable)
Annotations = Mapping[ItemT, Mapping[RaterT, Hashable]]  # item -> annotator -> answer (any hashable ids)


def canonical(output: Any) -> str:
    """One string per distinct answer (keys sorted), for comparing answers as categories."""
    return json.dumps(output, ensure_ascii=False, sort_keys=True)


def comparable(output: dict[str, Any]) -> str:
    """One string per answer as people mean it: sets in any order are one answer, and a mention is its text,
    label and offsets (a model's extra keys left out)."""
    return canonical({k: sorted(map(_element, v)) if isinstance(v, list) else v for k, v in output.items()})


def _element(element: Any) -> str:
    if isinstance(element, dict):
        return canonical({k: element[k] for k in ("text", "label", "start", "end") if k in element})
    return canonical(element)


def set_fields(spec: TaskSpec) -> dict[str, list[Any] | None]:
    """Array fields of the output, with their allowed elements when the schema enumerates them."""
    props = spec.output_schema()["properties"]
    return {
        name: (prop.get("items") or {}).get("enum")
        for name, prop in props.items()
        if "array" in (prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")])
    }


def _element_key(element: Any) -> str:
    if isinstance(element, dict) and {"start", "end", "label"} <= set(element):
        return json.dumps([element["start"], element["end"], element["label"]], ensure_ascii=False)
    return json.dumps(element, ensure_ascii=False, sort_keys=True)


def questions(spec: TaskSpec, votes: Votes, whole_sets: bool = False) -> dict[str, dict[str, Hashable]]:
    """``{question: {annotator: value}}`` for one item; see the module docstring. With ``whole_sets`` a set
    field is one question whose value is the whole set (its elements sorted)."""
    sets = set_fields(spec)
    out: dict[str, dict[str, Hashable]] = {}
    for name in spec.output_fields:
        if name in sets and whole_sets:
            out[name] = {
                annotator: canonical(sorted(output.get(name) or [], key=_element_key))
                for annotator, output in votes.items()
            }
        elif name in sets:
            allowed = sets[name]
            keys = (
                [_element_key(e) for e in allowed]
                if allowed is not None
                else sorted({_element_key(e) for output in votes.values() for e in output.get(name) or []})
            )
            for key in keys:
                out[f"{name}={key}"] = {}
            for annotator, output in votes.items():
                chosen = {_element_key(e) for e in output.get(name) or []}
                for key in keys:
                    out[f"{name}={key}"][annotator] = key in chosen
        else:
            out[name] = {annotator: canonical(output.get(name)) for annotator, output in votes.items()}
    return out


def family(question: str) -> str:
    """The questions that share one confusion matrix: a field, or one label of a set field."""
    name, _, element = question.partition("=")
    if not element:
        return name
    value = json.loads(element)
    return f"{name}[{value[2] if isinstance(value, list) and len(value) == 3 else value}]"


def compose(spec: TaskSpec, votes: Votes, answers: Mapping[str, Hashable]) -> dict[str, Any]:
    """An output from decided questions; set elements keep the form an annotator wrote them in."""
    sets = {name: enum for name, enum in set_fields(spec).items() if name not in answers}
    written = {(name, _element_key(e)): e for output in votes.values() for name in sets for e in output.get(name) or []}
    output: dict[str, Any] = {}
    for name in spec.output_fields:
        if name in sets:
            output[name] = [
                written.get((name, q.partition("=")[2]), json.loads(q.partition("=")[2]))
                for q, value in answers.items()
                if q.partition("=")[0] == name and value is True
            ]
        else:
            value = answers[name]
            assert isinstance(value, str), "a scalar question's value is its field's value as JSON"
            output[name] = json.loads(value)
    return output


def majority(annotations: Annotations[ItemT, RaterT]) -> dict[ItemT, dict[str, Any]]:
    """Majority answer per item: ``value``, its ``share`` of the item's answers, and ``tie``.

    On a tie, ``value`` is the tied answer that sorts first by ``repr`` (deterministic) and ``tie``
    is True, so callers can route tied items to review. Items without answers are left out.
    """
    out: dict[ItemT, dict[str, Any]] = {}
    for item, raters in annotations.items():
        counts = Counter(raters.values())
        if not counts:
            continue
        top = max(counts.values())
        winners = sorted((v for v, c in counts.items() if c == top), key=repr)
        out[item] = {"value": winners[0], "share": top / len(raters), "tie": len(winners) > 1}
    return out
