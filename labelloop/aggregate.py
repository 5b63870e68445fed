"""From several answers per item to one gold record: majority vote or Dawid-Skene, then expert adjudication.

Answers are split into categorical questions (:mod:`labelloop.answers`). Majority vote decides each
question by plurality; Dawid-Skene (crowd-kit) fits one confusion matrix per
annotator per *family* of questions (a field, or one label of a set), over people and the models listed in
``annotation.model_votes``, and gives each question a posterior. An item's share (majority) or posterior
(Dawid-Skene) is that of its least certain question; a tie, or a share under ``annotation.min_agreement``,
makes the item *disputed*: it goes to the adjudication queue, where an expert's decision is final.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._extras import require
from .answers import Votes, compose, family, majority, questions
from .errors import ProjectError
from .people.qualification import counted
from .spec import TaskSpec
from .store import Store

METHODS = ("single", "majority", "dawid_skene", "expert")


@dataclass(frozen=True)
class Decision:
    """The gold record of one item."""

    output: dict[str, Any]
    method: str
    decided_by: list[str]
    confidence: float | None
    votes: int
    disputed: bool = False


# family -> annotator -> true value -> answered value -> probability (a Dawid-Skene confusion matrix)
Errors = dict[str, dict[str, dict[str, dict[str, float]]]]


@dataclass
class Aggregation:
    """Every item's decision and, with Dawid-Skene, each annotator's estimated confusion matrices."""

    decisions: dict[str, Decision]
    annotator_errors: Errors = field(default_factory=dict)


@dataclass
class AggregateResult:
    """What an aggregation decided."""

    method: str
    items: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    disputed: int = 0
    skipped: bool = False  # nothing changed since the last aggregation
    annotator_errors: Errors = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "items": self.items,
            "by_method": dict(self.by_method),
            "disputed": self.disputed,
            "skipped": self.skipped,
            "reliability": self.reliability(),
            "annotator_errors": self.annotator_errors,
        }

    def reliability(self) -> dict[str, float]:
        """Per annotator, the mean of the diagonals of their confusion matrices (Dawid-Skene only)."""
        diagonals: dict[str, list[float]] = {}
        for by_annotator in self.annotator_errors.values():
            for annotator, matrix in by_annotator.items():
                diagonals.setdefault(annotator, []).extend(row.get(true, 0.0) for true, row in matrix.items())
        return {annotator: sum(d) / len(d) for annotator, d in diagonals.items() if d}


# -- methods -------------------------------------------------------------------------------------


def _questions(spec: TaskSpec, votes: Votes) -> dict[str, dict[str, Hashable]]:
    return questions(spec, votes, whole_sets=spec.annotation.sets == "whole")


def majority_vote(spec: TaskSpec, votes: Votes) -> tuple[dict[str, Any], float, bool]:
    """Plurality per question: (output, share of the least agreed question, any question tied)."""
    decided = majority(_questions(spec, votes))
    answers = {question: d["value"] for question, d in decided.items()}
    share = min((d["share"] for d in decided.values()), default=1.0)
    return compose(spec, votes, answers), share, any(d["tie"] for d in decided.values())


def dawid_skene(spec: TaskSpec, items: Mapping[str, Votes]) -> tuple[dict[str, tuple[dict[str, Any], float]], Errors]:
    """Dawid-Skene per question family over all items: ``{item: (output, lowest posterior)}`` and each
    annotator's confusion matrix per family."""
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError:
        raise ProjectError(
            "annotation.aggregate: dawid_skene needs crowd-kit: pip install 'labelloop[agree]'"
        ) from None

    asked = {item: _questions(spec, votes) for item, votes in items.items() if len(votes) >= 2}
    rows: dict[str, list[tuple[str, str, Hashable]]] = {}
    for item, qs in asked.items():
        for question, values in qs.items():
            task = json.dumps([item, question], ensure_ascii=False)
            rows.setdefault(family(question), []).extend((task, a, v) for a, v in values.items())
    decided: dict[str, dict[str, Hashable]] = {item: {} for item in asked}
    posterior: dict[str, float] = dict.fromkeys(asked, 1.0)
    errors: Errors = {}
    for name, fam_rows in rows.items():
        frame = pd.DataFrame(fam_rows, columns=["task", "worker", "label"])
        frame["label"] = frame["label"].map(lambda v: json.dumps(v, ensure_ascii=False))  # one dtype for crowd-kit
        if frame["label"].nunique() < 2:
            best = frame.groupby("task")["label"].first()
            probs = pd.Series(1.0, index=best.index)
        else:
            with warnings.catch_warnings():  # crowd-kit still uses pandas keywords that pandas 3 deprecates
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                model = DawidSkene(n_iter=100).fit(frame)
            assert model.probas_ is not None, "fit() sets probas_"
            best, probs = model.probas_.idxmax(axis=1), model.probas_.max(axis=1)
            errors[name] = _confusion_matrices(model.errors_)
        for task, label in best.items():
            item, question = json.loads(task)
            decided[item][question] = json.loads(label)
            posterior[item] = min(posterior[item], float(probs[task]))
    return {item: (compose(spec, items[item], decided[item]), posterior[item]) for item in asked}, errors


def _confusion_matrices(frame: Any) -> dict[str, dict[str, dict[str, float]]]:
    """crowd-kit's ``errors_`` (rows: worker, answered; columns: true) as annotator -> true -> answered."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (worker, answered), row in frame.iterrows():
        for true, probability in row.items():
            out.setdefault(str(worker), {}).setdefault(_plain(true), {})[_plain(answered)] = round(
                float(probability), 4
            )
    return out


def _plain(label: str) -> str:
    """A question's value as people read it: ``positive`` rather than the JSON ``"positive"``."""
    value = json.loads(label)  # what crowd-kit saw: the question's value
    if isinstance(value, str):
        value = json.loads(value)  # a scalar field's value is canonical JSON
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- the gold table ------------------------------------------------------------------------------


def flagged_annotators(store: Store, spec: TaskSpec) -> set[str]:
    """Annotators flagged for retraining (see :mod:`labelloop.people.scores`; needs the ``agree`` extra)."""
    scores = require("labelloop.people.scores", "agree", "annotation.exclude_flagged")
    return {s.name for s in scores.annotator_scores(store, spec) if s.flagged}


def collect_votes(store: Store, spec: TaskSpec) -> dict[str, dict[str, dict[str, Any]]]:
    """``{item: {voter: output}}``: current human answers plus the outputs of ``annotation.model_votes``;
    answers given before an annotator qualified do not count, nor, with ``exclude_flagged``, those of annotators
    flagged for retraining."""
    items: dict[str, dict[str, dict[str, Any]]] = {}
    counts = counted(store, spec)
    left_out = flagged_annotators(store, spec) if spec.annotation.exclude_flagged else set()
    for row in store.current_answers():
        if counts(row) and row["annotator"] not in left_out:
            items.setdefault(row["item_id"], {})[row["annotator"]] = json.loads(row["output"])
    for labeler in spec.annotation.model_votes:
        for item_id, output in store.model_answers(labeler):
            if item_id in items:  # models vote on items people answered; alone they are predictions
                items[item_id][labeler] = output
    return items


def decide(spec: TaskSpec, items: Mapping[str, Votes], experts: Mapping[str, Any]) -> Aggregation:
    """Each item's decision by the task's method; the expert's adjudication overrides it."""
    settings = spec.annotation
    fitted, errors = dawid_skene(spec, items) if settings.aggregate == "dawid_skene" else ({}, {})
    decisions: dict[str, Decision] = {}
    for item, votes in items.items():
        voters = sorted(votes)
        if len(votes) == 1:
            decisions[item] = Decision(next(iter(votes.values())), "single", voters, None, 1)
        elif item in fitted:
            output, posterior = fitted[item]
            decisions[item] = Decision(
                output, "dawid_skene", voters, posterior, len(votes), disputed=posterior < settings.min_agreement
            )
        else:
            output, share, tie = majority_vote(spec, votes)
            decisions[item] = Decision(
                output, "majority", voters, share, len(votes), disputed=tie or share < settings.min_agreement
            )
    for item, row in experts.items():
        decisions[item] = Decision(
            json.loads(row["output"]), "expert", [row["annotator"]], 1.0, len(items.get(item, {}))
        )
    return Aggregation(decisions, errors)


def aggregate(store: Store, spec: TaskSpec, *, force: bool = False) -> AggregateResult:
    """Recompute the gold table from the current answers (skipped when nothing changed, unless ``force``)."""
    settings = spec.annotation
    watermark = json.dumps(
        [
            store.change_watermark(),
            settings.aggregate,
            settings.sets,
            settings.min_agreement,
            settings.model_votes,
            settings.exclude_flagged,
            settings.qualify.model_dump() if settings.qualify else None,
            spec.output_schema(),
        ]
    )
    result = AggregateResult(settings.aggregate)
    if not force and store.last_aggregation_watermark() == watermark:
        result.skipped = True
        return result
    aggregation = decide(spec, collect_votes(store, spec), store.adjudications())
    decisions = aggregation.decisions
    store.replace_gold(decisions, settings.aggregate, watermark, {"annotator_errors": aggregation.annotator_errors})
    result.items = len(decisions)
    result.by_method.update(d.method for d in decisions.values())
    result.disputed = sum(d.disputed for d in decisions.values())
    result.annotator_errors = aggregation.annotator_errors
    return result
