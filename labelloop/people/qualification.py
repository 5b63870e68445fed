"""Qualification: with ``annotation.qualify: {items, pass}``, a registered annotator first answers rounds of
``items`` test questions; the first round whose accuracy reaches ``pass`` qualifies them. Until then their
answers to ordinary items are kept but do not count, and after they qualify only the answers given since count
(:func:`counted`). A failed round shows the right answers with the guideline text of each label missed
(:func:`feedback`). Experts, and people whose answers were imported, need no qualification.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..spec import TaskSpec
from ..store import Store


@dataclass
class Round:
    number: int
    answered: int
    correct: int
    passed: bool
    missed: list[dict[str, Any]] = field(default_factory=list)  # item_id, given, right

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else 0.0


@dataclass
class Qualification:
    """Where one reviewer stands."""

    required: bool
    qualified: bool
    qualified_at: str | None = None
    rounds: list[Round] = field(default_factory=list)  # finished rounds
    in_round: int = 0  # answers given in the round under way
    size: int = 0  # questions per round

    @property
    def left_in_round(self) -> int:
        return self.size - self.in_round

    @property
    def qualifying_now(self) -> bool:
        return self.required and not self.qualified


def qualification(store: Store, spec: TaskSpec, reviewer: str, role: str | None = None) -> Qualification:
    """Where ``reviewer`` stands (``role``: theirs, looked up when not given)."""
    settings = spec.annotation.qualify
    role = role if role is not None else store.reviewer_role(reviewer)
    if settings is None or role != "annotator":
        return Qualification(required=False, qualified=True)
    tests = store.test_questions()
    answers = [r for r in store.test_answers(reviewer) if r["purpose"] == "qualify"]
    state = Qualification(required=True, qualified=False, size=settings.items)
    for start in range(0, len(answers) - settings.items + 1, settings.items):
        chunk = answers[start : start + settings.items]
        correct = sum(r["correct"] for r in chunk)
        passed = correct / len(chunk) >= settings.pass_
        missed = [{"item_id": r["item_id"], "given": json.loads(r["output"]),
                   "right": tests.get(r["item_id"], {}).get("answer")} for r in chunk if not r["correct"]]  # fmt: skip
        state.rounds.append(Round(len(state.rounds) + 1, len(chunk), correct, passed, missed))
        if passed:
            state.qualified, state.qualified_at = True, chunk[-1]["created_at"]
            break
    state.in_round = 0 if state.qualified else len(answers) % settings.items
    return state


def counted(store: Store, spec: TaskSpec) -> Callable[[Any], bool]:
    """Whether a people's answer row (``annotator``, ``created_at``) counts: not before its annotator qualified."""
    if spec.annotation.qualify is None:
        return lambda row: True
    since: dict[str, str | None] = {}
    for reviewer in store.reviewers():
        if reviewer["role"] == "annotator":
            since[reviewer["name"]] = qualification(store, spec, reviewer["name"], "annotator").qualified_at
    return lambda row: row["annotator"] not in since or (since[row["annotator"]] or "~") <= row["created_at"]


def feedback(store: Store, spec: TaskSpec, round_: Round) -> list[dict[str, Any]]:
    """Each question missed in a round: its text, the answer given, the right one, and the guideline text of
    every label the right answer has (or the task's guidelines where labels have none)."""
    labels = getattr(spec, "labels", None) or []  # classify, multilabel, spans, intent_slots: name, description
    descriptions = {label.name: label.description for label in labels if getattr(label, "description", None)}
    texts = store.item_texts([m["item_id"] for m in round_.missed])
    out = []
    for missed in round_.missed:
        right = missed["right"] or {}
        labels = [v for value in right.values() for v in (value if isinstance(value, list) else [value])]
        guidance = [f"{label}: {descriptions[label]}" for label in map(str, labels) if descriptions.get(label)]
        out.append({**missed, "text": texts.get(missed["item_id"], ""),
                    "guidance": guidance or ([spec.guidelines.strip()] if spec.guidelines else [])})  # fmt: skip
    return out
