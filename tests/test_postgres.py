"""A project on PostgreSQL: the store named by ``store:`` or LABELLOOP_DATABASE_URL, and ``migrate-store``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import FaultServer, make_project
from labelloop import Project
from labelloop.cli import app
from labelloop.errors import ProjectError
from labelloop.store import Store

FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=2)


@pytest.fixture
def busy_project(tmp_path, monkeypatch):
    """A SQLite project with items, a run, calls, predictions, people's answers, embeddings and a PII key."""
    monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    fault = FaultServer()
    project = make_project(tmp_path / "p", ["Loved it.", "Broke on day one.", "It is blue.", "日本語と中文のテキスト"])
    project.label(base_url=fault.base_url, **FAST)
    fault.close()
    store = project.store
    prediction = store.current_predictions("llm")[0]
    store.add_annotation(prediction["item_id"], "ana", {"label": "negative"}, "corrected", prediction["id"])
    store.save_embeddings("mini", 2, [("t000", b"\x00\x01\x02\x03\x04\x05\x06\x07")])
    store.save_pii_key(b"salt\x00", b"check\xff")
    yield project
    project.close()


def export_lines(project: Project, path) -> list[dict]:
    project.export(path, "jsonl", include_unreviewed=True, actor="tester")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_migrate_store_copies_the_whole_project_and_proves_it(busy_project, postgres_cluster, tmp_path, monkeypatch):
    url = postgres_cluster.database()
    result = CliRunner().invoke(app, ["migrate-store", "--to", url, "--json", "--project", str(busy_project.root)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    tables = {table["table"]: table for table in report["tables"]}
    assert tables["items"]["target_rows"] == 4 and tables["llm_calls"]["target_rows"] == 4
    assert tables["annotations"]["target_rows"] == 1 and tables["embeddings"]["target_rows"] == 1
    assert all(t["source_rows"] == t["target_rows"] and t["source_hash"] == t["target_hash"] for t in tables.values())

    before = export_lines(busy_project, tmp_path / "sqlite.jsonl")
    monkeypatch.setenv("LABELLOOP_DATABASE_URL", url)
    moved = Project(busy_project.root)
    try:
        assert moved.store.dialect == "postgresql"
        assert export_lines(moved, tmp_path / "pg.jsonl") == before
        assert moved.status().items == 4
        vector = moved.store.db.execute("SELECT vector FROM embeddings").fetchone()[0]
        assert vector == b"\x00\x01\x02\x03\x04\x05\x06\x07"
        actions = [row["action"] for row in moved.store.audit_log()]
        assert actions[-2:] == ["migrate-store", "export"]  # new rows take ids after the copied ones
    finally:
        moved.close()


def test_migrate_store_refuses_a_database_that_already_holds_items(busy_project, postgres_cluster):
    url = postgres_cluster.database()
    busy_project.migrate_store(url, actor="tester")
    with pytest.raises(ProjectError, match="already holds items"):
        busy_project.migrate_store(url, actor="tester")


def test_the_copy_back_to_sqlite_is_the_same_project(busy_project, postgres_cluster, tmp_path):
    url = postgres_cluster.database()
    busy_project.migrate_store(url, actor="tester")
    pg = Store.open(url)
    try:
        from labelloop.store import copy_store
        back = Store.open(tmp_path / "back.db")
        proofs = copy_store(pg, back)
        back.close()
    finally:
        pg.close()
    assert all(proof.same for proof in proofs) and sum(proof.target_rows for proof in proofs) > 10


def test_the_spec_names_the_database(tmp_path, postgres_cluster, monkeypatch):
    monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    url = postgres_cluster.database()
    project = Project.init(tmp_path / "p")
    spec = project.spec_path.read_text(encoding="utf-8")
    project.spec_path.write_text(spec + f"\nstore: {url}\n", encoding="utf-8")
    reopened = Project(project.root)
    try:
        assert reopened.database == url and reopened.store.dialect == "postgresql"
    finally:
        reopened.close()
        project.close()


def test_a_store_that_is_not_a_database_url_is_refused_at_its_key(tmp_path, monkeypatch):
    monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    project = Project.init(tmp_path / "p")
    project.spec_path.write_text(project.spec_path.read_text(encoding="utf-8") + "\nstore: mysql://x/y\n")
    with pytest.raises(Exception, match="store"):
        _ = Project(project.root).spec
    project.close()


def test_an_unreachable_database_is_one_line(tmp_path):
    with pytest.raises(ProjectError, match="cannot connect"):
        Store.open("postgresql://nobody:secret@127.0.0.1:1/none")
