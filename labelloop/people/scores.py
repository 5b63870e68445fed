"""Each annotator's quality, and who is flagged for retraining (needs the ``agree`` extra).

Per annotator: accuracy on test questions with its Wilson 95% interval (statsmodels), kappa against the
consensus of the other people and against experts' decisions (:mod:`labelloop.agree`), the median working time
per answer (gaps over 30 minutes are breaks), answers per active day, the weekly trend of test accuracy, and
the mean diagonal of their Dawid-Skene confusion matrices from the last aggregation, side by side. An annotator
is *flagged* when the upper bound of their test accuracy is under ``annotation.retrain_below`` (so a few
unlucky answers do not flag anyone) or their kappa against consensus is under ``annotation.min_kappa`` — unless
:data:`VOUCH_TESTS` or more test answers show them right at least ``retrain_below`` of the time: agreement
says who disagrees, test questions say who is wrong (with two people per item, the consensus of a careful
annotator is their careless partner).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from statsmodels.stats.proportion import proportion_confint

from .._time import parse_time
from ..aggregate import AggregateResult
from ..agree import agreement_report
from ..spec import TaskSpec
from ..store import Store
from .qualification import qualification

IDLE_SECONDS = 30 * 60  # a longer gap between two answers is a break, not work on the second one
VOUCH_TESTS = 10  # test answers at or above retrain_below that overrule a low kappa against consensus


@dataclass
class AnnotatorScore:
    name: str
    role: str
    answers: int = 0  # answers to ordinary items (current or replaced)
    tested: int = 0  # answers to test questions
    right: int = 0
    accuracy: float | None = None
    accuracy_low: float | None = None  # Wilson 95% interval
    accuracy_high: float | None = None
    consensus_kappa: float | None = None
    expert_kappa: float | None = None
    dawid_skene: float | None = None  # mean diagonal of their confusion matrices (the last aggregation)
    seconds_per_answer: float | None = None
    answers_per_day: float | None = None
    trend: list[dict[str, Any]] = field(default_factory=list)  # week, tested, accuracy
    qualified: bool | None = None  # None: no qualification asked of them
    flagged: bool = False
    why: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def annotator_scores(store: Store, spec: TaskSpec) -> list[AnnotatorScore]:
    """Every person who answered, or is registered, with their scores and flags."""
    settings = spec.annotation
    roles = {row["name"]: row["role"] for row in store.reviewers() if not row["disabled"]}
    times: dict[str, list[str]] = defaultdict(list)
    answers: dict[str, int] = defaultdict(int)
    for row in store.answer_log():
        times[row["annotator"]].append(row["created_at"])
        answers[row["annotator"]] += row["kind"] == "answer"
    tests: dict[str, list[Any]] = defaultdict(list)
    for row in store.test_answers():
        tests[row["annotator"]].append(row)
        times[row["annotator"]].append(row["created_at"])
    agreement = {a.name: a for a in agreement_report(store, spec, models=False).annotators}
    reliability = _dawid_skene(store)
    found = []
    for name in sorted(set(roles) | set(times)):
        score = AnnotatorScore(name, roles.get(name, "imported"), answers[name])
        _tested(score, tests[name])
        if name in agreement:
            score.consensus_kappa, score.expert_kappa = agreement[name].consensus_kappa, agreement[name].gold_kappa
        score.dawid_skene = reliability.get(name)
        score.seconds_per_answer = seconds_per_answer(times[name])
        days = {t[:10] for t in times[name]}
        score.answers_per_day = (answers[name] + len(tests[name])) / len(days) if days else None
        if settings.qualify is not None and score.role == "annotator":
            score.qualified = qualification(store, spec, name, "annotator").qualified
        if score.role != "expert":
            _flag(score, settings.retrain_below, settings.min_kappa)
        found.append(score)
    return found


def seconds_per_answer(times: list[str]) -> float | None:
    """The median gap between consecutive answers, gaps over :data:`IDLE_SECONDS` left out."""
    moments = sorted(parse_time(t).timestamp() for t in times)
    gaps = [b - a for a, b in zip(moments, moments[1:]) if 0 <= b - a <= IDLE_SECONDS]
    return statistics.median(gaps) if gaps else None


def _tested(score: AnnotatorScore, rows: list[Any]) -> None:
    score.tested, score.right = len(rows), sum(r["correct"] for r in rows)
    if rows:
        score.accuracy = score.right / score.tested
        low, high = proportion_confint(score.right, score.tested, alpha=0.05, method="wilson")
        score.accuracy_low, score.accuracy_high = float(low), float(high)
    weeks: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        moment = parse_time(row["created_at"])
        weeks[(moment - timedelta(days=moment.weekday())).date().isoformat()].append(row["correct"])
    score.trend = [{"week": w, "tested": len(v), "accuracy": sum(v) / len(v)} for w, v in sorted(weeks.items())]


def _flag(score: AnnotatorScore, retrain_below: float, min_kappa: float) -> None:
    if score.accuracy_high is not None and score.accuracy_high < retrain_below:
        score.why.append(f"test accuracy {score.accuracy:.0%} (95% CI up to {score.accuracy_high:.0%}) under"
                         f" {retrain_below:.0%}")  # fmt: skip
    vouched = score.tested >= VOUCH_TESTS and (score.accuracy or 0.0) >= retrain_below
    if score.consensus_kappa is not None and score.consensus_kappa < min_kappa and not vouched:
        score.why.append(f"kappa against consensus {score.consensus_kappa:.2f} under {min_kappa:.2f}")
    score.flagged = bool(score.why)


def _dawid_skene(store: Store) -> dict[str, float]:
    last = store.last_aggregation()
    if last is None:
        return {}
    errors = json.loads(last["details"] or "{}").get("annotator_errors") or {}
    return AggregateResult(last["method"], annotator_errors=errors).reliability()
