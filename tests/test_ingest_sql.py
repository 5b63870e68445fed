"""Incremental ingest from a database: a real PostgreSQL table (and a SQLite file) as the source; rows inserted,
updated and deleted between runs; only the new and the changed come in, and the changed are labeled again."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from conftest import FaultServer, make_project
from labelloop.cli import app
from labelloop.cli.pipeline import parse_interval
from labelloop.errors import InputError
from labelloop.review import queue_item

pytest.importorskip("sqlalchemy")
QUERY = "SELECT id, body AS text, team, updated_at FROM tickets"
FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=2)


@pytest.fixture
def tickets(postgres_cluster):
    """A PostgreSQL database with a tickets table, and a function that runs SQL on it."""
    import psycopg

    url = postgres_cluster.database()
    db = psycopg.connect(url, autocommit=True)
    db.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, body TEXT NOT NULL, team TEXT,"
               " updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())")
    db.execute("INSERT INTO tickets (id, body, team) SELECT n, 'ticket number ' || n, 'a' FROM generate_series(1, 5) n")
    yield url, lambda sql: db.execute(sql)
    db.close()


def test_reruns_take_the_new_and_the_changed_rows_and_nothing_else(tmp_path, tickets, monkeypatch):
    monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    url, run = tickets
    project = make_project(tmp_path / "p", ["a file item"])
    first = project.ingest_sql(url, QUERY, since_column="updated_at", actor="tester")
    assert (first.added, first.changed) == (5, 0)
    again = project.ingest_sql(url, QUERY, since_column="updated_at")
    assert (again.added, again.changed) == (0, 0) and again.unchanged >= 1  # the rows at the watermark, read again

    fault = FaultServer()
    project.label(base_url=fault.base_url, **FAST)
    fault.close()
    prediction = {row["item_id"]: row for row in project.store.current_predictions("llm")}["2"]
    project.store.add_annotation("2", "ana", {"label": "negative"}, "corrected", prediction["id"])
    assert project.store.count_pending("llm", prediction["job_key"]) == 0

    run("INSERT INTO tickets (id, body, team) VALUES (6, 'a new ticket', 'b'), (7, 'another one', 'b')")
    run("UPDATE tickets SET body = 'ticket number 2, edited', updated_at = clock_timestamp() WHERE id = 2")
    run("UPDATE tickets SET team = team, updated_at = clock_timestamp() WHERE id = 3")  # touched, same content
    run("DELETE FROM tickets WHERE id = 4")
    third = project.ingest_sql(url, QUERY, since_column="updated_at")
    assert (third.added, third.changed) == (2, 1)
    assert project.store.count_items() == 8  # the deleted row's item stays

    store = project.store
    item = store.db.execute("SELECT text, review_version, changed_at FROM items WHERE id = '2'").fetchone()
    assert item["text"] == "ticket number 2, edited" and item["changed_at"]
    assert item["review_version"] == 2  # an answer, then the change
    pending = {i.id for i in store.iter_pending("llm", prediction["job_key"])}
    assert pending == {"2", "6", "7"}  # the changed one is labeled again, the untouched ones are not
    answers = store.annotations("2")
    assert [(a["annotator"], a["is_current"]) for a in answers] == [("ana", 0)]  # kept, as history
    assert store.db.execute("SELECT count(*) FROM predictions WHERE item_id = '2'").fetchone()[0] == 1
    changed = [row for row in store.audit_log("2") if row["action"] == "item-changed"]
    assert len(changed) == 1 and "ticket number 2" in changed[0]["before"]
    assert queue_item(store, project.spec, "2").changed_at == item["changed_at"]  # the reviewer is told
    project.close()


def test_a_sqlite_file_is_a_source_too_and_the_cli_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    source = tmp_path / "tickets.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE tickets (id TEXT, body TEXT, team TEXT, updated_at INTEGER)")
        db.executemany("INSERT INTO tickets VALUES (?, ?, 'a', ?)", [(f"k{n}", f"text {n}", n) for n in range(4)])
    project = make_project(tmp_path / "p", ["a file item"])
    project.close()
    args = ["ingest", "--from-sql", f"sqlite:///{source}", "--query", QUERY, "--since-column", "updated_at",
            "--project", str(project.root)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 added, 0 changed" in result.output
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO tickets VALUES ('k9', 'late', 'a', 9)")
    assert "1 added, 0 changed" in CliRunner().invoke(app, args).output


def test_bad_sources_are_one_line(tmp_path, tickets, monkeypatch):
    monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    url, _ = tickets
    project = make_project(tmp_path / "p", ["a file item"])
    with pytest.raises(InputError, match="no column 'text'"):
        project.ingest_sql(url, "SELECT id, body FROM tickets")
    with pytest.raises(InputError, match="not a column name"):
        project.ingest_sql(url, QUERY, since_column="updated_at; DROP TABLE tickets")
    with pytest.raises(InputError, match="the database refused"):
        project.ingest_sql(url, "SELECT id, text FROM no_such_table")
    assert project.store.count_items() == 1
    project.close()


def test_intervals():
    assert [parse_interval(text) for text in ("30s", "5m", "1h", "2")] == [30, 300, 3600, 2]
