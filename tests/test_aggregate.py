"""From several answers to one gold record: majority, Dawid-Skene, disputes, adjudication, and the export."""

from __future__ import annotations

import json
import random

import pytest

from conftest import Case, build_store
from labelloop.aggregate import aggregate, decide, majority_vote
from labelloop.export import export
from labelloop.review import add_reviewer, adjudicate, adjudication_queue, queue_item
from labelloop.spec import parse_spec

CLASSIFY = """
name: sentiment
kind: classify
instruction: Classify the sentiment.
labels: [positive, negative, neutral]
annotation: {annotation}
"""


def classify(**annotation) -> object:
    return parse_spec(CLASSIFY.format(annotation=json.dumps({"overlap": {"annotators": 3}, **annotation})))


def answer(store, item: str, who: str, label: str) -> None:
    store.add_annotation(item, who, {"label": label}, "label", None)


@pytest.fixture
def three_way(tmp_path):
    """Three people on four items: a clear majority, a three-way tie, unanimity, and one single answer."""
    spec = classify()
    store = build_store(tmp_path / "s.db", spec, [
        Case(f"t{i}", f"text {i}", "needs_review", {"label": "neutral"}, 0.3) for i in range(4)])
    for who, labels in {"ana": "ppn", "bob": "pnn", "cai": "nun"}.items():
        for item, code in zip(("t0", "t1", "t2"), labels):
            answer(store, item, who, {"p": "positive", "n": "negative", "u": "neutral"}[code])
    answer(store, "t3", "ana", "neutral")
    return spec, store


def test_majority_decides_ties_are_disputed_and_single_answers_stand(three_way):
    spec, store = three_way
    result = aggregate(store, spec)
    assert (result.items, result.disputed, dict(result.by_method)) == (4, 1, {"majority": 3, "single": 1})
    gold = {row["item_id"]: row for row in store.gold()}
    assert json.loads(gold["t0"]["output"]) == {"label": "positive"}
    assert gold["t0"]["method"] == "majority" and json.loads(gold["t0"]["decided_by"]) == ["ana", "bob", "cai"]
    assert gold["t0"]["confidence"] == pytest.approx(2 / 3)
    assert gold["t1"]["status"] == "disputed"  # positive, negative, neutral: a three-way tie
    assert (gold["t2"]["status"], json.loads(gold["t2"]["output"])) == ("decided", {"label": "negative"})
    assert (gold["t3"]["method"], json.loads(gold["t3"]["decided_by"])) == ("single", ["ana"])
    assert aggregate(store, spec).skipped  # nothing changed since


def test_an_expert_settles_a_dispute_and_the_export_says_how_each_label_was_decided(three_way, tmp_path):
    spec, store = three_way
    add_reviewer(store, "eve", "expert")
    [dispute] = adjudication_queue(store, spec)
    assert dispute.item.item_id == "t1"
    assert dispute.answers == {"ana": {"label": "positive"}, "bob": {"label": "negative"},
                               "cai": {"label": "neutral"}, "llm (model, no vote)": {"label": "neutral"}}
    before = export(store, spec, tmp_path / "before.jsonl")
    assert before.excluded["disputed"] == 1
    adjudicate(store, spec, queue_item(store, spec, "t1"), "eve", {"label": "negative"})
    assert adjudication_queue(store, spec) == []
    after = export(store, spec, tmp_path / "after.jsonl")
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "after.jsonl").read_text().splitlines())}
    assert after.excluded["disputed"] == 0
    assert (records["t1"]["method"], records["t1"]["decided_by"], records["t1"]["output"]) == (
        "expert", "eve", {"label": "negative"})
    assert (records["t0"]["method"], records["t0"]["confidence"]) == ("majority", pytest.approx(2 / 3))


def test_min_agreement_sends_weak_majorities_to_adjudication(three_way):
    _, store = three_way
    spec = classify(min_agreement=0.9)
    assert aggregate(store, spec).disputed == 2  # the 2-of-3 majority is now too weak too


def test_dawid_skene_discounts_annotators_who_always_say_the_same(tmp_path):
    """Three people right 80% of the time and two who always answer "negative": majority vote follows
    the two wherever the three split; Dawid-Skene learns that their answer carries no information."""
    rng = random.Random(0)
    truth = ["positive", "negative", "neutral"] * 10
    store = build_store(tmp_path / "s.db", classify(), [
        Case(f"t{i:02d}", "x", "needs_review", {"label": "neutral"}, 0.2) for i in range(len(truth))])
    for i, label in enumerate(truth):
        for who in ("ana", "bob", "cai"):
            answer(store, f"t{i:02d}", who, label if rng.random() < 0.8 else rng.choice(truth[:3]))
        for who in ("yan", "zed"):
            answer(store, f"t{i:02d}", who, "negative")

    def correct(spec) -> int:
        aggregate(store, spec, force=True)
        gold = {row["item_id"]: json.loads(row["output"])["label"] for row in store.gold()}
        return sum(gold[f"t{i:02d}"] == label for i, label in enumerate(truth))

    assert (correct(classify(min_agreement=0.0)), correct(classify(aggregate="dawid_skene"))) == (20, 26)
    assert {row["method"] for row in store.gold()} == {"dawid_skene"}
    assert all(0.0 < row["confidence"] <= 1.0 for row in store.gold())
    result = aggregate(store, classify(aggregate="dawid_skene"), force=True)
    zed = result.annotator_errors["label"]["zed"]  # true label -> answered label -> probability
    assert zed["positive"]["negative"] > 0.9 and zed["neutral"]["negative"] > 0.9
    reliability = result.reliability()
    assert reliability["zed"] < 0.5 < reliability["ana"]
    assert json.loads(store.db.execute("SELECT details FROM aggregations ORDER BY id DESC").fetchone()[0])[
        "annotator_errors"]["label"]["zed"] == zed


def test_model_votes_count_beside_people(three_way):
    spec, store = three_way
    spec = classify(model_votes=["llm"])
    aggregate(store, spec)
    gold = {row["item_id"]: row for row in store.gold()}
    assert json.loads(gold["t1"]["output"]) == {"label": "neutral"}  # the model breaks the tie
    assert "llm" in json.loads(gold["t1"]["decided_by"])
    assert gold["t3"]["method"] == "majority"  # ana and the model


MULTILABEL = parse_spec("""
name: relations
kind: multilabel
instruction: Pick every relation.
labels: [TREATS, CAUSES, NONE]
""")


def test_multilabel_votes_per_label_or_as_whole_sets():
    votes = {"a": {"labels": ["TREATS", "CAUSES"]}, "b": {"labels": ["TREATS"]}, "c": {"labels": ["CAUSES", "TREATS"]}}
    output, share, tie = majority_vote(MULTILABEL, votes)
    assert (output, share, tie) == ({"labels": ["TREATS", "CAUSES"]}, pytest.approx(2 / 3), False)
    whole = parse_spec(MULTILABEL.model_dump_json(exclude={"annotation"}).replace("{", "{", 1))
    whole.annotation.sets = "whole"
    output, share, tie = majority_vote(whole, votes)
    assert (sorted(output["labels"]), share, tie) == (["CAUSES", "TREATS"], pytest.approx(2 / 3), False)


SPANS = parse_spec("""
name: meds
kind: spans
instruction: Mark drugs and doses.
labels: [DRUG, DOSE]
""")


def test_mentions_are_kept_when_most_annotators_marked_them():
    drug = {"text": "aspirin", "label": "DRUG", "start": 5, "end": 12}
    dose = {"text": "100 mg", "label": "DOSE", "start": 13, "end": 19}
    votes = {"a": {"entities": [drug, dose]}, "b": {"entities": [drug]}, "c": {"entities": [drug]}}
    decisions = decide(SPANS, {"i": votes}, {}).decisions
    assert decisions["i"].output == {"entities": [drug]}
    assert decisions["i"].confidence == pytest.approx(2 / 3)
