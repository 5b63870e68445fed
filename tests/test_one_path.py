"""One path through the library: every public entry point runs the same stages in the same order.

The CLI, :class:`labelloop.Project` and the module-level functions each ingest and label a project whose
spec masks PII; through every one of them, no raw value reaches the model (the server's requests), the
call log, the dedup grouping is applied, and the audit log names the actor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import labelloop
from conftest import FaultServer
from labelloop.cli import app

PHONE, EMAIL = "13812345678", "zhang.san@example.com"
SPEC = """name: support
kind: classify
instruction: Classify the customer message.
labels: [complaint, question, other]
pii: {types: {phone: mask, email: placeholder}}
dedup: {group: true, near: false}
"""
ROWS = [{"id": "a", "text": f"Call me at {PHONE} about the refund"},
        {"id": "b", "text": f"Mail {EMAIL}, my parcel never came"},
        {"id": "c", "text": f"Mail {EMAIL}, my parcel never came"},  # an exact duplicate of b
        {"id": "d", "text": "No personal data here"}]
MODEL = dict(backend="openai", model="fault", timeout=5, retries=0, backoff=0.01, concurrency=2)


def _through_cli(root: Path, data: Path, server: FaultServer) -> None:
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(data), "--id-field", "id", "--actor", "ana", "--project", str(root)])
    assert ingested.exit_code == 0, ingested.output
    labeled = runner.invoke(app, ["label", "--backend", "openai", "--base-url", server.base_url, "--model", "fault",
                                  "--retries", "0", "--quiet", "--actor", "ana", "--project", str(root)])
    assert labeled.exit_code == 0, labeled.output


def _through_project(root: Path, data: Path, server: FaultServer) -> None:
    with labelloop.Project(root) as project:
        project.ingest(data, id_field="id", actor="ana")
        project.label(actor="ana", base_url=server.base_url, **MODEL)


def _through_functions(root: Path, data: Path, server: FaultServer) -> None:
    spec = labelloop.load_spec(root / "labelloop.yaml")
    store = labelloop.Store.open(root / "labelloop.db")
    try:
        labelloop.ingest_file(store, spec, data, id_field="id", actor="ana")
        labelloop.label(store, spec, spec.model.with_overrides({"base_url": server.base_url, **MODEL}), actor="ana")
    finally:
        store.close()


@pytest.mark.parametrize("entry_point", [_through_cli, _through_project, _through_functions],
                         ids=["cli", "project", "functions"])
def test_every_entry_point_masks_before_the_model_groups_duplicates_and_names_the_actor(
        tmp_path, monkeypatch, entry_point):
    monkeypatch.setenv("LABELLOOP_PII_KEY", "correct horse battery staple")
    root = tmp_path / "p"
    root.mkdir()
    (root / "labelloop.yaml").write_text(SPEC, encoding="utf-8")
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    server = FaultServer(content=json.dumps({"label": "complaint"}))
    try:
        entry_point(root, data, server)
        sent = json.dumps(server.requests)
    finally:
        server.close()
    assert len(server.requests) == 3  # c is b's duplicate: it inherits b's answer instead of a call
    assert PHONE not in sent and EMAIL not in sent and "138****5678" in sent and "<EMAIL_1>" in sent
    with labelloop.Project(root) as project:
        logged = json.dumps([dict(row) for row in project.store.recent_calls(100)], default=str)
        assert PHONE not in logged and EMAIL not in logged
        inherited = {row["item_id"]: row["duplicate_of"] for row in project.store.current_predictions("llm")}
        assert inherited == {"a": None, "b": None, "c": "b", "d": None}
        actions = [(row["actor"], row["action"]) for row in reversed(project.audit())]
        assert actions == [("ana", "ingest"), ("ana", "label")]


def test_the_actor_defaults_to_the_os_user(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "os-user")  # getpass.getuser reads LOGNAME, USER, LNAME, USERNAME in turn
    monkeypatch.setenv("LOGNAME", "os-user")
    project = labelloop.Project.init(tmp_path / "p")
    data = tmp_path / "items.jsonl"
    data.write_text('{"text": "Great."}\n', encoding="utf-8")
    with project:
        project.ingest(data)
        project.export(tmp_path / "out.jsonl")
        assert [(r["actor"], r["action"]) for r in reversed(project.audit())] == [("os-user", "ingest"),
                                                                                 ("os-user", "export")]
