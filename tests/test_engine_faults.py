"""Retries, timeouts and give-up paths against a real local HTTP server that misbehaves on cue."""

from __future__ import annotations

import json

import pytest

from labelloop import BackendUnavailable, LabelOptions, Project

pytestmark = pytest.mark.usefixtures("backend")  # every engine fault on both store backends
FAST = dict(backend="openai", model="fault", timeout=0.5, retries=2, backoff=0.01, concurrency=1)


def run(project: Project, server, options: LabelOptions | None = None, **overrides):
    return project.label(options or LabelOptions(), base_url=server.base_url, **{**FAST, **overrides})


def calls_for(project: Project, item_id: str) -> list[dict]:
    rows = project.store.db.execute(
        "SELECT attempt, status_code, error FROM llm_calls WHERE item_id = ? ORDER BY id", (item_id,))
    return [dict(row) for row in rows]


def current(project: Project) -> dict[str, dict]:
    rows = project.store.db.execute("SELECT item_id, status, output, error FROM predictions WHERE is_current = 1")
    return {row["item_id"]: dict(row) for row in rows}


def test_all_items_labeled_once_with_every_call_recorded(sentiment_project, fault_server):
    result = run(sentiment_project, fault_server)
    assert (result.counts.items_done, result.counts.items_failed, result.counts.calls) == (6, 0, 6)
    preds = current(sentiment_project)
    assert len(preds) == 6
    assert {json.loads(p["output"])["label"] for p in preds.values()} == {"positive"}
    row = sentiment_project.store.db.execute("SELECT * FROM llm_calls WHERE item_id = 't000'").fetchone()
    assert (row["prompt_tokens"], row["completion_tokens"], row["status_code"]) == (10, 5, 200)
    assert row["latency_ms"] > 0
    request = json.loads(row["request"])
    assert request["item_messages"] == [{"role": "user", "content": "Loved it, works perfectly."}]
    body = fault_server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == [
        "positive", "negative", "neutral"]
    assert body["logprobs"] is True and body["top_logprobs"] == 5


def test_429_is_retried_after_the_retry_after_delay(sentiment_project, fault_server):
    fault_server.script = {0: "status:429:0.4"}
    result = run(sentiment_project, fault_server)
    assert result.counts.items_failed == 0
    assert [c["status_code"] for c in calls_for(sentiment_project, "t000")] == [429, 200]
    assert fault_server.arrivals[1] - fault_server.arrivals[0] >= 0.4


@pytest.mark.parametrize("fault", ["status:500", "status:502", "status:503", "status:504", "garbage", "drop",
                                   "hang:1.0"])
def test_transient_faults_are_retried(sentiment_project, fault_server, fault):
    fault_server.script = {0: fault}
    result = run(sentiment_project, fault_server)
    assert (result.counts.items_done, result.counts.items_failed) == (6, 0)
    attempts = calls_for(sentiment_project, "t000")
    assert [c["attempt"] for c in attempts] == [1, 2]
    assert attempts[0]["error"] is not None and attempts[1]["error"] is None


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_client_errors_fail_the_item_without_retry_and_the_run_goes_on(sentiment_project, fault_server, code):
    fault_server.script = {0: f"status:{code}"}
    result = run(sentiment_project, fault_server)
    assert (result.counts.items_done, result.counts.items_failed) == (5, 1)
    assert len(calls_for(sentiment_project, "t000")) == 1
    failed = current(sentiment_project)["t000"]
    assert failed["status"] == "failed" and f"HTTP {code}" in failed["error"]


def test_gives_up_after_the_configured_retries(sentiment_project, fault_server):
    fault_server.script = {0: "status:503", 1: "status:503", 2: "status:503"}
    result = run(sentiment_project, fault_server, retries=2)
    assert result.counts.items_failed == 1
    assert [c["status_code"] for c in calls_for(sentiment_project, "t000")] == [503, 503, 503]
    assert "HTTP 503" in current(sentiment_project)["t000"]["error"]


def test_failed_items_are_retried_by_the_next_run(sentiment_project, fault_server):
    fault_server.script = {0: "status:400"}
    run(sentiment_project, fault_server)
    second = run(sentiment_project, fault_server)
    assert (second.planned, second.counts.calls, second.counts.items_done) == (1, 1, 1)
    assert current(sentiment_project)["t000"]["status"] == "ok"


def test_output_that_is_not_json_is_recorded_as_unparsable(sentiment_project, fault_server):
    fault_server.script = {0: "ok:Sure! The label is positive.", 1: "ok:Still not JSON."}
    result = run(sentiment_project, fault_server)
    assert result.unparsable == 1
    pred = current(sentiment_project)["t000"]
    assert pred["status"] == "unparsable" and pred["output"] is None
    assert pred["error"] == "not a JSON object: 'Still not JSON.'"
    assert len(calls_for(sentiment_project, "t000")) == 2  # the answer, then one re-ask with feedback


def test_timeout_fails_the_call_and_is_recorded(sentiment_project, fault_server):
    fault_server.default = "hang:1.0"
    result = run(sentiment_project, fault_server, retries=0, options=LabelOptions(limit=1))
    assert result.counts.items_failed == 1
    assert calls_for(sentiment_project, "t000")[0]["error"] == "no answer within 0.5 s"


def test_call_budget_is_a_hard_cap(sentiment_project, fault_server):
    fault_server.script = {0: "status:500"}
    result = run(sentiment_project, fault_server, options=LabelOptions(max_calls=3))
    assert len(fault_server.requests) == 3
    assert result.counts.calls == 3
    assert "call budget of 3 reached" in result.stop_reason
    assert sentiment_project.store.prediction_counts()["unlabeled"] == 4


def test_token_budget_stops_dispatch(sentiment_project, fault_server):
    result = run(sentiment_project, fault_server, options=LabelOptions(max_tokens=30))
    assert result.counts.calls == 2  # 15 tokens per call
    assert "token budget" in result.stop_reason


def test_concurrency_bounds_requests_in_flight(tmp_path, fault_server):
    from conftest import make_project

    project = make_project(tmp_path / "p", [f"text number {i}" for i in range(40)])
    fault_server.default = "slow:0.05"
    result = run(project, fault_server, concurrency=8)
    assert result.counts.items_done == 40
    assert 2 <= fault_server.max_in_flight <= 8
    project.close()


def test_limit_and_seeded_sample_choose_items(tmp_path, fault_server, backend, request, monkeypatch):
    from conftest import make_project

    texts = [f"review {i}" for i in range(30)]
    first = make_project(tmp_path / "a", texts)
    if backend == "postgresql":  # a project of its own, not the first one's database
        monkeypatch.setenv("LABELLOOP_DATABASE_URL", request.getfixturevalue("postgres_cluster").database())
    second = make_project(tmp_path / "b", texts)
    run(first, fault_server, options=LabelOptions(sample=5, seed=7))
    run(second, fault_server, options=LabelOptions(sample=5, seed=7))
    chosen = set(current(first))
    assert len(chosen) == 5 and chosen == set(current(second))
    assert chosen != {f"t{i:03d}" for i in range(5)}
    limited = run(first, fault_server, options=LabelOptions(limit=4))
    assert limited.counts.items_done == 4 and len(current(first)) == 9
    first.close()
    second.close()


def test_unreachable_server_fails_fast_with_one_line(sentiment_project):
    with pytest.raises(BackendUnavailable, match=r"^cannot reach http://127\.0\.0\.1:9/v1: "):
        sentiment_project.label(backend="openai", base_url="http://127.0.0.1:9/v1", model="m")


@pytest.mark.parametrize("code", [400, 422, 500])
def test_response_format_falls_back_when_the_server_refuses_json_schema(sentiment_project, fault_server, code):
    fault_server.script = {0: f"refuse:{code}:response_format", 2: f"refuse:{code}:response_format"}
    result = run(sentiment_project, fault_server)
    assert (result.counts.items_done, result.counts.calls) == (6, 6)
    formats = [r.get("response_format", {}).get("type") for r in fault_server.requests]
    assert formats[:4] == ["json_schema", "json_object", "json_object", "json_object"]
    assert fault_server.requests[1]["response_format"]["schema"]["required"] == ["label"]
    assert "schema" not in fault_server.requests[3]["response_format"]


def test_logprobs_are_dropped_when_the_server_refuses_them(sentiment_project, fault_server):
    fault_server.script = {0: "refuse:400:logprobs"}
    run(sentiment_project, fault_server)
    assert fault_server.requests[0]["logprobs"] is True
    assert "logprobs" not in fault_server.requests[1] and "logprobs" not in fault_server.requests[-1]
