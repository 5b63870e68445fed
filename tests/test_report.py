"""``labelloop report``: a project that went through the whole loop — two ingested batches (the second shifted),
labels with self-consistency confidences from a scripted server, answers from two annotators with overlap, an
expert settling disputes, a comparison and a simulation — written as one HTML page and opened in headless
Chromium: no console error, no network request, every plot drawn with data, escaped names, a screenshot."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FaultServer
from labelloop import Project
from labelloop.cli import app
from labelloop.review import adjudicate

LABELS = ["positive", "negative", "neutral"]
EVIL = "<img src=x onerror=alert(1)>"
SPEC = """name: sentiment
kind: classify
instruction: Classify the sentiment.
labels: [positive, negative, neutral]
model: {backend: openai, model: fault, concurrency: 8, temperature: 0}
review: {self_consistency: 3, threshold: 0.6}
annotation: {aggregate: majority}
monitor: {reference_batches: 1}
"""
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LABELLOOP_CHROMIUM", "/usr/bin/chromium")


def truth(text: str) -> str:
    return LABELS[int(re.findall(r"review (\d+)", text)[-1]) % 3]


def scripted_answer(rng: random.Random):
    """The right label three times in four, else another: self-consistency samples disagree now and then."""

    def answer(body: dict) -> str:
        right = truth(body["messages"][-1]["content"])
        return json.dumps({"label": right if rng.random() < 0.75 else rng.choice(LABELS)})

    return answer


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def busy_project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    root = tmp / "p"
    root.mkdir()
    (root / "labelloop.yaml").write_text(SPEC, encoding="utf-8")
    server = FaultServer()
    server.respond = scripted_answer(random.Random(0))
    project = Project(root)
    first = [{"id": f"a{i}", "text": f"review {i}: it came on time"} for i in range(150)]
    shifted = [{"id": f"b{i}", "text": f"review {3 * i + 1}: broke at once, and the box was dented"}
               for i in range(150)]  # fmt: skip
    for name, rows in (("week1.jsonl", first), (f"week2 {EVIL}.jsonl", shifted)):
        project.ingest(write_jsonl(tmp / name, rows), id_field="id")
        project.label(base_url=server.base_url)
    project.add_reviewer("ana")
    project.add_reviewer(f"bo{EVIL}")
    project.add_reviewer("eve", role="expert")
    rng = random.Random(1)
    answers = []
    for i, row in enumerate(first[:80] + shifted[:40]):
        right = truth(row["text"])
        for who, accuracy in (("ana", 0.95), (f"bo{EVIL}", 0.8)):
            if who == "ana" or i % 2 == 0:
                label = right if rng.random() < accuracy else rng.choice([x for x in LABELS if x != right])
                answers.append({"item": row["id"], "annotator": who, "labels": {"label": label}})
    project.import_annotations(write_jsonl(tmp / "answers.jsonl", answers))
    disputes = project.disputes()
    assert disputes, "the annotators disagree on some items"
    for dispute in disputes[:3]:
        adjudicate(project.store, project.spec, dispute.item, "eve", {"label": truth(dispute.item.text)})
    project.aggregate()
    gold = write_jsonl(tmp / "gold.jsonl", [{"id": f"g{i}", "text": f"review {i}: fine", "label": LABELS[i % 3]}
                                            for i in range(60)])  # fmt: skip
    project.compare(gold, ["current", "strict:review.threshold=0.9"], base_url=server.base_url)
    yield project, tmp, server
    project.close()
    server.close()


def test_the_report_gathers_every_section(busy_project):
    project, tmp, _ = busy_project
    report = project.report()
    assert report.status.items == 300
    assert sum(report.progress.values["ingested"]) == 300 and sum(report.progress.values["labeled:llm"]) == 300
    assert sum(report.cost.calls.values["calls"]) == report.status.calls["calls"] > 300
    assert report.confidence.checked > 0 and report.confidence.ece is not None
    assert len(report.confidence.values) == 300
    [llm] = [q for q in report.labelers if q.name == "llm"]
    assert llm.quality is not None and set(llm.parts) == set(LABELS)
    reviewers = {r.name: r for r in report.people.reviewers}
    assert reviewers["ana"].answers == 120 and reviewers[f"bo{EVIL}"].answers == 60
    assert reviewers["eve"].adjudications == 3 and reviewers["eve"].role == "expert"
    assert sum(report.people.agreement.values["items"]) == 60
    assert [c["variants"][1]["name"] for c in report.comparisons] == ["strict"]
    assert report.drift is not None and any(s.name == "labels" for s in report.drift.batches[1].alarms)


def test_the_page_renders_in_chromium_with_every_plot_drawn(busy_project):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"the report's browser test needs Debian's chromium at {CHROMIUM}", pytrace=False)
    project, tmp, _ = busy_project
    simulated = write_jsonl(tmp / "simulate.jsonl", [{"text": f"review {i}: {'good great' if i % 3 == 0 else 'bad'}"
                                                      f" {'awful' if i % 3 == 1 else 'so-so'}", "label": LABELS[i % 3]}
                                                     for i in range(150)])  # fmt: skip
    project.simulate(simulated, use_llm=False, out=tmp / "sim")
    page_path = tmp / "report.html"
    result = CliRunner().invoke(app, ["report", "--out", str(page_path), "--project", str(project.root)])
    assert result.exit_code == 0, result.output
    assert "300 items" in result.output and "1 comparisons" in result.output
    html = page_path.read_text(encoding="utf-8")
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing is fetched"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors, requests, dialogs = [], [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        drawn = page.eval_on_selector_all("figure.plot", """figures => figures.map(f => ({
            key: f.dataset.plot, points: Number(f.dataset.points),
            marks: f.querySelectorAll('svg [id*="-data-"]').length,
            width: f.querySelector('svg').getBoundingClientRect().width}))""")
        empty = page.eval_on_selector_all("[data-plot-empty]", "nodes => nodes.map(n => n.dataset.plotEmpty)")
        ARTIFACTS = ROOT / "test-artifacts"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        page.screenshot(path=str(ROOT / "docs" / "report.png"), full_page=False)
        browser.close()
    assert errors == [] and requests == [] and dialogs == []
    keys = {d["key"] for d in drawn}
    assert keys == {"progress", "routes", "reasons", "calls", "latency", "confidence", "labelers", "confusion",
                    "throughput", "agreement", "settled", "effort", "drift"}, (keys, empty)
    for plot in drawn:
        assert plot["points"] > 0 and plot["marks"] > 0 and plot["width"] > 100, plot


def test_an_empty_project_says_what_would_fill_each_plot(tmp_path):
    project = Project.init(tmp_path / "p", "sentiment")
    page = tmp_path / "r.html"
    report = project.report(page)
    html = page.read_text(encoding="utf-8")
    assert report.status.items == 0 and report.drift is None
    assert 'class="plot"' not in html and "Nothing ingested yet: labelloop ingest FILE." in html
    assert "No comparison yet" in html and "No simulation yet" in html
    project.close()


def test_time_buckets_fit_the_span_and_the_reliability_bins_match_sklearn():
    from sklearn.calibration import calibration_curve

    from labelloop.learn.calibrate import reliability_table
    from labelloop.report.timeline import bucket

    seconds = bucket({"a": [("2026-01-01T00:00:00.500", 1), ("2026-01-01T00:00:09", 2)]})
    assert seconds.width.total_seconds() == 1 and len(seconds.starts) == 10 and seconds.values["a"][-1] == 2
    months = bucket({"a": [("2026-01-01T00:00:00", 1)], "b": [("2026-03-01T12:00:00+02:00", 3)]})
    assert months.width.days == 7 and sum(months.values["b"]) == 3 and len(months.starts) <= 48
    assert months.cumulative("a")[-1] == 1 and months.width_label == "week"
    assert bucket({"a": []}).starts == []
    rng = random.Random(0)
    confidence = [rng.random() for _ in range(500)]
    correct = [rng.random() < c for c in confidence]
    table = reliability_table(confidence, correct)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=10, strategy="uniform")
    assert [b["accuracy"] for b in table] == pytest.approx(list(accuracy))
    assert [b["mean_confidence"] for b in table] == pytest.approx(list(mean_confidence))


def test_working_time_per_answer_leaves_breaks_out():
    from labelloop.report.people import _reviewer

    times = ["2026-01-01T09:00:00", "2026-01-01T09:00:20", "2026-01-01T09:00:50", "2026-01-01T13:00:00"]
    rows = [{"kind": "answer", "item_id": f"i{n}", "created_at": t} for n, t in enumerate(times)]
    found = _reviewer("ana", "annotator", rows)
    assert (found.answers, found.items, found.seconds_per_answer) == (4, 4, 25.0), "the 4-hour break is left out"
