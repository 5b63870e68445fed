"""The Ray runner against a real local Ray cluster (``ray start --head`` on 127.0.0.1) and the latency-and-fault
server: it labels exactly as the local engine does (store mode and lake mode), exactly once when the driver is
killed and the job rerun, and stops on bad input with one line naming file and field, writing no shard."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import make_project
from labelloop import Project, label
from labelloop.errors import BackendUnavailable, InputError
from labelloop.job import LabelOptions
from labelloop.lake import RayOptions, label_on_ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from simserver import SimServerProcess  # noqa: E402

# the test cluster and every client (this process, the CLI drivers it starts) share one token; Ray reads it
# once, so it is set before Ray is imported
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
ray = pytest.importorskip("ray", reason="the [ray] extra is part of the dev install")
pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))
# mostly one label, some another, a label outside the schema and no JSON at all (picked by the request's size):
# samples agree or not, and the gate accepts, re-asks and routes to review
ANSWERS = ('{"label": "positive"}',) * 6 + ('{"label": "negative"}', '{"label": "bogus"}', "no idea")


@pytest.fixture(scope="module")
def ray_cluster():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--node-ip-address=127.0.0.1", "--disable-usage-stats"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    address = f"127.0.0.1:{port}"
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    yield address
    ray.shutdown()
    subprocess.run([RAY, "stop", "--force"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def texts(count: int) -> list[str]:
    moods = ["arrived late and broken", "works perfectly", "is a phone", "was refunded at once", "never again"]
    return [f"ticket {i}: the order {moods[i % len(moods)]}{'!' * (i % 7)}" for i in range(count)]


def write_parquet(path: Path, rows: list[dict], row_group_size: int) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size, use_dictionary=False)
    return path


def gate_spec(project: Project):
    """The project's spec with self-consistency (extra calls, real confidences) and ids taken from the input."""
    spec = project.spec
    review = spec.review.model_copy(update={"self_consistency": 3, "threshold": 0.6})
    return spec.model_copy(update={"review": review, "input": spec.input.model_copy(update={"id_field": "id"})})


def current(project: Project) -> dict[str, tuple]:
    rows = project.store.db.execute(
        "SELECT item_id, status, output, confidence, route, reasons, field_confidence, error FROM predictions"
        " WHERE is_current = 1"
    ).fetchall()
    return {r[0]: (r[1], None if r[2] is None else json.loads(r[2]), r[3], r[4], json.loads(r[5]),
                   json.loads(r[6]), r[7]) for r in rows}  # fmt: skip


def shard_rows(out: Path, kind: str = "predictions") -> list[dict]:
    files = sorted((out / kind).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_store_mode_and_lake_mode_label_as_the_local_engine_does(tmp_path, ray_cluster):
    items = texts(2000)
    with SimServerProcess(slots=64, latency_ms=5, answers=ANSWERS) as server:
        local = make_project(tmp_path / "local", items)
        spec = gate_spec(local)
        settings = local.settings(backend="openai", base_url=server.base_url, model="sim")
        label(local.store, spec, settings)
        on_ray = make_project(tmp_path / "ray", items)
        result = label_on_ray(on_ray.store, spec, settings, ray_options=RayOptions(shard_rows=300))
        lake = Project.init(tmp_path / "lake", "sentiment")
        write_parquet(tmp_path / "in.parquet", [{"id": f"t{i:03d}", "text": t} for i, t in enumerate(items)],
                      row_group_size=700)
        # input and output as URLs (the code path of s3://, gs://, …) and the input as a glob
        lake_result = label_on_ray(lake.store, spec, settings,
                                   ray_options=RayOptions(inputs=[f"file://{tmp_path}/in*.parquet"],
                                                          output=f"file://{tmp_path}/out", shard_rows=400))  # fmt: skip

    expected = current(local)
    assert len(expected) == 2000
    routes = {value[3] for value in expected.values()}
    assert routes == {"accepted", "needs_review"}, "the answers exercise the gate both ways"
    assert len({value[2] for value in expected.values()}) > 1, "confidences differ between items"
    # store mode: the same predictions in the project
    assert result.mode == "store" and result.units == 7 and result.counts.items_done == 2000
    assert current(on_ray) == expected
    assert on_ray.store.db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    # lake mode: the same records in the shards; only the items to review entered the store
    assert lake_result.mode == "lake" and lake_result.units == 6
    shards = {row["id"]: row for row in shard_rows(tmp_path / "out")}
    assert len(shards) == 2000
    for item_id, (status, output, confidence, route, reasons, fields, error) in expected.items():
        row = shards[item_id]
        assert (row["status"], json.loads(row["output"]) if row["output"] else None, row["confidence"],
                row["route"], row["reasons"], json.loads(row["field_confidence"]), row["error"]) == (
            status, output, confidence, route, reasons, fields, error)  # fmt: skip
    to_review = {i for i, v in expected.items() if v[3] == "needs_review"}
    assert set(current(lake)) == to_review == {row[0] for row in lake.store.db.execute("SELECT id FROM items")}
    calls = shard_rows(tmp_path / "out", "calls")
    assert len(calls) == local.store.db.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    assert {c["cache_key"] for c in calls} == {
        r[0] for r in local.store.db.execute("SELECT DISTINCT cache_key FROM llm_calls")
    }, "the same cache keys"
    for project in (local, on_ray, lake):
        project.close()


def accept_valid_answers(project: Project) -> None:
    data = yaml.safe_load(project.spec_path.read_text(encoding="utf-8"))
    data["review"] = {"accept_without_confidence": True, "feedback_retries": 0}
    project.spec_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def accepting_project(root: Path) -> Project:
    """A sentiment project that accepts valid answers (the simulated server gives no logprobs), opened."""
    project = Project.init(root, "sentiment")
    accept_valid_answers(project)
    project.close()
    return Project(root)


def test_lake_mode_labels_every_item_once_when_the_driver_is_killed_and_the_job_rerun(tmp_path, ray_cluster):
    count = 20_000
    source = write_parquet(tmp_path / "tickets.parquet",
                           [{"ticket_id": i, "text": t} for i, t in enumerate(texts(count))], row_group_size=4000)
    project = Project.init(tmp_path / "p", "sentiment")
    accept_valid_answers(project)
    project.close()
    out = tmp_path / "out"
    env = {**os.environ, "LABELLOOP_BACKOFF": "0.05"}
    with SimServerProcess(slots=96, latency_ms=20, fail_every=40, answers=ANSWERS[:8]) as server:
        command = [sys.executable, "-m", "labelloop", "label", "--project", str(project.root), "--runner", "ray",
                   "--ray-address", ray_cluster, "--input", str(source), "--output", str(out), "--shard-rows", "1000",
                   "--backend", "openai", "--base-url", server.base_url, "--model", "sim", "--concurrency", "32",
                   "--quiet"]  # fmt: skip
        driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while len(list((out / "predictions").glob("*.parquet"))) < 4:
            assert driver.poll() is None, driver.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        done_before = len(list((out / "predictions").glob("*.parquet")))
        assert done_before < 20, "killed mid-run"
        time.sleep(2)  # the cluster ends the dead driver's actors
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "already written" in rerun.stdout
        served = server.stats()

    rows = shard_rows(out)
    assert len(rows) == count and len({r["id"] for r in rows}) == count
    assert {r["route"] for r in rows} == {"accepted", "needs_review"}
    calls = shard_rows(out, "calls")
    answered = [c for c in calls if c["error"] is None]
    assert len(answered) == len({(c["item_id"], c["cache_key"]) for c in answered}), "one answered call per key"
    assert {c["item_id"] for c in answered} == {r["id"] for r in rows}
    # the server answered each call once, but for those in flight when the driver died (16 per actor) and those
    # answered but not yet in a journal (the writer appends each batch as it arrives)
    assert 0 <= served["completions"] - len(answered) <= 2 * 16 + 200
    assert not list((out / "_tmp").iterdir()) and not list((out / "_journal").iterdir())
    with Project(project.root) as after:
        review = {r["id"] for r in rows if r["route"] == "needs_review"}
        assert {r[0] for r in after.store.db.execute("SELECT id FROM items")} == review
        assert after.store.db.execute("SELECT status FROM runs ORDER BY id").fetchall()[-1][0] == "finished"


def test_bad_input_stops_with_one_line_naming_file_and_field_and_writes_no_shard(tmp_path, ray_cluster):
    project = Project.init(tmp_path / "p", "sentiment")
    out = tmp_path / "out"
    with SimServerProcess(slots=16, latency_ms=1) as server:
        settings = project.settings(backend="openai", base_url=server.base_url, model="sim")
        wrong = write_parquet(tmp_path / "wrong.parquet", [{"body": "no text column"}], row_group_size=10)
        with pytest.raises(InputError) as missing:
            label_on_ray(project.store, project.spec, settings,
                         ray_options=RayOptions(inputs=[str(wrong)], output=str(out)))  # fmt: skip
        assert str(missing.value) == f"{wrong}: field 'text': no such column"

        broken = write_parquet(tmp_path / "broken.parquet", [{"text": f"review number {i} " * 20} for i in range(400)],
                               row_group_size=200)  # fmt: skip
        column = pq.ParquetFile(broken).metadata.row_group(1).column(0)
        with broken.open("r+b") as handle:  # the second row group's data pages, overwritten
            handle.seek(column.data_page_offset + 8)
            handle.write(b"\xff" * 200)
        with pytest.raises(InputError) as corrupt:
            label_on_ray(project.store, project.spec, settings,
                         ray_options=RayOptions(inputs=[str(broken)], output=str(out), shard_rows=1000))  # fmt: skip
        message = str(corrupt.value)
        assert message.startswith(f"{broken}:201: unreadable Parquet data") and "\n" not in message
        lines = tmp_path / "lines.jsonl"
        lines.write_text('{"text": "fine"}\n{"text": 3}\n', encoding="utf-8")
        with pytest.raises(InputError) as wrong_type:  # read through a URL, named by it
            label_on_ray(project.store, project.spec, settings,
                         ray_options=RayOptions(inputs=[f"file://{lines}"], output=str(out)))  # fmt: skip
        assert str(wrong_type.value) == f"file://{lines}:2: field 'text': must be a string, got int"

    unreachable = project.settings(backend="openai", base_url="http://127.0.0.1:9/v1", model="sim")
    good = write_parquet(tmp_path / "good.parquet", [{"text": "fine"}], row_group_size=10)
    with pytest.raises(BackendUnavailable, match="127.0.0.1:9"):
        label_on_ray(project.store, project.spec, unreachable,
                     ray_options=RayOptions(inputs=[str(good)], output=str(out)))  # fmt: skip
    # at most the good row group's shard (whole); nothing half-written, nothing for the broken one
    written = [pq.read_table(f).num_rows for f in (out / "predictions").glob("*.parquet")]
    assert written in ([], [200])
    assert not list((out / "_tmp").iterdir())
    runs = project.store.db.execute("SELECT status, error FROM runs ORDER BY id").fetchall()
    assert [r[0] for r in runs] == ["failed", "failed"] and "unreadable Parquet data" in runs[0][1]
    project.close()


def test_a_call_budget_is_shared_by_the_workers_and_the_rerun_pays_no_call_twice(tmp_path, ray_cluster):
    project = accepting_project(tmp_path / "p")
    source = write_parquet(tmp_path / "in.parquet", [{"text": t} for t in texts(1000)], row_group_size=1000)
    options = RayOptions(inputs=[str(source)], output=str(tmp_path / "out"), shard_rows=100)
    with SimServerProcess(slots=32, latency_ms=5) as server:
        settings = project.settings(backend="openai", base_url=server.base_url, model="sim")
        spent = label_on_ray(project.store, project.spec, settings, options=LabelOptions(max_calls=250),
                             ray_options=options)  # fmt: skip
        assert server.stats()["completions"] == 250, "two workers, one budget"
        assert spent.stop_reason == "call budget of 250 reached" and spent.counts.calls == 250
        complete = len(list((tmp_path / "out" / "predictions").glob("*.parquet")))
        assert complete <= 2 and len(list((tmp_path / "out" / "_journal").glob("*.jsonl"))) >= 1
        rest = label_on_ray(project.store, project.spec, settings, ray_options=options)
        assert server.stats()["completions"] == 1000, "the journaled answers are not asked again"
    assert rest.stop_reason is None and rest.units_skipped == complete
    assert rest.counts.cache_hits == 250 - 100 * complete
    assert len(shard_rows(tmp_path / "out")) == 1000
    project.close()


def test_store_mode_shares_a_postgresql_project_with_a_local_worker(tmp_path, ray_cluster, postgres_cluster,
                                                                     monkeypatch):  # fmt: skip
    monkeypatch.setenv("LABELLOOP_DATABASE_URL", postgres_cluster.database())
    count = 6000
    project = make_project(tmp_path / "p", texts(count))
    accept_valid_answers(project)
    project.close()
    with SimServerProcess(slots=64, latency_ms=20, answers=ANSWERS[:6]) as server:
        command = [sys.executable, "-m", "labelloop", "label", "--project", str(tmp_path / "p"), "--backend",
                   "openai", "--base-url", server.base_url, "--model", "sim", "--concurrency", "8", "--quiet"]
        local = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        with Project(tmp_path / "p") as project:
            while project.store.db.execute("SELECT count(*) FROM predictions").fetchone()[0] < 100:
                assert local.poll() is None
                time.sleep(0.1)
            result = project.label_on_ray(RayOptions(shard_rows=1000), backend="openai", base_url=server.base_url,
                                          model="sim", concurrency=32)  # fmt: skip
            assert local.wait(timeout=120) == 0
            db = project.store.db
            runs = dict(db.execute("SELECT pid, id FROM runs").fetchall())
            by_run = dict(db.execute("SELECT run_id, count(*) FROM predictions WHERE is_current = 1 GROUP BY run_id"))
            assert db.execute("SELECT count(DISTINCT item_id), count(*) FROM predictions").fetchone() == (count, count)
            answered = db.execute("SELECT count(*), count(DISTINCT item_id) FROM llm_calls WHERE error IS NULL")
            assert answered.fetchone() == (count, count), "one answered call per item"
            assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
        served = server.stats()["completions"]
    assert served == count
    assert by_run[runs[local.pid]] > 0 and by_run[result.run_id] == result.counts.items_done > 1000


def test_units_with_failed_calls_are_labeled_again_and_only_the_failures_cost_calls(tmp_path, ray_cluster):
    project = accepting_project(tmp_path / "p")
    source = write_parquet(tmp_path / "in.parquet", [{"text": t} for t in texts(300)], row_group_size=300)
    options = RayOptions(inputs=[str(source)], output=str(tmp_path / "out"), shard_rows=100)
    with SimServerProcess(slots=16, latency_ms=2, fail_every=2) as failing:
        settings = project.settings(backend="openai", base_url=failing.base_url, model="sim", retries=0)
        first = label_on_ray(project.store, project.spec, settings, ray_options=options)
    failed = first.counts.items_failed
    assert 100 <= failed <= 200 and first.routes["failed"] == failed
    assert {row["id"] for row in shard_rows(tmp_path / "out") if row["route"] == "failed"}
    with SimServerProcess(slots=16, latency_ms=2) as healthy:
        settings = project.settings(backend="openai", base_url=healthy.base_url, model="sim")
        again = label_on_ray(project.store, project.spec, settings, ray_options=options)
        assert healthy.stats()["completions"] == failed
    assert again.units_skipped == 0 and again.counts.cache_hits == 300 - failed
    rows = shard_rows(tmp_path / "out")
    assert len(rows) == 300 and {row["route"] for row in rows} == {"accepted"}
    answered = [c for c in shard_rows(tmp_path / "out", "calls") if c["error"] is None]
    assert len(answered) == 300 and len({c["item_id"] for c in answered}) == 300
    project.close()


def test_the_ledger_grants_calls_until_either_budget_is_spent_and_takes_back_the_unused():
    from labelloop.lake.budget import Ledger

    calls = Ledger(max_calls=100, max_tokens=None)
    assert calls.take(64, 0) == (64, None) and calls.take(64, 0) == (36, None)
    assert calls.take(64, 0) == (0, "call budget of 100 reached")
    assert calls.take(-10, 0) == (-10, None) and calls.take(64, 0) == (10, None)
    tokens = Ledger(max_calls=None, max_tokens=1000)
    assert tokens.take(64, 0) == (64, None)
    assert tokens.take(64, 1200) == (0, "token budget of 1000 reached")
    both = Ledger(max_calls=50, max_tokens=1000)
    assert both.take(64, 1000) == (0, "token budget of 1000 reached") and both.calls_left == 50
