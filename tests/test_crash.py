"""kill -9 in the middle of a labeling run loses nothing: the rerun finishes, nothing is doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import make_project
from labelloop.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("backend")]


def rows(location, sql: str) -> list:
    store = Store.open(location)
    try:
        return [tuple(row) for row in store.db.execute(sql).fetchall()]
    finally:
        store.close()


def count(location, sql: str) -> int:
    return rows(location, sql)[0][0]


def label_command(project, server):
    return [sys.executable, "-m", "labelloop", "label", "--project", str(project.root), "--backend", "openai",
            "--base-url", server.base_url, "--model", "fault", "--concurrency", "4", "--quiet"]


def test_sigkill_mid_run_then_rerun_labels_every_item_exactly_once(tmp_path, fault_server):
    project = make_project(tmp_path / "p", [f"a review of product {i}" for i in range(300)])
    project.close()
    fault_server.default = "slow:0.03"
    process = subprocess.Popen(label_command(project, fault_server))
    deadline = time.monotonic() + 60
    while count(project.database, "SELECT count(*) FROM predictions") < 60:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    saved = count(project.database, "SELECT count(*) FROM predictions")
    assert 60 <= saved < 300

    fault_server.default = "ok"
    subprocess.run(label_command(project, fault_server), check=True, timeout=120)

    db = project.database
    assert count(db, "SELECT count(*) FROM items") == 300
    assert count(db, "SELECT count(*) FROM predictions WHERE is_current = 1") == 300
    assert count(db, "SELECT count(DISTINCT item_id) FROM predictions WHERE is_current = 1") == 300
    assert count(db, "SELECT count(*) FROM predictions") == 300  # saved work was not redone
    assert count(db, "SELECT count(*) FROM predictions WHERE status != 'ok'") == 0
    assert count(db, "SELECT count(*) FROM llm_calls WHERE error IS NULL") == 300
    statuses = [row[0] for row in rows(db, "SELECT status FROM runs ORDER BY id")]
    assert statuses == ["interrupted", "finished"]
