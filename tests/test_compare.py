"""``labelloop compare`` end to end against a scripted server whose "prompts" differ by known amounts: the
verdict names the better variant in both directions, a threshold change re-judges cached answers with zero
calls, the comparison is kept in the project, and the CLI prints it, as JSON too, and writes its page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FaultServer
from labelloop import Project, SpecError
from labelloop.cli import app

LABELS = ["positive", "negative", "neutral"]
ITEMS = 600
RIGHT_OF_TEN = {"VARIANT-B": 8, "VARIANT-C": 6}  # items in ten answered right; the project's prompt: 7


def answer(body: dict) -> str:
    """Right for the first k of every ten items, k set by the prompt; else another label."""
    text = " ".join(m["content"] for m in body["messages"] if isinstance(m.get("content"), str))
    number = int(re.findall(r"review (\d+):", text)[-1])
    k = next((k for tag, k in RIGHT_OF_TEN.items() if tag in text), 7)
    right = LABELS[number % 3]
    return json.dumps({"label": right if number % 10 < k else LABELS[(number + 1) % 3]})


@pytest.fixture
def scripted(tmp_path):
    server = FaultServer()
    server.respond = answer
    project = Project.init(tmp_path / "p", "sentiment")
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": f"g{i}", "text": f"review {i}: it came on time", "label": LABELS[i % 3]})
                            + "\n" for i in range(ITEMS)), encoding="utf-8")  # fmt: skip
    yield project, gold, server
    project.close()
    server.httpd.shutdown()


def variants(*names: str) -> list[str]:
    spelled = {"better": "better:instruction=Classify the sentiment. VARIANT-B",
               "worse": "worse:instruction=Classify the sentiment. VARIANT-C",
               "strict": "strict:review.threshold=0.95,review.accept_without_confidence=false"}  # fmt: skip
    return [spelled.get(name, name) for name in names]


def test_the_verdict_names_the_better_variant_in_both_directions(scripted):
    project, gold, server = scripted
    result = project.compare(gold, variants("current", "better", "worse"), backend="openai",
                             base_url=server.base_url, model="fault")  # fmt: skip
    accuracy = {v.name: v.quality.value for v in result.variants}
    assert accuracy == {"current": 0.7, "better": 0.8, "worse": 0.6}
    said = {(v.a, v.b): v for v in result.verdicts}
    assert said["current", "better"].significant
    assert said["current", "better"].sentence().startswith("better beats current by +10.0 points of accuracy, 95% CI")
    assert said["current", "worse"].sentence().startswith("current beats worse by +10.0 points of accuracy")
    assert said["current", "better"].test.only_b == ITEMS // 10 and said["current", "better"].test.only_a == 0
    assert {v.cost["calls_now"] for v in result.variants} == {ITEMS}
    per_label = result.variants[0].quality.details["per_label"]
    assert set(per_label) == set(LABELS) and per_label["positive"]["support"] == ITEMS // 3
    # the comparison is kept in the project
    [row] = project.store.db.execute("SELECT detail FROM audit_log WHERE action = 'compare'").fetchall()
    kept = json.loads(row[0])
    assert kept["items"] == ITEMS and [v["quality"]["value"] for v in kept["variants"]] == [0.7, 0.8, 0.6]
    assert kept["verdicts"][0]["sentence"] == said["current", "better"].sentence()


def test_a_threshold_change_re_judges_cached_answers_with_zero_calls(scripted):
    project, gold, server = scripted
    options = dict(backend="openai", base_url=server.base_url, model="fault")
    project.compare(gold, variants("current", "better"), **options)
    calls = len(server.requests)
    again = project.compare(gold, variants("current", "strict"), **options)
    assert len(server.requests) == calls, "the gold store's cache served every answer"
    strict = again.variants[1]
    assert strict.cost["calls_now"] == 0 and strict.cost["cache_hits_now"] == ITEMS
    assert strict.quality.value == 0.7 and strict.routing["accepted_share"] == 0.0
    assert not again.verdicts[0].significant and again.verdicts[0].items_needed is None


def test_answers_the_project_already_has_for_the_same_texts_cost_no_call(scripted):
    project, gold, server = scripted
    options = dict(backend="openai", base_url=server.base_url, model="fault")
    texts = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines()]
    known = gold.parent / "known.jsonl"  # the first half of the gold texts, under other ids, labeled in the project
    known.write_text("".join(json.dumps({"id": f"p{i}", "text": r["text"]}) + "\n" for i, r in enumerate(texts[:300])),
                     encoding="utf-8")  # fmt: skip
    project.ingest(known, id_field="id")
    project.label(**options)
    asked = len(server.requests)
    result = project.compare(gold, variants("current", "better"), **options)
    current, better = result.variants
    assert current.cost["calls_now"] == 300 and current.cost["cache_hits_now"] == 300
    assert better.cost["calls_now"] == ITEMS, "another prompt: nothing known"
    assert len(server.requests) == asked + 300 + ITEMS
    assert current.quality.value == 0.7, "the project's answers are the same answers"
    assert current.cost["prompt_tokens_per_item"] == 10, "an adopted call keeps its tokens"
    again = project.compare(gold, variants("current", "better"), **options)
    assert [v.cost["calls_now"] for v in again.variants] == [0, 0]


def test_cli_table_json_and_page(scripted, monkeypatch):
    project, gold, server = scripted
    page = gold.parent / "compare.html"
    arguments = ["compare", *variants("current", "better"), "--gold", str(gold), "--project", str(project.root),
                 "--backend", "openai", "--base-url", server.base_url, "--model", "fault"]  # fmt: skip
    shown = CliRunner().invoke(app, [*arguments, "--html", str(page), "--quiet"])
    assert shown.exit_code == 0, shown.output
    assert "better beats current by +10.0 points of accuracy" in " ".join(shown.output.split())
    assert "better beats current" in page.read_text(encoding="utf-8") and "<script" not in page.read_text()
    as_json = CliRunner().invoke(app, [*arguments, "--json"])
    assert json.loads(as_json.output)["verdicts"][0]["significant"] is True


def test_bad_variants_fail_naming_the_variant_and_key(scripted):
    project, gold, _ = scripted
    with pytest.raises(SpecError, match="at least two"):
        project.compare(gold, ["current"])
    with pytest.raises(SpecError, match="review.threshold"):
        project.compare(gold, ["current", "bad:review.threshold=7"])
    with pytest.raises(SpecError, match="share a name"):
        project.compare(gold, ["current", "current"])
    with pytest.raises(SpecError, match="another shape"):
        project.compare(gold, ["current", "fewer:labels=[positive, negative]"])


DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "banking77").is_dir(), reason="shared datasets not found")
def test_compare_with_the_llama_cpp_server_on_banking77(tmp_path, llama_server):
    labels = ["card_arrival", "exchange_rate", "top_up_failed"]
    rows = []
    for line in (DATA / "banking77" / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        if row["label"] in labels and sum(r["label"] == row["label"] for r in rows) < 8:
            rows.append(row)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": f"b{i}", "text": r["text"], "label": r["label"]}) + "\n"
                            for i, r in enumerate(rows)), encoding="utf-8")  # fmt: skip
    project = Project.init(tmp_path / "p", "sentiment")
    spec = project.spec_path.read_text(encoding="utf-8").split("labels:")[0]
    project.spec_path.write_text(spec.replace("sentiment of an English", "banking intent of a")
                                 + f"labels: [{', '.join(labels)}]\nmodel: {{backend: openai, max_tokens: 24}}\n",
                                 encoding="utf-8")  # fmt: skip
    project.close()
    with Project(tmp_path / "p") as project:
        result = project.compare(gold, ["current", "loose:review.threshold=0.3"], base_url=llama_server,
                                 html=tmp_path / "page.html")  # fmt: skip
    current, loose = result.variants
    assert result.items == 24 and current.cost["calls_now"] >= 24 and loose.cost["calls_now"] == 0
    assert current.quality.correct == loose.quality.correct, "a threshold changes routes, not answers"
    assert loose.routing["accepted_share"] >= current.routing["accepted_share"]
    assert current.routing["ece"] is not None and current.cost["latency_p50_ms"] > 0
    assert "no significant difference" in result.verdicts[0].sentence()
    assert (tmp_path / "page.html").stat().st_size > 1000
