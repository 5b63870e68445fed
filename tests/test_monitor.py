"""The drift alarm in a project: banking77 batches ingested file by file and labeled, a card-intents-only batch
raises the label alarm (in ``monitor``, in ``status`` and as the exit code of ``--fail-on-drift``), an unshifted
batch after it does not; a time window puts items ingested together in one batch."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FaultServer
from labelloop import Project
from labelloop.cli import app

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not (DATA / "banking77").is_dir(), reason="shared datasets not found")
CARDS = ["card_arrival", "lost_or_stolen_card", "card_payment_fee_charged"]
OTHERS = ["exchange_rate", "top_up_failed", "cash_withdrawal_charge"]
SPEC = f"""name: banking
kind: classify
instruction: Which banking intent is this question?
labels: [{", ".join(CARDS + OTHERS)}]
model: {{backend: openai, concurrency: 8}}
review: {{accept_without_confidence: true}}
monitor: {{reference_batches: 1}}
"""


@pytest.fixture
def banking_project(tmp_path):
    rows = [r for r in map(json.loads, (DATA / "banking77" / "train.jsonl").open()) if r["label"] in CARDS + OTHERS]
    truth = {r["text"]: r["label"] for r in rows}
    server = FaultServer()
    server.respond = lambda body: json.dumps({"label": truth[body["messages"][-1]["content"]]})  # the item template
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "labelloop.yaml").write_text(SPEC, encoding="utf-8")
    project = Project(tmp_path / "p")
    rng = random.Random(0)
    rng.shuffle(rows)
    yield project, rows, rng, server
    project.close()
    server.httpd.shutdown()


def ingest_and_label(project: Project, rows: list[dict], name: str, server: FaultServer) -> None:
    path = project.root / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows), encoding="utf-8")
    project.ingest(path)
    project.label(base_url=server.base_url, model="fault")


def test_a_card_only_batch_raises_the_label_alarm_and_an_unshifted_one_does_not(banking_project):
    project, rows, rng, server = banking_project
    mixed = [r for r in rows if r["label"] in OTHERS][:300] + [r for r in rows if r["label"] in CARDS][:150]
    rng.shuffle(mixed)
    cards = [r for r in rows if r["label"] in CARDS][150:350]
    ingest_and_label(project, mixed[:200], "week1", server)
    ingest_and_label(project, mixed[200:], "week2", server)
    assert project.monitor().latest_alarms == [] and project.status().drift == []
    ingest_and_label(project, cards, "week3", server)
    report = project.monitor()
    assert [b.name.rsplit("/", 1)[-1] for b in report.batches] == ["week1.jsonl", "week2.jsonl", "week3.jsonl"]
    assert report.batches[0].reference and not report.batches[1].alarms
    [alarm] = report.batches[2].alarms
    assert alarm.name == "labels" and alarm.value > 0.2 and alarm.p_value < 0.01
    assert project.status().drift and project.status().drift[0].startswith(f"{project.root / 'week3.jsonl'}: labels")
    runner = CliRunner()
    failing = runner.invoke(app, ["monitor", "--fail-on-drift", "--project", str(project.root)])
    assert failing.exit_code == 1 and "drift:" in failing.output
    as_json = json.loads(runner.invoke(app, ["monitor", "--json", "--project", str(project.root)]).output)
    assert [s["alarm"] for s in as_json["batches"][2]["statistics"]].count(True) == 1
    unshifted = [r for r in rows if r["label"] in OTHERS][300:400] + [r for r in rows if r["label"] in CARDS][350:400]
    ingest_and_label(project, unshifted, "week4", server)
    quiet = runner.invoke(app, ["monitor", "--fail-on-drift", "--project", str(project.root)])
    assert quiet.exit_code == 0, quiet.output
    assert "earlier:" in quiet.output and project.status().drift == []


def test_a_time_window_batches_items_ingested_together(banking_project):
    project, rows, _, server = banking_project
    spec = project.spec_path.read_text(encoding="utf-8").replace("reference_batches: 1", "window: 1d")
    project.spec_path.write_text(spec, encoding="utf-8")
    with Project(project.root) as windowed:
        ingest_and_label(windowed, rows[:100], "a", server)
        ingest_and_label(windowed, [r for r in rows if r["label"] in CARDS][:100], "b", server)
        report = windowed.monitor()
    assert len(report.batches) == 1 and report.batches[0].reference and report.latest_alarms == []


def test_a_reference_file_never_ingested_and_one_ingested_later(banking_project):
    project, rows, rng, server = banking_project
    others, cards = [r for r in rows if r["label"] in OTHERS], [r for r in rows if r["label"] in CARDS]
    mixed = others[:200] + cards[:100]
    rng.shuffle(mixed)
    reference = project.root / "reference.jsonl"
    reference.write_text("".join(json.dumps(r) + "\n" for r in mixed), encoding="utf-8")  # texts and labels
    spec = project.spec_path.read_text(encoding="utf-8").replace("reference_batches: 1", "reference: reference.jsonl")
    project.spec_path.write_text(spec, encoding="utf-8")
    with Project(project.root) as p:
        ingest_and_label(p, others[200:300] + cards[100:150], "week1", server)
        ingest_and_label(p, cards[150:300], "week2", server)
        report = p.monitor()
        assert [(b.name.rsplit("/", 1)[-1], b.items, b.reference) for b in report.batches] == [
            ("reference.jsonl", 300, True), ("week1.jsonl", 150, False), ("week2.jsonl", 150, False)]
        assert not report.batches[1].alarms
        assert [s.name for s in report.batches[2].alarms] == ["labels"]
        confidence = next(s for s in report.batches[2].statistics if s.name == "confidence")
        assert confidence.value is None, "a file read as it is has no confidences"
        # the same file ingested after the others: its items are the reference, whenever they came
        ingest_and_label(p, mixed, "reference", server)
        again = p.monitor()
        assert [(b.name.rsplit("/", 1)[-1], b.reference) for b in again.batches] == [
            ("reference.jsonl", True), ("week1.jsonl", False), ("week2.jsonl", False)]
        assert again.batches[0].items == 300 and [s.name for s in again.batches[2].alarms] == ["labels"]
    missing = spec.replace("reference: reference.jsonl", "reference: nowhere.jsonl")
    project.spec_path.write_text(missing, encoding="utf-8")
    failed = CliRunner().invoke(app, ["monitor", "--project", str(project.root)])
    assert failed.exit_code != 0 and "nowhere.jsonl" in failed.output and "monitor.reference" in failed.output


@pytest.mark.slow
def test_stored_embeddings_add_the_centroid_statistic(banking_project):
    from labelloop.learn.embed import SentenceTransformerEmbedder, ensure_embeddings

    project, rows, rng, server = banking_project
    others, cards = [r for r in rows if r["label"] in OTHERS], [r for r in rows if r["label"] in CARDS]
    ingest_and_label(project, others[:150] + cards[:50], "week1", server)
    ingest_and_label(project, others[150:230] + cards[50:80], "week2", server)
    ingest_and_label(project, cards[80:200], "week3", server)
    assert "embedding centroid" not in {s.name for s in project.monitor().batches[1].statistics}
    ensure_embeddings(project.store, SentenceTransformerEmbedder())
    report = project.monitor()
    week2, week3 = ({s.name: s for s in b.statistics} for b in report.batches[1:])
    assert not week2["embedding centroid"].alarm and week2["embedding centroid"].value < 0.25
    assert week3["embedding centroid"].alarm and week3["embedding centroid"].value > 0.3
