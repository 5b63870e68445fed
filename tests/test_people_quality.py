"""People's quality: test questions mixed into queues at their rate and never reaching data (exports in every
format, agreement, aggregation, progress), qualification rounds from failing to passing with the answers given
before not counting, annotators' scores and retraining flags (checked against statsmodels' Wilson interval),
``exclude_flagged``, test questions from experts' decisions, and the CLI."""

from __future__ import annotations

import json
import random
import re

import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from conftest import FaultServer
from labelloop import Project
from labelloop.cli import app
from labelloop.review import adjudicate, review_queue, submit

LABELS = ["positive", "negative", "neutral"]
SPEC = """name: sentiment
kind: classify
instruction: Classify the sentiment.
labels:
  - {{name: positive, description: the writer is satisfied}}
  - {{name: negative, description: the writer is unhappy}}
  - {{name: neutral, description: no clear attitude}}
model: {{backend: openai, model: fault, concurrency: 4}}
annotation: {annotation}
"""


def truth(text: str) -> str:
    return LABELS[int(re.findall(r"(?:review|question) (\d+)", text)[-1]) % 3]


def wrong(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % 3]


@pytest.fixture
def make(tmp_path):
    server = FaultServer()
    server.respond = lambda body: json.dumps({"label": truth(body["messages"][-1]["content"])})
    opened = []

    def make(annotation: str, items: int = 100, tests: int = 20) -> Project:
        root = tmp_path / f"p{len(opened)}"
        root.mkdir()
        (root / "labelloop.yaml").write_text(SPEC.format(annotation=annotation), encoding="utf-8")
        project = Project(root)
        opened.append(project)
        data = root / "items.jsonl"
        data.write_text("".join(json.dumps({"id": f"t{i:03d}", "text": f"review {i}: it came"}) + "\n"
                                for i in range(items)), encoding="utf-8")  # fmt: skip
        project.ingest(data, id_field="id")
        if tests:
            questions = root / "questions.jsonl"
            questions.write_text("".join(json.dumps({"id": f"t{900 + i}", "text": f"question {i}: it came",
                                                     "label": LABELS[i % 3]}) + "\n" for i in range(tests)),
                                 encoding="utf-8")  # fmt: skip
            assert project.add_test_questions(questions) == tests
        project.label(base_url=server.base_url)  # no logprobs: every item waits for people
        return project

    yield make
    for project in opened:
        project.close()
    server.close()


def answer_next(project: Project, who: str, right: float, rng: random.Random) -> tuple[str, bool]:
    """``who`` takes the head of their queue and answers it, right with probability ``right``."""
    item = review_queue(project.store, project.spec, who, limit=5)[0]
    label = truth(item.text) if rng.random() < right else wrong(truth(item.text))
    submit(project.store, project.spec, item, who, {"label": label}, "label")
    return item.item_id, label == truth(item.text)


def test_test_questions_come_at_their_rate_and_never_reach_data(make, tmp_path):
    project = make("{test_questions: {rate: 0.2}}")
    store = project.store
    project.add_reviewer("ana")
    rng = random.Random(0)
    served = [answer_next(project, "ana", 0.9, rng)[0] for _ in range(80)]
    tested = [i for i in served if i in store.test_questions()]
    assert len(tested) == len(store.test_answers("ana")) and 8 <= len(tested) <= 26, len(tested)
    assert len(set(tested)) == len(tested), "a test question is asked of a person once"
    assert not {r["item_id"] for r in store.current_answers()} & set(store.test_questions())
    assert "label" not in json.loads(store.db.execute("SELECT fields FROM items WHERE id = 't900'").fetchone()[0])
    assert store.review_progress("llm")["done"] + store.review_progress("llm")["left"] == 100
    project.aggregate()
    assert not set(store.gold_outputs()) & set(store.test_questions())
    assert all(a.name != "ana" or a.items == 80 - len(tested) for a in project.agree().annotators)
    for fmt in ("jsonl", "csv", "parquet", "hf", "alpaca", "chat", "labelstudio"):
        out = tmp_path / f"out.{fmt}"
        result = project.export(out, fmt=fmt, include_unreviewed=fmt != "labelstudio")
        assert result.written == 100, fmt
        written = "".join(p.read_text(errors="ignore") if p.is_file() else "" for p in [out, *out.glob("**/*")])
        assert "t900" not in written and "question 1:" not in written, fmt


def test_qualification_from_failing_to_passing_and_answers_before_it_do_not_count(make):
    project = make("{qualify: {items: 5, pass: 0.8}, test_questions: {rate: 0}}", items=30, tests=12)
    store, spec = project.store, project.spec
    project.add_reviewer("bo")
    project.add_reviewer("eve", role="expert")
    first = review_queue(store, spec, "bo", limit=50)
    assert len(first) == 5 and {i.item_id for i in first} <= set(store.test_questions())
    assert {i.route for i in first} == {"needs_review"}, "shown like the queue's items"
    assert not {i.item_id for i in review_queue(store, spec, "eve", limit=50)} & set(store.test_questions())
    ordinary = project.store.review_item("llm", "t001")
    from labelloop.review import queue_item

    submit(store, spec, queue_item(store, spec, "t001"), "bo", {"label": "negative"}, "label")  # before qualifying
    for n, item in enumerate(first):
        submit(store, spec, item, "bo", {"label": truth(item.text) if n < 3 else wrong(truth(item.text))}, "label")
    state = project.qualification("bo")
    assert not state.qualified and [r.correct for r in state.rounds] == [3] and not state.rounds[0].passed
    from labelloop.people.qualification import feedback

    missed = feedback(store, spec, state.rounds[0])
    assert len(missed) == 2 and all(m["guidance"][0].startswith(m["right"]["label"] + ": ") for m in missed)
    second = review_queue(store, spec, "bo", limit=50)
    assert len(second) == 5 and not {i.item_id for i in second} & {i.item_id for i in first}, "unseen ones first"
    for item in second:
        submit(store, spec, item, "bo", {"label": truth(item.text)}, "label")
    assert project.qualification("bo").qualified
    project.aggregate()
    assert "t001" not in store.gold_outputs(), "bo answered it before qualifying"
    after = review_queue(store, spec, "bo", limit=1)[0]
    assert after.item_id not in store.test_questions()
    submit(store, spec, after, "bo", {"label": truth(after.text)}, "label")
    project.aggregate()
    assert after.item_id in store.gold_outputs() and ordinary is not None


def test_a_random_annotator_is_flagged_and_can_be_left_out(make):
    project = make("{test_questions: {rate: 0.35}, overlap: {annotators: 5}, aggregate: majority}", items=60)
    store = project.store
    rng = random.Random(2)
    accuracy = {"good": 0.95, "fair": 0.92, "keen": 0.95, "steady": 0.93, "random": 1 / 3}
    for name in accuracy:
        project.add_reviewer(name)
    for _ in range(70):
        for name in accuracy:
            if review_queue(store, project.spec, name, limit=1):
                answer_next(project, name, accuracy[name], rng)
    scores = {s.name: s for s in project.annotators()}
    bad = scores["random"]
    assert bad.flagged and not scores["good"].flagged and bad.tested >= 10
    low, high = proportion_confint(bad.right, bad.tested, alpha=0.05, method="wilson")
    assert (bad.accuracy_low, bad.accuracy_high) == pytest.approx((low, high))
    assert scores["good"].consensus_kappa > 0.6 > (bad.consensus_kappa or 0)
    assert any("test accuracy" in why for why in bad.why) and bad.trend and bad.seconds_per_answer is not None
    project.aggregate(force=True)
    with_everyone = store.db.execute("SELECT decided_by FROM gold").fetchall()
    assert any("random" in json.loads(r[0]) for r in with_everyone)
    spec = project.spec_path.read_text(encoding="utf-8").replace("aggregate: majority", "aggregate: majority,"
                                                                   " exclude_flagged: true")  # fmt: skip
    project.spec_path.write_text(spec, encoding="utf-8")
    with Project(project.root) as again:
        again.aggregate()
        assert not any("random" in json.loads(r[0]) for r in again.store.db.execute("SELECT decided_by FROM gold"))
    shown = CliRunner().invoke(app, ["annotators", "--project", str(project.root)])
    assert shown.exit_code == 0 and "flagged for retraining: random" in shown.output, shown.output
    as_json = json.loads(CliRunner().invoke(app, ["annotators", "--json", "--project", str(project.root)]).output)
    assert {s["name"] for s in as_json if s["flagged"]} == {"random"}


def test_test_questions_from_experts_keep_their_decision_as_data(make, tmp_path):
    project = make("{overlap: {annotators: 2}, test_questions: {rate: 0.5}}", items=30, tests=0)
    store, spec = project.store, project.spec
    project.add_reviewer("ana")
    project.add_reviewer("bo")
    project.add_reviewer("eve", role="expert")
    for item in review_queue(store, spec, "ana", limit=12):
        submit(store, spec, item, "ana", {"label": truth(item.text)}, "label")
    for item in review_queue(store, spec, "bo", limit=12):
        submit(store, spec, item, "bo", {"label": wrong(truth(item.text))}, "label")
    disputes = project.disputes()
    assert len(disputes) == 12
    for dispute in disputes[:4]:
        adjudicate(store, spec, dispute.item, "eve", {"label": truth(dispute.item.text)})
    runner = CliRunner()
    added = runner.invoke(app, ["test-questions", "add", "--from-experts", "--project", str(project.root)])
    assert added.exit_code == 0 and "4 test questions added (4 in all)" in added.output, added.output
    project.add_reviewer("cy")
    served = [answer_next(project, "cy", 1.0, random.Random(0)) for _ in range(12)]
    assert sum(item in store.test_questions() for item, _ in served) >= 2
    out = tmp_path / "labels.jsonl"
    project.export(out)
    methods = {r["id"]: r["method"] for r in map(json.loads, out.read_text().splitlines())}
    assert all(methods[d.item.item_id] == "expert" for d in disputes[:4]), "the expert's decision stays data"
    neither = runner.invoke(app, ["test-questions", "add", "--project", str(project.root)])
    assert neither.exit_code == 1 and "one" in neither.output


def test_the_guideline_digest_groups_differences_and_an_accepted_sentence_changes_the_prompt(make, tmp_path):
    project = make("{overlap: {annotators: 2}, test_questions: {rate: 0.3}}", items=30, tests=6)
    store, spec = project.store, project.spec
    for name in ("ana", "bo"):
        project.add_reviewer(name)
    project.add_reviewer("eve", role="expert")
    rng = random.Random(4)
    while review_queue(store, spec, "ana", limit=1):  # ana: right, but positive is negative to her
        item = review_queue(store, spec, "ana", limit=1)[0]
        right = truth(item.text)
        submit(store, spec, item, "ana", {"label": "negative" if right == "positive" else right}, "label")
    while review_queue(store, spec, "bo", limit=1):
        item = review_queue(store, spec, "bo", limit=1)[0]
        submit(store, spec, item, "bo", {"label": truth(item.text) if rng.random() < 0.9 else "neutral"}, "label")
    for dispute in project.disputes():
        adjudicate(store, spec, dispute.item, "eve", {"label": truth(dispute.item.text)})
    found = project.guideline_digest()
    assert set(found.sources) == {"dispute", "correction", "test"}
    top = {g.title: g for g in found.groups}
    group = top["label: negative → positive"]
    assert group.by_source["dispute"] >= 5 and group.by_source["test"] >= 1 and len(group.examples) == 3
    assert group.examples[0]["text"].startswith(("review", "question"))
    markdown = found.markdown(spec)
    assert "## label: negative → positive" in markdown and "none is applied until accepted" in markdown
    server = FaultServer(content="Label it positive when the writer recommends it, however plainly said.")
    proposed = project.guideline_digest(propose=True, backend="openai", base_url=server.base_url, model="fault")
    server.close()
    assert proposed.groups[0].proposal == "Label it positive when the writer recommends it, however plainly said."
    runs = store.db.execute("SELECT id, calls FROM runs WHERE labeler = 'guidelines'").fetchall()
    assert len(runs) == 1 and runs[0]["calls"] == len(proposed.groups[:10])
    assert store.db.execute("SELECT count(*) FROM llm_calls WHERE run_id = ?", (runs[0]["id"],)).fetchone()[0] \
        == runs[0]["calls"]
    version = store.db.execute("SELECT prompt_version FROM runs WHERE labeler = 'llm'").fetchone()[0]
    before, after = project.accept_guideline(proposed.groups[0].proposal)
    assert before == version != after and project.spec.guidelines.endswith("however plainly said.\n")
    result = CliRunner().invoke(app, ["guidelines", "accept", "Sarcasm counts as what the writer means.",
                                      "--project", str(project.root)])  # fmt: skip
    assert result.exit_code == 0 and f"prompt version {after} → " in result.output
    assert project.spec.guidelines.splitlines()[-2:] == [
        "- Label it positive when the writer recommends it, however plainly said.",
        "- Sarcasm counts as what the writer means."]
    assert "annotation:" in project.spec_path.read_text(), "the rest of the file stays as written"
    digest_md = tmp_path / "digest.md"
    shown = CliRunner().invoke(app, ["guidelines", "digest", "--out", str(digest_md), "--project", str(project.root)])
    assert shown.exit_code == 0 and digest_md.read_text().startswith("# Guideline digest: sentiment")


def test_flags_reach_the_report_and_experts_see_accuracies_beside_answers(make):
    from fastapi.testclient import TestClient

    project = make("{test_questions: {rate: 0.5}, overlap: {annotators: 2}, aggregate: majority}", items=40,
                   tests=12)  # fmt: skip
    store, spec = project.store, project.spec
    rng = random.Random(5)
    for name, right in (("ana", 1.0), ("rand", 0.2)):
        project.add_reviewer(name)
        while review_queue(store, spec, name, limit=1):
            answer_next(project, name, right, rng)
    token = project.add_reviewer("eve", role="expert")
    report = project.report()
    rows = {r.name: r for r in report.people.reviewers}
    assert rows["rand"].flag.startswith("test accuracy") and rows["ana"].flag == ""
    assert rows["ana"].test_accuracy.startswith("100% of ")
    dispute = project.disputes()[0]
    page = TestClient(project.web_app()).get(f"/adjudicate/{dispute.item.item_id}",
                                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert page.status_code == 200 and re.search(r"\((\d+)% on \d+ test questions\)", page.text)
