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
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._extras import require
from .answers import Votes, compose, family, majority, questions
from .errors import ProjectError
from .people.qualification import counted
from .spec import TaskSpec
from .store import Store

METHODS = ("single", "majority", "dawid_skene", "one_coin", "glad", "mace", "wawa", "auto", "expert")


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
    choices: list[Any] = field(default_factory=list)  # auto: the method of each question family, and why


@dataclass
class AggregateResult:
    """What an aggregation decided."""

    method: str
    items: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    disputed: int = 0
    skipped: bool = False  # nothing changed since the last aggregation
    annotator_errors: Errors = field(default_factory=dict)
    chosen: list[dict[str, Any]] = field(default_factory=list)  # per question family: method, criterion, scores

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "items": self.items,
            "by_method": dict(self.by_method),
            "disputed": self.disputed,
            "skipped": self.skipped,
            "reliability": self.reliability(),
            "annotator_errors": self.annotator_errors,
            "chosen": self.chosen,
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


def crowd(
    spec: TaskSpec, items: Mapping[str, Votes], method: Callable[[str, Any], Any]
) -> tuple[dict[str, tuple[dict[str, Any], float, bool]], Errors, list[Any]]:
    """A crowd method per question family over all items (``method(family, frame)`` gives the family's
    :class:`~labelloop.aggregation_method.Choice`): ``{item: (output, lowest posterior, tied)}``, each annotator's
    Dawid-Skene confusion matrices (where Dawid-Skene decided), and the choices."""
    try:
        from .aggregation_method import fit, frame_of
    except ImportError:
        raise ProjectError(
            f"annotation.aggregate: {spec.annotation.aggregate} needs crowd-kit: pip install 'labelloop[agree]'"
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
    choices = []
    ties: set[str] = set()
    for name, fam_rows in rows.items():
        frame = frame_of(fam_rows)
        choice = method(name, frame)
        choices.append(choice)
        if frame["label"].nunique() < 2:
            best = frame.groupby("task")["label"].first()
            probs = best.map(lambda _: 1.0)
        else:
            found, confusion = fit(choice.method, frame)
            best, probs = found.idxmax(axis=1), found.max(axis=1)
            tied = (found.to_numpy() >= probs.to_numpy()[:, None] - 1e-9).sum(axis=1) > 1
            ties.update(json.loads(task)[0] for task in found.index[tied])  # no decision: an expert's
            if confusion is not None:
                errors[name] = _confusion_matrices(confusion)
        for task, label in best.items():
            item, question = json.loads(task)
            decided[item][question] = json.loads(label)
            posterior[item] = min(posterior[item], float(probs[task]))
    decisions = {item: (compose(spec, items[item], decided[item]), posterior[item], item in ties) for item in asked}
    return decisions, errors, choices


def crowd_kit_installed() -> bool:
    """Whether the crowd methods can run (the ``agree`` extra); without them ``auto`` is majority vote."""
    try:
        import crowdkit.aggregation  # noqa: F401
    except ImportError:
        return False
    return True


def _always(method: str) -> Callable[[str, Any], Any]:
    """``annotation.aggregate``'s method for every family (``auto`` without known answers: see
    :func:`auto_chooser` for the choice with them)."""
    from .aggregation_method import Choice, choose

    if method == "auto":
        return lambda family_name, frame: choose(family_name, frame, {})
    return lambda family_name, frame: Choice(family_name, method, "annotation.aggregate")


def _method_of(choices: list[Any]) -> str:
    """An item's method: the one every family used, or ``auto`` when families chose differently."""
    methods = {c.method for c in choices}
    return methods.pop() if len(methods) == 1 else "auto"


def auto_chooser(store: Store, spec: TaskSpec) -> Callable[[str, Any], Any]:
    """``auto``'s choice per family: known answers are the experts' decisions and the test questions, whose
    answers join the candidates' fits for the choice only (never the decisions)."""
    from .aggregation_method import REFIT_GROWTH, Choice, choose, frame_of

    truth: dict[str, dict[str, str]] = {}  # family -> task -> known value (JSON)
    extra: dict[str, list[tuple[str, str, Hashable]]] = {}
    experts = {item: {"expert": json.loads(row["output"])} for item, row in store.adjudications().items()}
    known = {item: {"known": q["answer"]} for item, q in store.test_questions().items()}
    for item, votes in [*experts.items(), *known.items()]:
        for question, values in _questions(spec, votes).items():
            task = json.dumps([item, question], ensure_ascii=False)
            truth.setdefault(family(question), {})[task] = json.dumps(next(iter(values.values())), ensure_ascii=False)
    tested: dict[str, dict[str, Any]] = {}
    for row in store.test_answers():
        tested.setdefault(row["item_id"], {})[row["annotator"]] = json.loads(row["output"])
    for item, votes in tested.items():
        for question, values in _questions(spec, votes).items():
            task = json.dumps([item, question], ensure_ascii=False)
            extra.setdefault(family(question), []).extend((task, a, v) for a, v in values.items())

    last = store.last_aggregation()
    kept = {c["family"]: c for c in json.loads(last["details"] or "{}").get("chosen", [])} if last else {}

    def chooser(family_name: str, frame: Any) -> Any:
        import pandas as pd

        tasks = int((frame.groupby("task").size() >= 2).sum())
        before = kept.get(family_name)
        if before is not None and before.get("tasks", 0) and tasks < REFIT_GROWTH * before["tasks"]:
            return Choice(family_name, before["method"], before["criterion"] + " (kept)", before["scores"],
                          before["tasks"])  # fmt: skip
        with_tests = pd.concat([frame, frame_of(extra.get(family_name, []))], ignore_index=True)
        return choose(family_name, with_tests, truth.get(family_name, {}))

    return chooser


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


def decide(
    spec: TaskSpec,
    items: Mapping[str, Votes],
    experts: Mapping[str, Any],
    chooser: Callable[[str, Any], Any] | None = None,
) -> Aggregation:
    """Each item's decision by the task's method (``auto``: ``chooser`` picks one per question family); the
    expert's adjudication overrides it."""
    settings = spec.annotation
    fitted: dict[str, tuple[dict[str, Any], float, bool]] = {}
    errors: Errors = {}
    choices: list[Any] = []
    if settings.aggregate != "majority" and (settings.aggregate != "auto" or crowd_kit_installed()):
        fitted, errors, choices = crowd(spec, items, chooser or _always(settings.aggregate))
    decisions: dict[str, Decision] = {}
    for item, votes in items.items():
        voters = sorted(votes)
        if len(votes) == 1:
            decisions[item] = Decision(next(iter(votes.values())), "single", voters, None, 1)
        elif item in fitted:
            output, posterior, tied = fitted[item]
            disputed = tied or posterior < settings.min_agreement
            decisions[item] = Decision(output, _method_of(choices), voters, posterior, len(votes), disputed=disputed)
        else:
            output, share, tie = majority_vote(spec, votes)
            decisions[item] = Decision(
                output, "majority", voters, share, len(votes), disputed=tie or share < settings.min_agreement
            )
    for item, row in experts.items():
        decisions[item] = Decision(
            json.loads(row["output"]), "expert", [row["annotator"]], 1.0, len(items.get(item, {}))
        )
    return Aggregation(decisions, errors, choices)


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
    chooser = auto_chooser(store, spec) if settings.aggregate == "auto" and crowd_kit_installed() else None
    aggregation = decide(spec, collect_votes(store, spec), store.adjudications(), chooser)
    decisions = aggregation.decisions
    chosen = [vars(c) for c in aggregation.choices]
    if settings.aggregate == "auto" and not crowd_kit_installed():
        chosen = [{"family": "every question", "method": "majority", "criterion": "the agree extra is not"
                   " installed (pip install 'labelloop[agree]'): majority vote", "scores": {}, "tasks": 0}]  # fmt: skip
    store.replace_gold(decisions, settings.aggregate, watermark,
                       {"annotator_errors": aggregation.annotator_errors, "chosen": chosen})  # fmt: skip
    result.items = len(decisions)
    result.by_method.update(d.method for d in decisions.values())
    result.disputed = sum(d.disputed for d in decisions.values())
    result.annotator_errors = aggregation.annotator_errors
    result.chosen = chosen
    return result
