"""A project's agreement report: per facet, per annotator pair, per annotator and per batch, with actions.

People's current answers are compared with each other and with every model labeler (``label --as NAME``),
which appear beside them as annotators. Each output is looked at as *facets*:

- ``answer``: the whole output (two answers agree when they are identical);
- each scalar field (nominal; ``rating`` of a rate task is ordinal);
- each label of an enumerated set field as a yes/no question (multi-label: see
  :func:`~labelloop.agree.metrics.per_label_agreement` for why not one set-level statistic);
- a mention field (spans) by exact span F1 between annotators.

Overall statistics (percent agreement, Fleiss' kappa, Krippendorff's alpha) are over people only, as
inter-annotator agreement is usually meant; models appear in the pairwise and per-annotator tables.
An annotator's *consensus* on an item is the majority of the other people's answers (ties left out).
Thresholds from ``annotation``: a batch (an ingested file) whose multiply-answered items match less than
``batch_match`` is marked for rework; an annotator whose kappa against consensus is under ``min_kappa``
is flagged.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from ..answers import canonical as _canonical
from ..answers import family, questions, set_fields
from ..people.qualification import counted
from ..spans import Span, exact_span_f1
from ..spec import RateSpec, TaskSpec
from ..store import Store
from .metrics import cohen_kappa, fleiss_kappa, krippendorff_alpha, majority, pairwise

Answers = dict[str, dict[str, Any]]  # item -> annotator -> output
ANSWER = "answer"


@dataclass
class FacetAgreement:
    facet: str
    level: str  # nominal, ordinal, binary or span
    items: int  # items with at least two people's answers
    percent_agreement: float | None
    fleiss_kappa: float | None = None
    krippendorff_alpha: float | None = None
    span_f1: float | None = None  # mean exact span F1 over pairs of people (span facets)


@dataclass
class AnnotatorAgreement:
    name: str
    kind: str  # "human" or "model"
    items: int
    consensus_items: int = 0
    consensus_agreement: float | None = None
    consensus_kappa: float | None = None
    gold_items: int = 0
    gold_agreement: float | None = None
    gold_kappa: float | None = None  # against the experts' decisions (and --gold)
    flagged: bool = False


@dataclass
class BatchAgreement:
    batch: str
    items: int  # items with at least two people's answers
    matching: int
    match_rate: float | None
    action: str  # "ok" or "rework"


@dataclass
class AgreementReport:
    annotators: list[AnnotatorAgreement]
    facets: list[FacetAgreement]
    pairs: list[dict[str, Any]]  # a, b, items, percent_agreement, cohen_kappa (or span_f1)
    confusions: list[dict[str, Any]]  # facet, a, b, count: the answers people give one another most
    batches: list[BatchAgreement]
    thresholds: dict[str, float]
    reworked: int = 0  # answers retired by rework
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement_report(
    store: Store,
    spec: TaskSpec,
    *,
    models: bool = True,
    gold: Mapping[str, dict] | None = None,
    min_pair_items: int = 5,
) -> AgreementReport:
    """Measure agreement in the project (see the module docstring); ``gold`` adds reference answers to the
    experts' adjudications. Pairs of annotators sharing fewer than ``min_pair_items`` items are left out."""
    humans, batches = _human_answers(store, counted(store, spec))
    everyone = {item: dict(raters) for item, raters in humans.items()}
    model_names = store.labelers() if models else []
    for name in model_names:
        for item_id, output in store.model_answers(name):
            if item_id in everyone or not humans:
                everyone.setdefault(item_id, {})[name] = output
    reference = {item: json.loads(row["output"]) for item, row in store.adjudications().items()}
    reference.update(gold or {})
    settings = spec.annotation
    report = AgreementReport(
        annotators=_annotators(spec, humans, everyone, set(model_names), reference, settings.min_kappa),
        facets=_facets(spec, humans),
        pairs=_pairs(spec, everyone, min_pair_items),
        confusions=_confusions(spec, humans),
        batches=_batches(humans, batches, settings.batch_match),
        thresholds={"batch_match": settings.batch_match, "min_kappa": settings.min_kappa},
    )
    if spec.kind == "generate":
        report.notes.append("generate: free text agrees only when identical; use the judge's ratings instead")
    return report


def rework(store: Store, report: AgreementReport, actor: str) -> int:
    """Send every batch marked ``rework`` back: its multiply-answered items' answers stop counting."""
    humans, batches = _human_answers(store)
    failing = {b.batch for b in report.batches if b.action == "rework"}
    items = [item for item, raters in humans.items() if len(raters) >= 2 and batches[item] in failing]
    report.reworked = store.retire_answers(items, actor, "batch under the match threshold") if items else 0
    return report.reworked


# -- inputs ----------------------------------------------------------------------------------------


def _human_answers(store: Store, counts: Callable[[Any], bool] = lambda row: True) -> tuple[Answers, dict[str, str]]:
    """People's current answers that count (see :func:`labelloop.people.qualification.counted`), and each
    answered item's batch (its ingested file)."""
    answers: Answers = {}
    batches: dict[str, str] = {}
    for row in filter(counts, store.current_answers()):
        answers.setdefault(row["item_id"], {})[row["annotator"]] = json.loads(row["output"])
        batches[row["item_id"]] = Path(row["source_file"]).name if row["source_file"] else "(no file)"
    return answers, batches


def _mention_fields(spec: TaskSpec) -> list[str]:
    return [name for name in [getattr(spec, "mentions_field", None)] if name]


def _has_parts(spec: TaskSpec) -> bool:
    """Whether an answer has several facets (fields, or labels of a set) beside the whole."""
    return len(spec.output_fields) > 1 or bool(set_fields(spec))


def _answer_value(spec: TaskSpec, output: dict[str, Any]) -> str:
    """The whole answer as one category: the only field's value, or the canonical JSON of every field."""
    return _canonical(output.get(spec.output_fields[0]) if len(spec.output_fields) == 1 else output)


def _facet_values(spec: TaskSpec, answers: Answers) -> dict[str, dict[str, dict[str, Hashable]]]:
    """``{facet: {item: {annotator: value}}}`` for every categorical facet (spans and free text excluded).
    With a single output field, the ``answer`` facet's values are that field's values."""
    facets: dict[str, dict[str, dict[str, Hashable]]] = {ANSWER: {}}
    skip = set(_mention_fields(spec))
    sets = set_fields(spec)
    several = _has_parts(spec)
    for item, raters in answers.items():
        facets[ANSWER][item] = {a: _answer_value(spec, o) for a, o in raters.items()}
        if not several or spec.kind == "generate":
            continue
        for question, values in questions(spec, raters).items():
            name = question.partition("=")[0]
            if name in skip or (name in sets and sets[name] is None):
                continue
            facets.setdefault(family(question), {})[item] = values
    return facets


# -- facets ----------------------------------------------------------------------------------------


def _facets(spec: TaskSpec, humans: Answers) -> list[FacetAgreement]:
    """Overall agreement per facet. The whole answer of a many-part task gets percent agreement only:
    chance-corrected statistics over every distinct answer say little (and cost much); they are per part."""
    multi = {item: raters for item, raters in humans.items() if len(raters) >= 2}
    several = _has_parts(spec)
    out = []
    for facet, values in _facet_values(spec, multi).items():
        ordinal = isinstance(spec, RateSpec) and facet in (ANSWER, "rating")
        level = "ordinal" if ordinal else "binary" if "[" in facet else "nominal"
        order = [_canonical(lv.value) for lv in spec.levels] if ordinal and isinstance(spec, RateSpec) else None
        row = FacetAgreement(facet=facet, level=level, items=len(values), percent_agreement=_pooled_agreement(values))
        if values and not (facet == ANSWER and several):
            categories: Sequence[Hashable] = order or sorted(
                {v for raters in values.values() for v in raters.values()}, key=repr
            )
            row.fleiss_kappa = fleiss_kappa(values, categories)
            row.krippendorff_alpha = krippendorff_alpha(values, level if ordinal else "nominal", order)
        out.append(row)
    for name in _mention_fields(spec):
        scores = [s["span_f1"] for s in _span_pairs(multi, name, min_items=1)]
        out.append(
            FacetAgreement(
                facet=name,
                level="span",
                items=len(multi),
                percent_agreement=None,
                span_f1=sum(scores) / len(scores) if scores else None,
            )
        )
    return out


def _pooled_agreement(values: Mapping[str, Mapping[str, Hashable]]) -> float | None:
    same = pairs = 0
    for raters in values.values():
        counts = Counter(raters.values())
        n = len(raters)
        same += sum(c * (c - 1) // 2 for c in counts.values())
        pairs += n * (n - 1) // 2
    return same / pairs if pairs else None


# -- pairs, confusions -------------------------------------------------------------------------------


def _pairs(spec: TaskSpec, everyone: Answers, min_items: int) -> list[dict[str, Any]]:
    mention_fields = _mention_fields(spec)
    if mention_fields and len(spec.output_fields) == 1:
        return _span_pairs(everyone, mention_fields[0], min_items)
    answers = _facet_values(spec, everyone)[ANSWER]
    return pairwise(answers, min_items=min_items)


def _span_pairs(answers: Answers, name: str, min_items: int) -> list[dict[str, Any]]:
    by_annotator: dict[str, dict[str, list[Span]]] = {}
    for item, raters in answers.items():
        for annotator, output in raters.items():
            spans = [
                Span(m["start"], m["end"], m["label"], m.get("text", ""))
                for m in output.get(name) or []
                if m.get("start") is not None
            ]
            by_annotator.setdefault(annotator, {})[item] = spans
    out = []
    for a, b in combinations(sorted(by_annotator), 2):
        shared = [i for i in by_annotator[a] if i in by_annotator[b]]
        if len(shared) < min_items:
            continue
        scores = exact_span_f1([by_annotator[a][i] for i in shared], [by_annotator[b][i] for i in shared])
        out.append({"a": a, "b": b, "items": len(shared), "span_f1": scores["f1"]})
    return out


def _confusions(spec: TaskSpec, humans: Answers, top: int = 10) -> list[dict[str, Any]]:
    """The most frequent pairs of different answers people gave the same item, per nominal facet."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for facet, values in _facet_values(spec, humans).items():
        if "[" in facet:
            continue
        for raters in values.values():
            for x, y in combinations(sorted(raters.values(), key=repr), 2):
                if x != y:
                    counts[(facet, str(x), str(y))] += 1
    return [{"facet": f, "a": a, "b": b, "count": c} for (f, a, b), c in counts.most_common(top)]


# -- annotators and batches --------------------------------------------------------------------------


def _annotators(
    spec: TaskSpec,
    humans: Answers,
    everyone: Answers,
    model_names: set[str],
    reference: Mapping[str, dict],
    min_kappa: float,
) -> list[AnnotatorAgreement]:
    answers = _facet_values(spec, everyone)[ANSWER]
    gold = {item: _answer_value(spec, output) for item, output in reference.items()}
    human_answers = {item: {a: _answer_value(spec, o) for a, o in raters.items()} for item, raters in humans.items()}
    rows: dict[str, AnnotatorAgreement] = {}
    pairs: dict[str, list[tuple[Hashable, Hashable]]] = {}
    gold_pairs: dict[str, list[tuple[Hashable, Hashable]]] = {}
    for item, raters in answers.items():
        for annotator, value in raters.items():
            row = rows.setdefault(
                annotator, AnnotatorAgreement(annotator, "model" if annotator in model_names else "human", 0)
            )
            row.items += 1
            others = {a: v for a, v in human_answers.get(item, {}).items() if a != annotator}
            if others:
                decided = majority({item: others})[item]
                if not decided["tie"]:
                    pairs.setdefault(annotator, []).append((value, decided["value"]))
            if item in gold:
                gold_pairs.setdefault(annotator, []).append((value, gold[item]))
    for annotator, row in rows.items():
        mine = pairs.get(annotator, [])
        row.consensus_items = len(mine)
        if mine:
            row.consensus_agreement = sum(x == y for x, y in mine) / len(mine)
            row.consensus_kappa = _kappa([x for x, _ in mine], [y for _, y in mine])
        checked = gold_pairs.get(annotator, [])
        row.gold_items = len(checked)
        row.gold_agreement = sum(x == y for x, y in checked) / len(checked) if checked else None
        row.gold_kappa = _kappa([x for x, _ in checked], [y for _, y in checked])
        row.flagged = row.consensus_kappa is not None and row.consensus_kappa < min_kappa
    return sorted(rows.values(), key=lambda r: (r.kind, -r.items, r.name))


def _kappa(a: list[Hashable], b: list[Hashable]) -> float | None:
    if len(a) < 2:
        return None
    _, codes = np.unique(np.array(a + b, dtype=object).astype(str), return_inverse=True)
    return cohen_kappa(codes[: len(a)], codes[len(a) :])


def _batches(humans: Answers, batches: Mapping[str, str], threshold: float) -> list[BatchAgreement]:
    tally: dict[str, list[bool]] = {}
    for item, raters in humans.items():
        if len(raters) >= 2:
            tally.setdefault(batches[item], []).append(len({_canonical(o) for o in raters.values()}) == 1)
    out = []
    for batch, matches in sorted(tally.items()):
        rate = sum(matches) / len(matches)
        out.append(BatchAgreement(batch, len(matches), sum(matches), rate, "rework" if rate < threshold else "ok"))
    return out
