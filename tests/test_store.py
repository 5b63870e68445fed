"""The SQLite store: migrations, the pinned schema, current predictions, pending items, cache, stale runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from labelloop.store import MIGRATIONS, CallRecord, Item, PredictionRecord, Store, process_alive
from labelloop.store.migrations import apply_migrations

EXPECTED_SCHEMA = [
    ('aggregations',
     'CREATE TABLE aggregations ( id INTEGER PRIMARY KEY, method TEXT NOT NULL, watermark TEXT NOT NULL, items INTEGER NOT NULL, disputed INTEGER NOT NULL, details TEXT NOT NULL, created_at TEXT NOT NULL )'),
    ('annotations',
     "CREATE TABLE annotations ( id INTEGER PRIMARY KEY, item_id TEXT NOT NULL REFERENCES items(id), annotator TEXT NOT NULL, output TEXT NOT NULL, action TEXT NOT NULL, prediction_id INTEGER REFERENCES predictions(id), is_current INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL , source TEXT NOT NULL DEFAULT 'labelloop', external_id TEXT, kind TEXT NOT NULL DEFAULT 'answer' CHECK (kind IN ('answer', 'adjudication')))"),
    ('annotations_current',
     'CREATE UNIQUE INDEX annotations_current ON annotations(item_id, annotator, kind) WHERE is_current = 1'),
    ('annotations_external',
     'CREATE UNIQUE INDEX annotations_external ON annotations(source, external_id) WHERE external_id IS NOT NULL'),
    ('assignments',
     'CREATE TABLE assignments ( item_id TEXT PRIMARY KEY REFERENCES items(id), qc INTEGER NOT NULL, stratum TEXT NOT NULL, assigned_at TEXT NOT NULL )'),
    ('audit_log',
     'CREATE TABLE audit_log ( id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, item_id TEXT, before TEXT, after TEXT, detail TEXT )'),
    ('audit_log_no_delete',
     "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"),
    ('audit_log_no_update',
     "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"),
    ('documents',
     "CREATE TABLE documents ( id TEXT NOT NULL, version INTEGER NOT NULL, is_current INTEGER NOT NULL DEFAULT 1, text TEXT NOT NULL, content_hash TEXT NOT NULL, title TEXT, source TEXT, updated_at TEXT, ingested_at TEXT NOT NULL, collection TEXT NOT NULL DEFAULT 'default', PRIMARY KEY (id, version) )"),
    ('documents_current',
     'CREATE UNIQUE INDEX documents_current ON documents(id) WHERE is_current = 1'),
    ('duplicates',
     "CREATE TABLE duplicates ( item_id TEXT PRIMARY KEY REFERENCES items(id), representative TEXT NOT NULL REFERENCES items(id), kind TEXT NOT NULL CHECK (kind IN ('exact', 'near')), similarity REAL NOT NULL, found_at TEXT NOT NULL )"),
    ('duplicates_representative',
     'CREATE INDEX duplicates_representative ON duplicates(representative)'),
    ('embeddings',
     'CREATE TABLE embeddings ( item_id TEXT NOT NULL REFERENCES items(id), model TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (item_id, model) )'),
    ('gold',
     'CREATE TABLE "gold" ( item_id TEXT PRIMARY KEY REFERENCES items(id), status TEXT NOT NULL CHECK (status IN (\'decided\', \'disputed\')), output TEXT NOT NULL, method TEXT NOT NULL, decided_by TEXT NOT NULL, confidence REAL, votes INTEGER NOT NULL, decided_at TEXT NOT NULL )'),
    ('items',
     "CREATE TABLE items ( seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}', content_hash TEXT NOT NULL, source_file TEXT, source_line INTEGER, ingested_at TEXT NOT NULL , review_version INTEGER NOT NULL DEFAULT 0, original TEXT, cleaning TEXT, changed_at TEXT)"),
    ('labelstudio_tasks',
     'CREATE TABLE labelstudio_tasks ( item_id TEXT NOT NULL REFERENCES items(id), ls_url TEXT NOT NULL, ls_project_id INTEGER NOT NULL, ls_task_id INTEGER NOT NULL, pushed_at TEXT NOT NULL, PRIMARY KEY (ls_url, ls_project_id, item_id) )'),
    ('leases',
     'CREATE TABLE leases ( item_id TEXT NOT NULL REFERENCES items(id), labeler TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id), expires_at REAL NOT NULL, PRIMARY KEY (item_id, labeler) )'),
    ('leases_run',
     'CREATE INDEX leases_run ON leases(run_id)'),
    ('llm_calls',
     'CREATE TABLE llm_calls ( id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), item_id TEXT NOT NULL REFERENCES items(id), cache_key TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL REFERENCES prompts(version), request TEXT NOT NULL, response TEXT, output_text TEXT, status_code INTEGER, error TEXT, attempt INTEGER NOT NULL, latency_ms REAL NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, created_at TEXT NOT NULL , endpoint TEXT)'),
    ('llm_calls_cache',
     'CREATE INDEX llm_calls_cache ON llm_calls(cache_key) WHERE error IS NULL'),
    ('llm_calls_item',
     'CREATE INDEX llm_calls_item ON llm_calls(item_id)'),
    ('migrations',
     'CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)'),
    ('models',
     'CREATE TABLE models ( id INTEGER PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL, data_version TEXT NOT NULL, embedder TEXT NOT NULL, examples INTEGER NOT NULL, report TEXT NOT NULL, created_at TEXT NOT NULL )'),
    ('paragraphs',
     'CREATE TABLE paragraphs ( doc_id TEXT NOT NULL, version INTEGER NOT NULL, id TEXT NOT NULL, number INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, sentences TEXT NOT NULL, PRIMARY KEY (doc_id, version, id), FOREIGN KEY (doc_id, version) REFERENCES documents(id, version) )'),
    ('pii_findings',
     'CREATE TABLE pii_findings ( item_id TEXT NOT NULL REFERENCES items(id), type TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, detector TEXT NOT NULL, action TEXT NOT NULL )'),
    ('pii_findings_item',
     'CREATE INDEX pii_findings_item ON pii_findings(item_id)'),
    ('pii_key',
     'CREATE TABLE pii_key ( id INTEGER PRIMARY KEY CHECK (id = 1), salt BLOB NOT NULL, check_token BLOB NOT NULL )'),
    ('pii_vault',
     'CREATE TABLE pii_vault ( item_id TEXT PRIMARY KEY REFERENCES items(id), sealed BLOB NOT NULL )'),
    ('predictions',
     "CREATE TABLE predictions ( id INTEGER PRIMARY KEY, item_id TEXT NOT NULL REFERENCES items(id), labeler TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id), call_id INTEGER REFERENCES llm_calls(id), job_key TEXT NOT NULL, item_hash TEXT NOT NULL, prompt_version TEXT NOT NULL REFERENCES prompts(version), model TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'unparsable', 'failed')), output TEXT, raw_text TEXT, error TEXT, is_current INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL , problems TEXT, repaired INTEGER NOT NULL DEFAULT 0, confidence REAL, confidence_method TEXT, field_confidence TEXT, route TEXT, reasons TEXT, duplicate_of TEXT, context TEXT)"),
    ('predictions_current',
     'CREATE UNIQUE INDEX predictions_current ON predictions(item_id, labeler) WHERE is_current = 1'),
    ('predictions_route',
     'CREATE INDEX predictions_route ON predictions(route, confidence) WHERE is_current = 1'),
    ('predictions_run',
     'CREATE INDEX predictions_run ON predictions(run_id)'),
    ('prompts',
     'CREATE TABLE prompts ( version TEXT PRIMARY KEY, messages TEXT NOT NULL, item_template TEXT NOT NULL, output_schema TEXT NOT NULL, created_at TEXT NOT NULL )'),
    ('review_claims',
     'CREATE TABLE review_claims ( item_id TEXT NOT NULL REFERENCES items(id), reviewer TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (item_id, reviewer) )'),
    ('reviewers',
     "CREATE TABLE reviewers ( name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('annotator', 'expert')), token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0 )"),
    ('runs',
     'CREATE TABLE runs ( id INTEGER PRIMARY KEY, labeler TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL, params TEXT NOT NULL, prompt_version TEXT NOT NULL REFERENCES prompts(version), job_key TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER, started_at TEXT NOT NULL, finished_at TEXT, items_planned INTEGER NOT NULL DEFAULT 0, items_done INTEGER NOT NULL DEFAULT 0, items_failed INTEGER NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0, cache_hits INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, error TEXT , host TEXT, heartbeat_at REAL)'),
    ('sources',
     'CREATE TABLE sources ( name TEXT PRIMARY KEY, watermark TEXT NOT NULL, updated_at TEXT NOT NULL )'),
    ('test_answers',
     "CREATE TABLE test_answers ( id INTEGER PRIMARY KEY, item_id TEXT NOT NULL REFERENCES items(id), annotator TEXT NOT NULL, output TEXT NOT NULL, action TEXT NOT NULL, correct INTEGER NOT NULL, purpose TEXT NOT NULL CHECK (purpose IN ('qualify', 'check')), created_at TEXT NOT NULL )"),
    ('test_answers_annotator',
     'CREATE INDEX test_answers_annotator ON test_answers(annotator, id)'),
    ('test_questions',
     "CREATE TABLE test_questions ( item_id TEXT PRIMARY KEY REFERENCES items(id), answer TEXT NOT NULL, source TEXT NOT NULL CHECK (source IN ('file', 'experts')), added_at TEXT NOT NULL )"),
]

PROMPT = "p1"


@pytest.fixture
def store(store_location) -> Iterator[Store]:
    store = Store.open(store_location)
    yield store
    store.close()


def add_items(store: Store, *texts: str) -> list[Item]:
    """Items i0, i1, ... with content hash h-<text>."""
    items = [Item(f"i{n}", text, {}, f"h-{text}") for n, text in enumerate(texts)]
    with store.transaction():
        store.add_items(items)
    return items


def start_run(store: Store, *, pid: int | None = None, labeler: str = "m", job_key: str = "job") -> int:
    store.save_prompt(PROMPT, [{"role": "system", "content": "x"}], "{{ text }}", {"type": "object"})
    return store.start_run(labeler=labeler, backend="fake", model="fake-model", params={}, prompt_version=PROMPT,
                           job_key=job_key, items_planned=0, pid=os.getpid() if pid is None else pid)


def prediction(item: Item, *, labeler: str = "m", job_key: str = "job", status: str = "ok",
               item_hash: str | None = None, output: object = None, calls: list[CallRecord] | None = None,
               error: str | None = None) -> PredictionRecord:
    return PredictionRecord(item.id, labeler, job_key, item_hash or item.content_hash, PROMPT, "fake-model",
                            status, output=output, error=error, calls=calls or [])


def call(item: Item, cache_key: str, *, error: str | None = None, output_text: str | None = '{"label": "a"}',
         attempt: int = 1) -> CallRecord:
    return CallRecord(item.id, cache_key, "fake", "fake-model", PROMPT, {"messages": []}, attempt, 5.0,
                      response=None if error else "{}", output_text=None if error else output_text,
                      status_code=500 if error else 200, error=error)


def pending_ids(store: Store, labeler: str = "m", job_key: str = "job") -> list[str]:
    return [item.id for item in store.iter_pending(labeler, job_key)]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- migrations and schema ------------------------------------------------------------------

def test_fresh_store_records_exactly_the_known_migrations(store):
    recorded = [row[0] for row in store.db.execute("SELECT name FROM migrations ORDER BY applied_at, name")]
    assert recorded == [fn.__name__ for fn in MIGRATIONS]
    assert len(recorded) >= 1


def test_reopening_applies_no_migration_again(store_location):
    path = store_location
    store = Store.open(path)
    first = store.db.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall()
    store.close()
    store = Store.open(path)
    try:
        assert apply_migrations(store.db) == []
        again = store.db.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall()
        assert [tuple(r) for r in again] == [tuple(r) for r in first]
    finally:
        store.close()


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    store = Store.open(tmp_path / "labelloop.db")
    yield store
    store.close()


def test_schema_is_pinned(sqlite_store):
    """An intentional schema change needs a new migration *and* an update of EXPECTED_SCHEMA."""
    store = sqlite_store
    actual = [(name, " ".join(sql.split())) for name, sql in store.db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type IN ('table','index','trigger') AND sql IS NOT NULL"
        " ORDER BY name")]
    assert actual == EXPECTED_SCHEMA


def test_journal_mode_is_wal_and_foreign_keys_are_on(tmp_path):
    path = tmp_path / "labelloop.db"
    Store.open(path).close()
    store = Store.open(path)
    try:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        store.close()


def test_transaction_rolls_back_on_error(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.add_items([Item("x", "text", {}, "h")])
        raise RuntimeError("boom")
    assert store.count_items() == 0


# -- predictions --------------------------------------------------------------------------

def test_save_predictions_keeps_exactly_one_current_per_item_and_labeler(store):
    a, b = add_items(store, "alpha", "beta")
    run = start_run(store)
    store.save_predictions(run, [prediction(a, output={"label": "x1"}), prediction(b, output={"label": "y"})])
    store.save_predictions(run, [prediction(a, status="failed", error="timeout")])
    store.save_predictions(run, [prediction(a, output={"label": "x3"}),
                                 prediction(a, labeler="other", output={"label": "o"})])
    history = [tuple(r) for r in store.db.execute(
        "SELECT item_id, labeler, status, output, is_current FROM predictions ORDER BY id")]
    assert history == [
        ("i0", "m", "ok", '{"label":"x1"}', 0),
        ("i1", "m", "ok", '{"label":"y"}', 1),
        ("i0", "m", "failed", None, 0),
        ("i0", "m", "ok", '{"label":"x3"}', 1),
        ("i0", "other", "ok", '{"label":"o"}', 1),
    ]
    current = store.db.execute("SELECT item_id, labeler, count(*) FROM predictions WHERE is_current = 1"
                               " GROUP BY item_id, labeler ORDER BY item_id, labeler").fetchall()
    assert [tuple(r) for r in current] == [("i0", "m", 1), ("i0", "other", 1), ("i1", "m", 1)]
    assert [r["output"] for r in store.current_predictions("m")] == ['{"label":"x3"}', '{"label":"y"}']


def test_save_predictions_links_the_last_successful_call(store):
    [a] = add_items(store, "alpha")
    run = start_run(store)
    store.save_predictions(run, [prediction(a, calls=[call(a, "k", error="HTTP 500"), call(a, "k", attempt=2)])])
    store.save_predictions(run, [prediction(a, status="failed", error="HTTP 500",
                                            calls=[call(a, "k2", error="HTTP 500")])])
    rows = [tuple(r) for r in store.db.execute("SELECT call_id, status, is_current FROM predictions ORDER BY id")]
    calls = [tuple(r) for r in store.db.execute("SELECT id, attempt, error FROM llm_calls ORDER BY id")]
    assert calls == [(1, 1, "HTTP 500"), (2, 2, None), (3, 1, "HTTP 500")]
    assert rows == [(2, "ok", 0), (None, "failed", 1)]


# -- pending ----------------------------------------------------------------------------

def test_iter_pending_excludes_only_current_finished_predictions_for_the_job_and_content(store):
    items = add_items(store, "ok", "unparsable", "failed", "other-job", "other-labeler", "stale-hash", "none",
                      "superseded")
    ok, unparsable, failed, other_job, other_labeler, stale_hash, _none, superseded = items
    run = start_run(store)
    store.save_predictions(run, [
        prediction(ok, output={"label": "a"}),
        prediction(unparsable, status="unparsable", error="not JSON"),
        prediction(failed, status="failed", error="HTTP 500"),
        prediction(other_job, job_key="job-2", output={"label": "a"}),
        prediction(other_labeler, labeler="someone-else", output={"label": "a"}),
        prediction(stale_hash, item_hash="h-before-edit", output={"label": "a"}),
        prediction(superseded, output={"label": "a"}),
    ])
    store.save_predictions(run, [prediction(superseded, status="failed", error="retry failed")])
    expected = ["i2", "i3", "i4", "i5", "i6", "i7"]
    assert pending_ids(store) == expected
    assert store.count_pending("m", "job") == len(expected)
    assert pending_ids(store, job_key="job-2") == ["i0", "i1", "i2", "i4", "i5", "i6", "i7"]


def test_iter_pending_reads_in_chunks_in_ingest_order(store):
    add_items(store, *(f"t{n}" for n in range(7)))
    assert [item.id for item in store.iter_pending("m", "job", chunk=3)] == [f"i{n}" for n in range(7)]


# -- cache ------------------------------------------------------------------------------

def test_cached_calls_returns_only_successful_calls(store):
    a, b, c = add_items(store, "alpha", "beta", "gamma")
    run = start_run(store)
    store.save_predictions(run, [
        prediction(a, calls=[call(a, "ka", error="HTTP 500"), call(a, "ka", output_text='{"label": "good"}',
                                                                   attempt=2)]),
        prediction(b, status="failed", error="HTTP 500", calls=[call(b, "kb", error="HTTP 500")]),
        prediction(c, calls=[call(c, "kc", output_text='{"label": "first"}')]),
    ])
    store.save_predictions(run, [prediction(c, calls=[call(c, "kc", output_text='{"label": "newest"}')])])
    found = store.cached_calls(["ka", "kb", "kc", "unknown"])
    assert sorted(found) == ["ka", "kc"]
    assert found["ka"]["output_text"] == '{"label": "good"}'
    assert found["kc"]["output_text"] == '{"label": "newest"}'
    assert store.cached_calls([]) == {}


# -- stale runs -------------------------------------------------------------------------

def test_mark_stale_runs_interrupts_runs_of_dead_processes_only(store):
    dead = dead_pid()
    assert not process_alive(dead)
    stale = start_run(store, pid=dead)
    live = start_run(store, pid=os.getpid())
    finished = start_run(store, pid=dead)
    store.db.execute("UPDATE runs SET status = 'done' WHERE id = ?", (finished,))
    assert store.mark_stale_runs() == 1
    status = {r["id"]: (r["status"], r["error"]) for r in store.db.execute("SELECT id, status, error FROM runs")}
    assert status == {stale: ("interrupted", "process ended without finishing"), live: ("running", None),
                      finished: ("done", None)}
    assert store.mark_stale_runs() == 0


def test_leases_are_exclusive_and_a_dead_runs_leases_are_freed_at_once(store):
    add_items(store, *[f"text {n}" for n in range(10)])
    dead, live = start_run(store, pid=dead_pid()), start_run(store)
    mine = [item.id for _, item in store.claim(dead, "m", "job", 6, 60)]
    theirs = [item.id for _, item in store.claim(live, "m", "job", 6, 60)]
    assert len(mine) == 6 and len(theirs) == 4 and not set(mine) & set(theirs)
    assert store.claim(live, "m", "job", 6, 60) == []  # the rest is held, for another minute
    assert store.mark_stale_runs() == 1
    assert sorted(item.id for _, item in store.claim(live, "m", "job", 10, 60)) == sorted(mine)


def test_a_claim_comes_back_empty_only_when_every_item_is_leased(store_location):
    """Workers claiming side by side: one that is told "nothing left" exits, so that answer must be true. On
    PostgreSQL a claim can read rows another claim locked and commits meanwhile; it must read again, not give
    up. A worker told "nothing left" stops new claims, waits for those in flight (they may hold rows locked
    and not leased yet), and counts the items no lease holds: it must find none."""
    setup = Store.open(store_location)
    add_items(setup, *[f"text {n}" for n in range(400)])
    runs = [start_run(setup) for _ in range(6)]
    setup.close()
    gate, state = threading.Condition(), {"closed": False, "in_flight": 0}
    left_when_empty: list[int] = []

    def claim(worker: Store, run_id: int) -> list:
        with gate:
            gate.wait_for(lambda: not state["closed"])
            state["in_flight"] += 1
        try:
            return worker.claim(run_id, "m", "job", 4, 600)
        finally:
            with gate:
                state["in_flight"] -= 1
                gate.notify_all()

    def work(run_id: int) -> None:
        worker = Store.open(store_location)
        try:
            while claim(worker, run_id):
                pass
            with gate:
                gate.wait_for(lambda: not state["closed"])
                state["closed"] = True
                gate.wait_for(lambda: state["in_flight"] == 0)
            left_when_empty.append(worker.db.execute(
                "SELECT count(*) FROM items WHERE id NOT IN (SELECT item_id FROM leases)").fetchone()[0])
            with gate:
                state["closed"] = False
                gate.notify_all()
        finally:
            worker.close()

    threads = [threading.Thread(target=work, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert left_when_empty == [0] * len(runs)


# -- both backends -----------------------------------------------------------------------------

def columns(store: Store) -> dict[str, list[str]]:
    """Every table's column names, in order, read from the database's own catalogue."""
    if store.dialect == "postgresql":
        rows = store.db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " ORDER BY table_name, ordinal_position").fetchall()
    else:
        rows = [(table, column["name"]) for (table,) in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
            for column in store.db.execute(f"PRAGMA table_info({table})").fetchall()]
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def test_postgresql_has_the_same_tables_and_columns_as_sqlite(sqlite_store, postgres_cluster):
    pg = Store.open(postgres_cluster.database())
    try:
        assert pg.dialect == "postgresql"
        assert columns(pg) == columns(sqlite_store)
    finally:
        pg.close()


def test_the_audit_log_refuses_update_and_delete(store):
    store.audit("tester", "note", None, None, {"x": 1})
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            store.db.execute(statement)
    if store.dialect == "postgresql":
        with pytest.raises(Exception, match="append-only"):
            store.db.execute("TRUNCATE audit_log")
    assert [row["actor"] for row in store.audit_log()] == ["tester"]


def test_the_database_itself_refuses_a_second_current_prediction(store):
    [item] = add_items(store, "a")
    run = start_run(store)
    store.save_predictions(run, [prediction(item, output={"label": "a"})])
    with pytest.raises(Exception, match="(?i)unique"):
        store.db.execute(
            "INSERT INTO predictions (item_id, labeler, run_id, job_key, item_hash, prompt_version, model, status,"
            " created_at) VALUES (?, 'm', ?, 'job', 'h', ?, 'x', 'ok', 'now')", (item.id, run, PROMPT))


def test_two_processes_opening_a_new_database_apply_each_migration_once(store_location):
    """Migrations are recorded once even when two processes create the database together."""
    code = "import sys; from labelloop.store import Store; Store.open(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", code, str(store_location)]) for _ in range(2)]
    assert [process.wait(60) for process in processes] == [0, 0]
    store = Store.open(store_location)
    try:
        names = [row[0] for row in store.db.execute("SELECT name FROM migrations")]
        assert sorted(names) == sorted(fn.__name__ for fn in MIGRATIONS)
    finally:
        store.close()
