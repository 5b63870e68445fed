"""Data hygiene in a project: cleaning at ingest, PII masked before any model call, dedup before labeling, audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FaultServer
from labelloop import Project
from labelloop.cli import app
from labelloop.errors import InputError, SpecError

FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=1)
PHONE, EMAIL, CN_ID = "13812345678", "zhang.san@example.com", "11010519491231002X"
SPEC = """name: support
kind: classify
instruction: Classify the customer message.
labels: [complaint, question, other]
{extra}
"""


def project_with(tmp_path: Path, extra: str, rows: list[dict]) -> tuple[Project, Path]:
    root = tmp_path / "p"
    root.mkdir()
    (root / "labelloop.yaml").write_text(SPEC.format(extra=extra), encoding="utf-8")
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return Project(root), data


def texts(project: Project) -> dict[str, str]:
    return dict(project.store.db.execute("SELECT id, text FROM items"))


# -- cleaning ----------------------------------------------------------------------------------------


def test_cleaning_keeps_the_original_labels_the_cleaned_and_reports_each_step(tmp_path):
    rows = [{"id": "a", "text": "<p>Ｈｅｌｌｏ &amp; welcome!</p>  see https://x.example/ad"},
            {"id": "b", "text": "ok"},
            {"id": "c", "text": "Refund\u200b please,\tmy order never came."}]
    project, data = project_with(tmp_path, "clean: {profile: basic, min_length: 5}", rows)
    with project:
        result = project.ingest(data, id_field="id")
        assert (result.added, result.filtered) == (2, {"too_short": 1})
        stored = texts(project)
        assert stored["a"] == "Hello & welcome!\nsee" and stored["c"] == "Refund please, my order never came."
        original = dict(project.store.db.execute("SELECT id, original FROM items"))
        assert original["a"] == rows[0]["text"] and original["c"] == rows[2]["text"]
        steps = json.loads(project.store.db.execute("SELECT cleaning FROM items WHERE id = 'a'").fetchone()[0])
        assert {"nfkc", "html", "urls", "whitespace"} <= set(steps)  # NFKC already folds full-width letters
        changed = result.hygiene["cleaning"]["changed"]
        assert changed["html"] == 1 and changed["control_chars"] == 1
        assert result.hygiene["cleaning"]["examples"]["html"]


def test_ingest_clean_profile_from_the_command_line(tmp_path):
    project, data = project_with(tmp_path, "", [{"id": "a", "text": "Hi <b>there</b>, unsubscribe here"}])
    project.close()
    result = CliRunner().invoke(app, ["ingest", str(data), "--id-field", "id", "--clean", "web",
                                      "--project", str(project.root)])
    assert result.exit_code == 0, result.output
    assert "cleaning changed: " in result.output and "html" in result.output
    with Project(project.root) as reopened:
        assert "<b>" not in texts(reopened)["a"]


# -- PII -------------------------------------------------------------------------------------------

PII_SPEC = "pii: {types: {phone: mask, email: placeholder, cn_id: mask}}"
PII_ROWS = [{"id": "p1", "text": f"请联系张三，电话{PHONE}，邮箱{EMAIL}，身份证号{CN_ID}，我要投诉"},
            {"id": "p2", "text": f"Call me at {PHONE} or mail {EMAIL} about the refund"},
            {"id": "p3", "text": "No personal data here"}]


def test_the_model_only_ever_sees_masked_text_and_the_key_holder_can_reveal(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELLOOP_PII_KEY", "correct horse battery staple")
    project, data = project_with(tmp_path, PII_SPEC, PII_ROWS)
    with project:
        result = project.ingest(data, id_field="id")
        assert result.hygiene["pii"] == {"phone": 2, "email": 2, "cn_id": 1}
        stored = texts(project)
        assert "138****5678" in stored["p1"] and "<EMAIL_1>" in stored["p1"] and CN_ID not in stored["p1"]
        fault = FaultServer(content=json.dumps({"label": "complaint"}))
        project.label(base_url=fault.base_url, **FAST)
        fault.close()
        calls = project.store.db.execute("SELECT request, response FROM llm_calls").fetchall()
        assert len(calls) == 3
        for request, _ in calls:  # every recorded call, and the shared prompt, are free of the raw values
            assert PHONE not in request and EMAIL not in request and CN_ID not in request
        out = tmp_path / "labels.jsonl"
        project.export(out, include_unreviewed=True)
        exported = out.read_text(encoding="utf-8")
        assert PHONE not in exported and EMAIL not in exported and "138****5678" in exported
        findings = project.pii_findings("p1")
        assert [f["type"] for f in findings] == ["phone", "email", "cn_id"]
        for f in findings:  # offsets point into the stored (masked) text, and no value is stored
            assert stored["p1"][f["start"]:f["end"]] in ("138****5678", "<EMAIL_1>", "**************002X")
        revealed = project.reveal_pii("p1", actor="dpo")
        assert revealed["original"] == PII_ROWS[0]["text"] and revealed["placeholders"] == {"<EMAIL_1>": EMAIL}
        assert [r["actor"] for r in project.audit(action="pii-reveal")] == ["dpo"]
    database = b"".join(p.read_bytes() for p in project.root.glob("labelloop.db*"))
    assert PHONE.encode() not in database and EMAIL.encode() not in database and CN_ID.encode() not in database


def test_pii_needs_the_projects_passphrase(tmp_path, monkeypatch):
    project, data = project_with(tmp_path, PII_SPEC, PII_ROWS)
    with project:
        monkeypatch.delenv("LABELLOOP_PII_KEY", raising=False)
        with pytest.raises(SpecError, match="pii.key_env: set LABELLOOP_PII_KEY to a passphrase"):
            project.ingest(data, id_field="id")
        assert texts(project) == {}
        monkeypatch.setenv("LABELLOOP_PII_KEY", "first")
        project.ingest(data, id_field="id")
        monkeypatch.setenv("LABELLOOP_PII_KEY", "second")
        with pytest.raises(SpecError, match="not this project's passphrase"):
            project.reveal_pii("p1")
        with pytest.raises(InputError, match="no sealed original"):
            monkeypatch.setenv("LABELLOOP_PII_KEY", "first")
            project.reveal_pii("p3")


# -- dedup before labeling ---------------------------------------------------------------------------


def test_one_member_per_duplicate_group_goes_to_the_model_the_rest_inherit(tmp_path):
    rows = [{"id": "d1", "text": "My parcel never arrived, I want my money back"},
            {"id": "d2", "text": "my parcel never arrived,  I want my money back"},
            {"id": "d3", "text": "My parcel never arrived, I want all my money back"},
            {"id": "d4", "text": "What are your opening hours on Sunday?"}]
    project, data = project_with(tmp_path, "dedup: {group: true, threshold: 0.6}", rows)
    with project:
        project.ingest(data, id_field="id")
        fault = FaultServer(content=json.dumps({"label": "complaint"}))
        run = project.label(base_url=fault.base_url, **FAST)
        fault.close()
        assert (run.counts.calls, run.inherited) == (2, 2)  # d1 and d4 asked; d2 and d3 inherit from d1
        out = tmp_path / "labels.jsonl"
        project.export(out, include_unreviewed=True)
        records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
        assert (records["d2"]["duplicate_of"], records["d3"]["duplicate_of"]) == ("d1", "d1")
        assert "duplicate_of" not in records["d4"] and records["d2"]["output"] == records["d1"]["output"]
        again = project.label(base_url="http://127.0.0.1:9/v1", **FAST)  # nothing pending: no server needed
        assert (again.counts.calls, again.inherited) == (0, 0)


# -- the audit log -------------------------------------------------------------------------------------


def test_audit_lists_who_ingested_labeled_and_exported_what(tmp_path):
    project, data = project_with(tmp_path, "", [{"id": "a", "text": "Where is my order?"}])
    with project:
        project.ingest(data, id_field="id")
        project.export(tmp_path / "out.jsonl", actor="ana")
    result = CliRunner().invoke(app, ["audit", "--json", "--project", str(project.root)])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["action"] for r in rows] == ["export", "ingest"]  # newest first
    assert rows[0]["actor"] == "ana" and json.loads(rows[0]["detail"])["path"].endswith("out.jsonl")
    only = CliRunner().invoke(app, ["audit", "--action", "ingest", "--json", "--project", str(project.root)])
    assert [r["action"] for r in json.loads(only.output)] == ["ingest"]
