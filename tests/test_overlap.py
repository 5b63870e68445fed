"""Several annotators per item: the overlap (QC) sample, the queue per annotator, blind review, capacity."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import Case, build_store
from labelloop.assign import need
from labelloop.errors import Conflict
from labelloop.review import Reviewer, ReviewError, add_reviewer, adjudicate, queue_item, review_queue, submit
from labelloop.spec import parse_spec

LABELS = ["positive", "negative", "neutral"]


def spec_with(annotation: str = "", extra: str = ""):
    return parse_spec(f"""
name: sentiment
kind: classify
instruction: Classify the sentiment.
labels: [positive, negative, neutral]
{extra}
annotation:
{annotation or "  show_prelabel: true"}
""")


def cases(routed: int, accepted: int = 0) -> list[Case]:
    out = [Case(f"r{i:03d}", f"text {i}", "needs_review", {"label": LABELS[i % 3]}, 0.1 + 0.8 * (i % 10) / 10)
           for i in range(routed)]
    out += [Case(f"a{i:03d}", f"sure {i}", "accepted", {"label": LABELS[i % 2]}, 0.95) for i in range(accepted)]
    return out


def queue_ids(store, spec, who: str) -> set[str]:
    return {item.item_id for item in review_queue(store, spec, who, limit=10_000)}


def test_without_overlap_one_answer_takes_an_item_out_of_every_queue(tmp_path):
    spec = spec_with()
    store = build_store(tmp_path / "s.db", spec, cases(4, accepted=2))
    assert queue_ids(store, spec, "ana") == {"r000", "r001", "r002", "r003"}
    item = queue_item(store, spec, "r000")
    submit(store, spec, item, "ana", {"label": "negative"}, "label", expected_version=item.version)
    assert "r000" not in queue_ids(store, spec, "ana") | queue_ids(store, spec, "bob")


def test_k_annotators_answer_every_routed_item_and_each_sees_it_once(tmp_path):
    spec = spec_with("  overlap: {annotators: 3}")
    store = build_store(tmp_path / "s.db", spec, cases(3, accepted=2))
    for who in ("ana", "bob"):
        for item in review_queue(store, spec, who):
            submit(store, spec, item, who, {"label": "neutral"}, "label", expected_version=item.version)
    assert queue_ids(store, spec, "ana") == queue_ids(store, spec, "bob") == set()
    assert queue_ids(store, spec, "cai") == {"r000", "r001", "r002"}  # still one answer short
    assert store.review_progress("llm", need=need(spec)) == {"done": 0, "left": 3, "by_reason": {}}


def test_qc_sample_is_the_requested_share_spread_over_strata_and_never_redrawn(tmp_path):
    spec = spec_with("  overlap: {annotators: 2, sample: 0.25, seed: 7}")
    store = build_store(tmp_path / "s.db", spec, cases(40))
    review_queue(store, spec, "ana")  # the first queue draws
    drawn = {row[0] for row in store.db.execute("SELECT item_id FROM assignments WHERE qc = 1")}
    assert len(drawn) == 10
    by_label = Counter(LABELS[int(i[1:]) % 3] for i in drawn)
    assert all(3 <= n <= 4 for n in by_label.values()), by_label  # 13-14 items per label: 3 or 4 each
    review_queue(store, spec, "bob")
    assert {row[0] for row in store.db.execute("SELECT item_id FROM assignments WHERE qc = 1")} == drawn
    for item in review_queue(store, spec, "ana", limit=100):
        submit(store, spec, item, "ana", {"label": "neutral"}, "label")
    assert queue_ids(store, spec, "bob") == drawn  # only the QC items want a second answer
    assert queue_ids(store, spec, "ana") == set()


def test_include_accepted_audits_a_sample_of_auto_accepted_items(tmp_path):
    spec = spec_with("  overlap: {annotators: 1, sample: 0.5, include_accepted: true, stratify: []}")
    store = build_store(tmp_path / "s.db", spec, cases(0, accepted=20))
    assert len(queue_ids(store, spec, "ana")) == 10


def test_two_annotators_may_answer_at_once_up_to_k_then_a_conflict(tmp_path):
    spec = spec_with("  overlap: {annotators: 2}")
    store = build_store(tmp_path / "s.db", spec, cases(1))
    seen = {who: queue_item(store, spec, "r000") for who in ("ana", "bob", "cai")}
    submit(store, spec, seen["ana"], "ana", {"label": "positive"}, "label", expected_version=seen["ana"].version)
    submit(store, spec, seen["bob"], "bob", {"label": "negative"}, "label", expected_version=seen["bob"].version)
    with pytest.raises(Conflict):
        submit(store, spec, seen["cai"], "cai", {"label": "neutral"}, "label", expected_version=seen["cai"].version)
    assert sorted(a["annotator"] for a in store.annotations("r000")) == ["ana", "bob"]


def test_blind_review_hides_the_model_answer_from_annotators_not_experts(tmp_path):
    spec = spec_with("  show_prelabel: false")
    store = build_store(tmp_path / "s.db", spec, cases(2))
    [first, *_] = review_queue(store, spec, "ana")
    assert first.output is None and first.field_confidence == {}
    assert queue_item(store, spec, "r000", reviewer=Reviewer("ana", "annotator")).output is None
    assert queue_item(store, spec, "r000", reviewer=Reviewer("eve", "expert")).output == {"label": "positive"}


def test_only_experts_adjudicate_and_their_decision_ends_the_item(tmp_path):
    spec = spec_with("  overlap: {annotators: 3}")
    store = build_store(tmp_path / "s.db", spec, cases(1))
    add_reviewer(store, "eve", "expert")
    add_reviewer(store, "ana", "annotator")
    item = queue_item(store, spec, "r000")
    with pytest.raises(ReviewError, match="not an expert"):
        adjudicate(store, spec, item, "ana", {"label": "neutral"})
    adjudicate(store, spec, item, "eve", {"label": "neutral"})
    assert queue_ids(store, spec, "bob") == set()  # decided: nobody needs to answer it any more
