"""How good a variant's answers are against gold, by the task's kind, and which items it got right.

Each kind has a primary metric (the one verdicts compare) and details:

- classify: accuracy; macro F1, per-label precision/recall/F1 and the confusion matrix;
- multilabel: macro F1 over the labels that occur; per-label precision/recall/F1, exact-set accuracy;
- extract, intent_slots: exact match of the whole answer; exact match per field;
- spans: strict span F1 (same offsets, or the same text where a side has none, and the same label);
- rate: mean absolute error (lower is better); exact accuracy and quadratic-weighted κ.

An item is *right* (for McNemar's test) when its whole answer equals gold; a missing answer (a failed call, an
unparsable reply) is wrong everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, precision_recall_fscore_support

from ..answers import comparable
from ..spec import TaskSpec
from .significance import Metric, mean_of

Output = dict[str, Any] | None


@dataclass
class Quality:
    """A variant's quality on the gold items."""

    metric: str  # the primary metric's name
    value: float
    higher_is_better: bool
    correct: list[bool]  # per gold item: the whole answer equals gold
    primary: Metric  # the primary metric on the items at given indices (for the paired bootstrap)
    details: dict[str, Any] = field(default_factory=dict)


def score(spec: TaskSpec, gold: Sequence[dict[str, Any]], predicted: Sequence[Output]) -> Quality:
    """The variant's quality: ``predicted[i]`` is its answer to the item whose reference answer is ``gold[i]``."""
    if len(gold) != len(predicted) or not gold:
        raise ValueError("one answer per gold item, and at least one gold item")
    correct = [p is not None and comparable(p) == comparable(g) for g, p in zip(gold, predicted, strict=True)]
    scorer = _SCORERS.get(spec.kind)
    if scorer is None:
        raise ValueError(f"a {spec.kind} task has no answer to check against gold")
    return scorer(spec, list(gold), list(predicted), correct)


def _classify(spec: Any, gold: list[dict], predicted: list[Output], correct: list[bool]) -> Quality:
    labels = spec.label_names
    truth = [g["label"] for g in gold]
    guess = [p.get("label") if p else None for p in predicted]
    guess = [g if g in labels else "(none)" for g in guess]
    macro = float(f1_score(truth, guess, labels=labels, average="macro", zero_division=0))
    return Quality(
        "accuracy", float(np.mean(correct)), True, correct, mean_of(correct),
        {"macro_f1": macro, "per_label": _per_label(truth, guess, labels),
         "confusion": {"labels": labels + ["(none)"],
                       "matrix": confusion_matrix(truth, guess, labels=labels + ["(none)"]).tolist()}},
    )  # fmt: skip


def _per_label(truth: list[Any], guess: list[Any], labels: list[str]) -> dict[str, dict[str, float]]:
    p, r, f, s = precision_recall_fscore_support(truth, guess, labels=labels, zero_division=0)
    return {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }


def _multilabel(spec: Any, gold: list[dict], predicted: list[Output], correct: list[bool]) -> Quality:
    labels = spec.label_names
    name = spec.output_fields[0]
    truth = np.array([[label in (g.get(name) or []) for label in labels] for g in gold])
    guess = np.array([[label in ((p or {}).get(name) or []) for label in labels] for p in predicted])

    def macro(indices: np.ndarray) -> float:
        """Over the labels that occur in the gold or the answers of these items (one absent from both is
        neither right nor wrong there)."""
        t, g = truth[indices], guess[indices]
        present = t.any(axis=0) | g.any(axis=0)
        if not present.any():
            return 1.0
        return float(f1_score(t[:, present], g[:, present], average="macro", zero_division=0))

    p, r, f, s = precision_recall_fscore_support(truth, guess, zero_division=0)
    per_label = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    everything = np.arange(len(gold))
    return Quality("macro F1", macro(everything), True, correct, macro,
                   {"exact_set_accuracy": float(np.mean(correct)), "per_label": per_label})  # fmt: skip


def _fields(spec: Any, gold: list[dict], predicted: list[Output], correct: list[bool]) -> Quality:
    per_field = {}
    for name in spec.output_fields:
        same = [p is not None and comparable({name: p.get(name)}) == comparable({name: g.get(name)})
                for g, p in zip(gold, predicted, strict=True)]  # fmt: skip
        per_field[name] = float(np.mean(same))
    return Quality("exact match", float(np.mean(correct)), True, correct, mean_of(correct),
                   {"per_field_exact_match": per_field})  # fmt: skip


def _spans(spec: Any, gold: list[dict], predicted: list[Output], correct: list[bool]) -> Quality:
    name = spec.mentions_field
    truth = [_mentions(g.get(name)) for g in gold]
    guess = [_mentions((p or {}).get(name)) for p in predicted]
    hits = np.array([_matched(t, g) for t, g in zip(truth, guess, strict=True)])
    sizes = np.array([[len(t), len(g)] for t, g in zip(truth, guess, strict=True)])

    def micro_f1(indices: np.ndarray) -> float:
        tp, (n_true, n_guess) = hits[indices].sum(), sizes[indices].sum(axis=0)
        return 1.0 if n_true + n_guess == 0 else float(2 * tp / (n_true + n_guess))

    tp, (n_true, n_guess) = int(hits.sum()), sizes.sum(axis=0)
    details = {"precision": tp / n_guess if n_guess else 1.0, "recall": tp / n_true if n_true else 1.0,
               "exact_item_accuracy": float(np.mean(correct))}  # fmt: skip
    return Quality("span F1", micro_f1(np.arange(len(gold))), True, correct, micro_f1, details)


def _mentions(value: Any) -> list[dict[str, Any]]:
    return [m for m in value or [] if isinstance(m, dict)]


def _matched(truth: list[dict], guess: list[dict]) -> int:
    """Mentions of ``guess`` that match one of ``truth`` (label and offsets, or text where offsets are missing)."""
    left = list(truth)
    found = 0
    for mention in guess:
        for other in left:
            by = ("start", "end") if {"start", "end"} <= mention.keys() & other.keys() else ("text",)
            if mention.get("label") == other.get("label") and all(mention.get(k) == other.get(k) for k in by):
                left.remove(other)
                found += 1
                break
    return found


def _rate(spec: Any, gold: list[dict], predicted: list[Output], correct: list[bool]) -> Quality:
    values = [level.value for level in spec.levels]
    worst = max(values) - min(values)  # a missing rating counts as the largest possible error
    truth = [g["rating"] for g in gold]
    errors = [abs(p["rating"] - t) if p and isinstance(p.get("rating"), int) else worst
              for t, p in zip(truth, predicted, strict=True)]  # fmt: skip
    guess = [p["rating"] if p and p.get("rating") in values else None for p in predicted]
    rated = [(t, g) for t, g in zip(truth, guess, strict=True) if g is not None]
    kappa = float(cohen_kappa_score(*zip(*rated), weights="quadratic", labels=values)) if len(rated) > 1 else None
    return Quality("mean absolute error", float(np.mean(errors)), False, correct, mean_of(errors),
                   {"accuracy": float(np.mean(correct)), "weighted_kappa": kappa})  # fmt: skip


_SCORERS = {
    "classify": _classify,
    "multilabel": _multilabel,
    "extract": _fields,
    "intent_slots": _fields,
    "spans": _spans,
    "rate": _rate,
}


def as_json(quality: Quality) -> dict[str, Any]:
    """What ``compare --json`` and the stored comparison keep of a quality."""
    return json.loads(
        json.dumps({"metric": quality.metric, "value": quality.value, "higher_is_better": quality.higher_is_better,
                    "correct": sum(quality.correct), "items": len(quality.correct), **quality.details})
    )  # fmt: skip
