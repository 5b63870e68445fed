"""People in the report: each reviewer's answers, throughput and working time per answer; how often people
who answered the same item agreed, over time; and the disputes experts settled."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..answers import canonical
from ..people.scores import annotator_scores, seconds_per_answer
from ..spec import TaskSpec
from ..store import Store
from .timeline import Timeline, bucket


@dataclass
class Reviewer:
    name: str
    role: str
    answers: int  # every answer given, current or since replaced
    items: int
    adjudications: int
    seconds_per_answer: float | None  # the median gap between consecutive answers, breaks left out
    test_accuracy: str | None = None  # on test questions, with its Wilson interval
    flag: str = ""  # why they are flagged for retraining (labelloop.people.scores)


@dataclass
class People:
    reviewers: list[Reviewer]
    throughput: Timeline  # answers per bucket, one series per reviewer
    agreement: Timeline  # per bucket of the item's last answer: "items" answered by two or more, "matching"
    settled: Timeline  # "adjudicated": disputes an expert settled
    gold: dict[str, int] = field(default_factory=dict)  # decided, disputed (still open)
    batch_match: float = 0.9

    @property
    def has_answers(self) -> bool:
        return any(r.answers for r in self.reviewers)

    def match_rates(self) -> list[float | None]:
        items, matching = self.agreement.values["items"], self.agreement.values["matching"]
        return [m / n if n else None for n, m in zip(items, matching)]


def people(store: Store, spec: TaskSpec) -> People:
    log = store.answer_log()
    roles = {row["name"]: row["role"] for row in store.reviewers()}
    by_person: dict[str, list[Any]] = defaultdict(list)
    for row in log:
        by_person[row["annotator"]].append(row)
    reviewers = [_reviewer(name, roles.get(name, "imported"), rows) for name, rows in sorted(by_person.items())]
    throughput = bucket({name: [(r["created_at"], 1) for r in rows if r["kind"] == "answer"]
                         for name, rows in sorted(by_person.items())})  # fmt: skip
    current: dict[str, list[Any]] = defaultdict(list)
    for row in log:
        if row["kind"] == "answer" and row["is_current"]:
            current[row["item_id"]].append(row)
    shared = [rows for rows in current.values() if len(rows) >= 2]
    agreement = bucket({
        "items": [(max(r["created_at"] for r in rows), 1) for rows in shared],
        "matching": [(max(r["created_at"] for r in rows), int(len({canonical_text(r["output"]) for r in rows}) == 1))
                     for rows in shared],
    })  # fmt: skip
    settled = bucket({"adjudicated": [(r["created_at"], 1) for r in log if r["kind"] == "adjudication"]})
    gold: dict[str, int] = defaultdict(int)
    for (status, _method), count in store.gold_counts().items():
        gold[status] += count
    scores = {s.name: s for s in annotator_scores(store, spec)}
    for reviewer in reviewers:
        found = scores.get(reviewer.name)
        if found is not None and found.accuracy is not None:
            reviewer.test_accuracy = (f"{found.accuracy:.0%} of {found.tested} ({found.accuracy_low:.0%}–"
                                      f"{found.accuracy_high:.0%})")  # fmt: skip
        reviewer.flag = "; ".join(found.why) if found is not None and found.flagged else ""
    return People(reviewers, throughput, agreement, settled, dict(gold), spec.annotation.batch_match)


def canonical_text(output: str) -> str:
    return canonical(json.loads(output))


def _reviewer(name: str, role: str, rows: Sequence[Any]) -> Reviewer:
    answers = [r for r in rows if r["kind"] == "answer"]
    return Reviewer(name, role, len(answers), len({r["item_id"] for r in answers}), len(rows) - len(answers),
                    seconds_per_answer([r["created_at"] for r in rows]))  # fmt: skip
