"""Schema history as code: each change is a small function, applied once, in order.

Append new migrations at the end; never edit one that has shipped.

Long on purpose: the schema's whole history, one small function per change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from ._base import begin_write

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next schema migration."""
    MIGRATIONS.append(fn)
    return fn


def apply_migrations(db: sqlite3.Connection) -> list[str]:
    """Apply every pending migration, each in its own transaction; return their names. The same functions
    run on SQLite and PostgreSQL (the connection translates column types; :func:`dialect` tells the rare
    statement that differs). Two processes opening one database at once apply each migration once."""
    begin_write(db)
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.execute("COMMIT")
    applied = []
    for fn in MIGRATIONS:
        begin_write(db)
        if db.execute("SELECT 1 FROM migrations WHERE name = ?", (fn.__name__,)).fetchone():
            db.execute("ROLLBACK")
            continue
        try:
            fn(db)
            db.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (fn.__name__, datetime.now(UTC).isoformat())
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(fn.__name__)
    return applied


def dialect(db: sqlite3.Connection) -> str:
    """``sqlite`` or ``postgresql``: which database a migration is writing."""
    return getattr(db, "dialect", "sqlite")


@migration
def m001_items_runs_calls_predictions(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE items (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            fields TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            source_file TEXT,
            source_line INTEGER,
            ingested_at TEXT NOT NULL
        )""",
        """CREATE TABLE prompts (
            version TEXT PRIMARY KEY,
            messages TEXT NOT NULL,
            item_template TEXT NOT NULL,
            output_schema TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            labeler TEXT NOT NULL,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            params TEXT NOT NULL,
            prompt_version TEXT NOT NULL REFERENCES prompts(version),
            job_key TEXT NOT NULL,
            status TEXT NOT NULL,
            pid INTEGER,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            items_planned INTEGER NOT NULL DEFAULT 0,
            items_done INTEGER NOT NULL DEFAULT 0,
            items_failed INTEGER NOT NULL DEFAULT 0,
            calls INTEGER NOT NULL DEFAULT 0,
            cache_hits INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )""",
        """CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            item_id TEXT NOT NULL REFERENCES items(id),
            cache_key TEXT NOT NULL,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_version TEXT NOT NULL REFERENCES prompts(version),
            request TEXT NOT NULL,
            response TEXT,
            output_text TEXT,
            status_code INTEGER,
            error TEXT,
            attempt INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX llm_calls_cache ON llm_calls(cache_key) WHERE error IS NULL",
        "CREATE INDEX llm_calls_item ON llm_calls(item_id)",
        """CREATE TABLE predictions (
            id INTEGER PRIMARY KEY,
            item_id TEXT NOT NULL REFERENCES items(id),
            labeler TEXT NOT NULL,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            call_id INTEGER REFERENCES llm_calls(id),
            job_key TEXT NOT NULL,
            item_hash TEXT NOT NULL,
            prompt_version TEXT NOT NULL REFERENCES prompts(version),
            model TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('ok', 'unparsable', 'failed')),
            output TEXT,
            raw_text TEXT,
            error TEXT,
            is_current INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX predictions_current ON predictions(item_id, labeler) WHERE is_current = 1",
        "CREATE INDEX predictions_run ON predictions(run_id)",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m002_validation_confidence_route(db: sqlite3.Connection) -> None:
    for column in (
        "problems TEXT",
        "repaired INTEGER NOT NULL DEFAULT 0",
        "confidence REAL",
        "confidence_method TEXT",
        "field_confidence TEXT",
        "route TEXT",
        "reasons TEXT",
    ):
        db.execute(f"ALTER TABLE predictions ADD COLUMN {column}")
    db.execute("CREATE INDEX predictions_route ON predictions(route, confidence) WHERE is_current = 1")


@migration
def m003_annotations_audit_log(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            item_id TEXT NOT NULL REFERENCES items(id),
            annotator TEXT NOT NULL,
            output TEXT NOT NULL,
            action TEXT NOT NULL,
            prediction_id INTEGER REFERENCES predictions(id),
            is_current INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX annotations_current ON annotations(item_id, annotator) WHERE is_current = 1",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            item_id TEXT,
            before TEXT,
            after TEXT,
            detail TEXT
        )""",
    ]
    if dialect(db) == "postgresql":
        statements += [
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
        ]
    else:
        statements += [
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
            " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
            " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        ]
    for statement in statements:
        db.execute(statement)


@migration
def m004_reviewers_versions_labelstudio(db: sqlite3.Connection) -> None:
    statements = [
        "ALTER TABLE items ADD COLUMN review_version INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE reviewers (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('annotator', 'expert')),
            token_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        )""",
        "ALTER TABLE annotations ADD COLUMN source TEXT NOT NULL DEFAULT 'labelloop'",
        "ALTER TABLE annotations ADD COLUMN external_id TEXT",
        "CREATE UNIQUE INDEX annotations_external ON annotations(source, external_id) WHERE external_id IS NOT NULL",
        """CREATE TABLE labelstudio_tasks (
            item_id TEXT NOT NULL REFERENCES items(id),
            ls_url TEXT NOT NULL,
            ls_project_id INTEGER NOT NULL,
            ls_task_id INTEGER NOT NULL,
            pushed_at TEXT NOT NULL,
            PRIMARY KEY (ls_url, ls_project_id, item_id)
        )""",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m005_overlap_adjudication_gold(db: sqlite3.Connection) -> None:
    statements = [
        "ALTER TABLE annotations ADD COLUMN kind TEXT NOT NULL DEFAULT 'answer'"
        " CHECK (kind IN ('answer', 'adjudication'))",
        "DROP INDEX annotations_current",
        "CREATE UNIQUE INDEX annotations_current ON annotations(item_id, annotator, kind) WHERE is_current = 1",
        """CREATE TABLE assignments (
            item_id TEXT PRIMARY KEY REFERENCES items(id),
            qc INTEGER NOT NULL,
            stratum TEXT NOT NULL,
            assigned_at TEXT NOT NULL
        )""",
        """CREATE TABLE gold (
            item_id TEXT PRIMARY KEY REFERENCES items(id),
            status TEXT NOT NULL CHECK (status IN ('decided', 'disputed')),
            output TEXT NOT NULL,
            method TEXT NOT NULL CHECK (method IN ('single', 'majority', 'dawid_skene', 'expert')),
            decided_by TEXT NOT NULL,
            confidence REAL,
            votes INTEGER NOT NULL,
            decided_at TEXT NOT NULL
        )""",
        """CREATE TABLE aggregations (
            id INTEGER PRIMARY KEY,
            method TEXT NOT NULL,
            watermark TEXT NOT NULL,
            items INTEGER NOT NULL,
            disputed INTEGER NOT NULL,
            details TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m006_embeddings_models_duplicates(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE embeddings (
            item_id TEXT NOT NULL REFERENCES items(id),
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (item_id, model)
        )""",
        """CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            data_version TEXT NOT NULL,
            embedder TEXT NOT NULL,
            examples INTEGER NOT NULL,
            report TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE duplicates (
            item_id TEXT PRIMARY KEY REFERENCES items(id),
            representative TEXT NOT NULL REFERENCES items(id),
            kind TEXT NOT NULL CHECK (kind IN ('exact', 'near')),
            similarity REAL NOT NULL,
            found_at TEXT NOT NULL
        )""",
        "CREATE INDEX duplicates_representative ON duplicates(representative)",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m007_cleaning_pii_duplicate_of(db: sqlite3.Connection) -> None:
    statements = [
        "ALTER TABLE items ADD COLUMN original TEXT",
        "ALTER TABLE items ADD COLUMN cleaning TEXT",
        """CREATE TABLE pii_findings (
            item_id TEXT NOT NULL REFERENCES items(id),
            type TEXT NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            detector TEXT NOT NULL,
            action TEXT NOT NULL
        )""",
        "CREATE INDEX pii_findings_item ON pii_findings(item_id)",
        """CREATE TABLE pii_vault (
            item_id TEXT PRIMARY KEY REFERENCES items(id),
            sealed BLOB NOT NULL
        )""",
        """CREATE TABLE pii_key (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            salt BLOB NOT NULL,
            check_token BLOB NOT NULL
        )""",
        "ALTER TABLE predictions ADD COLUMN duplicate_of TEXT",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m008_beyond_one_process(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE leases (
            item_id TEXT NOT NULL REFERENCES items(id),
            labeler TEXT NOT NULL,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            expires_at REAL NOT NULL,
            PRIMARY KEY (item_id, labeler)
        )""",
        "CREATE INDEX leases_run ON leases(run_id)",
        "ALTER TABLE runs ADD COLUMN host TEXT",
        "ALTER TABLE runs ADD COLUMN heartbeat_at REAL",
        "ALTER TABLE llm_calls ADD COLUMN endpoint TEXT",
        """CREATE TABLE review_claims (
            item_id TEXT NOT NULL REFERENCES items(id),
            reviewer TEXT NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (item_id, reviewer)
        )""",
        """CREATE TABLE sources (
            name TEXT PRIMARY KEY,
            watermark TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "ALTER TABLE items ADD COLUMN changed_at TEXT",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m009_test_questions(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE test_questions (
            item_id TEXT PRIMARY KEY REFERENCES items(id),
            answer TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('file', 'experts')),
            added_at TEXT NOT NULL
        )""",
        """CREATE TABLE test_answers (
            id INTEGER PRIMARY KEY,
            item_id TEXT NOT NULL REFERENCES items(id),
            annotator TEXT NOT NULL,
            output TEXT NOT NULL,
            action TEXT NOT NULL,
            correct INTEGER NOT NULL,
            purpose TEXT NOT NULL CHECK (purpose IN ('qualify', 'check')),
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX test_answers_annotator ON test_answers(annotator, id)",
    ]
    # gold.method: any aggregation method (auto chooses among several), no longer a fixed list
    if dialect(db) == "postgresql":
        statements.append("ALTER TABLE gold DROP CONSTRAINT IF EXISTS gold_method_check")
    else:
        statements += [
            """CREATE TABLE gold_new (
                item_id TEXT PRIMARY KEY REFERENCES items(id),
                status TEXT NOT NULL CHECK (status IN ('decided', 'disputed')),
                output TEXT NOT NULL,
                method TEXT NOT NULL,
                decided_by TEXT NOT NULL,
                confidence REAL,
                votes INTEGER NOT NULL,
                decided_at TEXT NOT NULL
            )""",
            "INSERT INTO gold_new SELECT item_id, status, output, method, decided_by, confidence, votes, decided_at"
            " FROM gold",
            "DROP TABLE gold",
            "ALTER TABLE gold_new RENAME TO gold",
        ]
    for statement in statements:
        db.execute(statement)


@migration
def m010_documents(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE documents (
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            is_current INTEGER NOT NULL DEFAULT 1,
            text TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            title TEXT,
            source TEXT,
            updated_at TEXT,
            ingested_at TEXT NOT NULL,
            PRIMARY KEY (id, version)
        )""",
        "CREATE UNIQUE INDEX documents_current ON documents(id) WHERE is_current = 1",
        """CREATE TABLE paragraphs (
            doc_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            id TEXT NOT NULL,
            number INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            sentences TEXT NOT NULL,
            PRIMARY KEY (doc_id, version, id),
            FOREIGN KEY (doc_id, version) REFERENCES documents(id, version)
        )""",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m011_document_collections(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE documents ADD COLUMN collection TEXT NOT NULL DEFAULT 'default'")


@migration
def m012_prediction_context(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE predictions ADD COLUMN context TEXT")  # what the model saw beside the item (JSON)
