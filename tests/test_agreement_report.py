"""`labelloop agree` and `import-annotations`: the report, its thresholds and actions, heatmaps, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import Case, build_store, make_project
from labelloop.agree import agreement_report, rework
from labelloop.agree.heatmap import write_heatmap
from labelloop.cli import app
from labelloop.errors import InputError
from labelloop.review import review_queue
from labelloop.spec import parse_spec

SPEC = parse_spec("""
name: sentiment
kind: classify
instruction: Classify the sentiment.
labels: [positive, negative, neutral]
annotation: {overlap: {annotators: 2}, batch_match: 0.9, min_kappa: 0.6}
""")
TRUTH = ["positive", "negative", "neutral", "positive", "negative", "neutral", "positive", "negative"]


@pytest.fixture
def store(tmp_path):
    """ana and bob agree on everything; <b>cai</b> (a name with markup) flips labels; the model agrees with ana."""
    store = build_store(tmp_path / "s.db", SPEC, [
        Case(f"t{i}", f"text {i}", "needs_review", {"label": label}, 0.4) for i, label in enumerate(TRUTH)])
    flip = {"positive": "negative", "negative": "neutral", "neutral": "positive"}
    for i, label in enumerate(TRUTH):
        store.add_annotation(f"t{i}", "ana", {"label": label}, "label", None)
        store.add_annotation(f"t{i}", "bob", {"label": label}, "label", None)
        if i < 4:
            store.add_annotation(f"t{i}", "<b>cai</b>", {"label": flip[label]}, "label", None)
    return store


def test_report_measures_people_and_models_and_flags_the_odd_one(store):
    report = agreement_report(store, SPEC, min_pair_items=4)
    [facet] = report.facets
    assert (facet.facet, facet.level, facet.items) == ("answer", "nominal", 8)
    assert facet.percent_agreement == pytest.approx((4 * 1 + 4 * 1) / (4 * 3 + 4 * 1))  # agreeing pairs / pairs
    assert 0 < facet.krippendorff_alpha < 1
    rows = {a.name: a for a in report.annotators}
    assert rows["llm"].kind == "model" and rows["llm"].consensus_agreement == 1.0
    assert rows["ana"].consensus_kappa == pytest.approx(1.0) and not rows["ana"].flagged
    assert rows["<b>cai</b>"].consensus_agreement == 0.0 and rows["<b>cai</b>"].flagged
    pairs = {(p["a"], p["b"]): p for p in report.pairs}
    assert pairs[("ana", "bob")]["cohen_kappa"] == pytest.approx(1.0)
    assert pairs[("ana", "llm")]["items"] == 8  # the model appears beside people
    assert pairs[("<b>cai</b>", "ana")]["items"] == 4 and pairs[("<b>cai</b>", "ana")]["percent_agreement"] == 0
    assert len(agreement_report(store, SPEC).pairs) == 3  # pairs sharing under 5 items are left out
    assert {(c["a"], c["b"]) for c in report.confusions} >= {('"negative"', '"positive"')}
    json.dumps(report.to_dict())  # the JSON the CLI prints


def test_a_batch_under_the_match_threshold_goes_back_for_rework(store):
    report = agreement_report(store, SPEC)
    [batch] = report.batches
    assert (batch.items, batch.matching, batch.match_rate, batch.action) == (8, 4, 0.5, "rework")
    assert review_queue(store, SPEC, "dan") == []
    assert rework(store, report, "lead") == 20
    assert len(review_queue(store, SPEC, "dan", limit=100)) == 8  # every answer of the batch withdrawn
    assert [row["action"] for row in store.audit_log()].count("rework") == 20
    assert store.annotations() == []


def test_gold_answers_score_each_annotator(store):
    report = agreement_report(store, SPEC, gold={"t0": {"label": "positive"}, "t1": {"label": "neutral"}})
    rows = {a.name: a for a in report.annotators}
    assert (rows["ana"].gold_items, rows["ana"].gold_agreement) == (2, 0.5)
    assert (rows["<b>cai</b>"].gold_items, rows["<b>cai</b>"].gold_agreement) == (2, 0.5)


def test_heatmaps_escape_names_and_need_a_known_suffix(store, tmp_path):
    report = agreement_report(store, SPEC)
    html = Path(write_heatmap(report, tmp_path / "h.html")).read_text()
    assert "&lt;b&gt;cai&lt;/b&gt;" in html and "<b>cai</b>" not in html
    png = Path(write_heatmap(report, tmp_path / "h.png")).read_bytes()
    assert png.startswith(b"\x89PNG")
    with pytest.raises(InputError, match="png or .html"):
        write_heatmap(report, tmp_path / "h.svg")


MULTI = parse_spec("""
name: relations
kind: multilabel
instruction: Pick every relation.
labels: [TREATS, CAUSES, NONE]
""")


def test_multilabel_agreement_is_per_label_and_whole_answers_by_percent(tmp_path):
    store = build_store(tmp_path / "s.db", MULTI, [Case(f"m{i}", "x") for i in range(4)])
    answers = {"a": [["TREATS"], ["CAUSES"], ["NONE"], ["TREATS", "CAUSES"]],
               "b": [["TREATS"], ["CAUSES"], ["NONE"], ["TREATS"]]}
    for who, sets in answers.items():
        for i, labels in enumerate(sets):
            store.add_annotation(f"m{i}", who, {"labels": labels}, "label", None)
    facets = {f.facet: f for f in agreement_report(store, MULTI).facets}
    assert set(facets) == {"answer", "labels[TREATS]", "labels[CAUSES]", "labels[NONE]"}
    assert facets["answer"].percent_agreement == 0.75 and facets["answer"].krippendorff_alpha is None
    assert facets["labels[TREATS]"].krippendorff_alpha == pytest.approx(1.0)
    assert facets["labels[CAUSES]"].percent_agreement == 0.75


# -- import-annotations and the CLI ----------------------------------------------------------------

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def project(tmp_path):
    project = make_project(tmp_path / "p", ["Loved it.", "Broke.", "Blue.", "Fine."])
    yield project
    project.close()


def test_import_long_format_csv_then_agree_aggregate_and_adjudicate(project, tmp_path):
    data = tmp_path / "answers.csv"
    data.write_text("item,annotator,labels\n" + "".join(
        f"t00{i},{who},{label}\n" for who, labels in {"ana": "pnuu", "bob": "pnup", "cai": "pnnn"}.items()
        for i, label in enumerate({"p": "positive", "n": "negative", "u": "neutral"}[c] for c in labels)),
        encoding="utf-8")
    root = str(project.root)
    result = cli("import-annotations", str(data), "--field", "labels", "--project", root)
    assert result.exit_code == 0 and "12 answers added (0 already there) from 3 annotators on 4 items" in result.output
    assert "0 answers added (12 already there)" in cli("import-annotations", str(data), "--project", root).output

    report = json.loads(cli("agree", "--json", "--project", root).output)
    assert {a["name"] for a in report["annotators"]} == {"ana", "bob", "cai"}
    assert report["batches"][0]["action"] == "rework"  # 2 of 4 items unanimous
    table = cli("agree", "--heatmap", str(tmp_path / "h.html"), "--project", root).output
    assert "Fleiss" in table and "rework" in table and (tmp_path / "h.html").exists()

    aggregated = cli("aggregate", "--project", root).output
    assert "4 items decided by auto (majority 4); 1 disputed" in aggregated  # t003: p, u, n
    assert "label: majority — fewer than 50 questions with two or more answers" in aggregated
    cli("reviewer", "add", "eve", "--role", "expert", "--project", root)
    decided = runner.invoke(app, ["review", "--reviewer", "eve", "--adjudicate", "--project", root], input="2\n")
    assert decided.exit_code == 0 and "1 decided, 0 skipped, 0 left" in decided.output
    assert "bob" in decided.output and "cai" in decided.output  # every answer shown side by side
    [gold] = [row for row in project.store.gold() if row["item_id"] == "t003"]
    assert (gold["method"], json.loads(gold["output"])) == ("expert", {"label": "positive"})  # answer 2: bob's


def test_import_errors_name_file_line_and_field_and_write_nothing(project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item": "t000", "annotator": "ana", "labels": "positive"}\n'
                   '{"item": "t001", "annotator": "ana", "labels": "great"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'labels': does not fit the task: 'great' is not one"):
        project.import_annotations(bad)
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"item": "t000", "annotator": "ana", "labels": "positive"}\n'
                       '{"item": "zzz", "annotator": "ana", "labels": "positive"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"unknown.jsonl:2: field 'item': no item 'zzz'"):
        project.import_annotations(unknown)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"item": "t000", "labels": "positive"}\n', encoding="utf-8")
    result = cli("import-annotations", str(missing), "--project", str(project.root))
    assert result.exit_code == 1 and "missing.jsonl:1: field 'annotator': missing" in result.output
    assert project.store.annotations() == []


def test_fix_labels_accepts_stray_brackets_and_case_only_when_asked(project, tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text('{"item": "t000", "annotator": "w1", "labels": "[Positive"}\n', encoding="utf-8")
    with pytest.raises(InputError):
        project.import_annotations(data)
    result = project.import_annotations(data, fix_labels=True)
    assert (result.added, result.fixed_labels) == (1, 1)
    assert json.loads(project.store.annotations()[0]["output"]) == {"label": "positive"}
