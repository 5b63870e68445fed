"""The quality gate inside a labeling run: validation, feedback re-asks, confidence and routing."""

from __future__ import annotations

import json
import math

from conftest import make_project
from labelloop import LabelOptions

FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=1)
GOOD = {"intent": "book_flight", "departure_city": "北京", "arrival_city": "上海", "date": "明天",
        "time": "09:00", "class": "economy", "passenger_count": 1}


def flight_project(tmp_path, texts, **review):
    project = make_project(tmp_path / "flight", texts, template="flight-booking")
    if review:
        text = project.spec_path.read_text(encoding="utf-8")
        lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in review.items())
        project.spec_path.write_text(text.replace("review:\n", "review:\n" + lines, 1), encoding="utf-8")
    return project


def answer(**changes) -> str:
    return "ok:" + json.dumps({**GOOD, **changes}, ensure_ascii=False)


def predictions(project) -> dict[str, dict]:
    rows = project.store.db.execute("SELECT * FROM predictions WHERE is_current = 1")
    return {row["item_id"]: dict(row) for row in rows}


def test_schema_violation_is_fed_back_and_the_corrected_answer_is_kept(tmp_path, fault_server):
    project = flight_project(tmp_path, ["明天九点北京飞上海"], accept_without_confidence=True)
    fault_server.script = {0: answer(time="9am"), 1: answer()}
    project.label(base_url=fault_server.base_url, **FAST)
    pred = predictions(project)["t000"]
    assert (pred["route"], json.loads(pred["reasons"]), pred["status"]) == ("accepted", [], "ok")
    assert json.loads(pred["output"])["time"] == "09:00"
    second = fault_server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": answer(time="9am")[3:]}
    assert "time: '9am' does not match" in second[-1]["content"]
    calls = project.store.db.execute("SELECT count(*) FROM llm_calls WHERE item_id = 't000'").fetchone()[0]
    assert calls == 2


def test_rule_violation_after_feedback_goes_to_review_with_the_rule_named(tmp_path, fault_server):
    project = flight_project(tmp_path, ["北京到北京"], accept_without_confidence=True)
    fault_server.default = answer(arrival_city="北京")
    project.label(base_url=fault_server.base_url, **FAST)
    pred = predictions(project)["t000"]
    assert pred["route"] == "needs_review"
    assert json.loads(pred["reasons"]) == ["invalid[rule: departure and arrival city must differ]"]
    assert json.loads(pred["problems"]) == [
        {"kind": "rule", "message": "departure and arrival city must differ", "field": None}]
    assert len(fault_server.requests) == 2


def test_repaired_json_is_never_treated_as_clean(tmp_path, fault_server):
    project = flight_project(tmp_path, ["明天九点北京飞上海"], accept_without_confidence=True)
    fault_server.default = answer()[:-1]  # the closing brace is missing
    project.label(base_url=fault_server.base_url, **FAST)
    pred = predictions(project)["t000"]
    assert (pred["status"], pred["repaired"], pred["route"]) == ("ok", 1, "needs_review")
    assert json.loads(pred["reasons"]) == ["repaired"]
    assert json.loads(pred["output"]) == GOOD


def test_without_logprobs_a_valid_answer_waits_for_review_by_default(tmp_path, fault_server):
    project = flight_project(tmp_path, ["明天九点北京飞上海"])
    fault_server.default = answer()
    project.label(base_url=fault_server.base_url, **FAST)
    pred = predictions(project)["t000"]
    assert (pred["route"], json.loads(pred["reasons"]), pred["confidence"]) == (
        "needs_review", ["no_confidence"], None)


def test_failed_call_is_routed_failed(sentiment_project, fault_server):
    fault_server.script = {0: "status:400"}
    sentiment_project.label(base_url=fault_server.base_url, **FAST)
    pred = predictions(sentiment_project)["t000"]
    assert (pred["route"], json.loads(pred["reasons"])) == ("failed", ["failed_call"])


def label_tokens(first_alternatives: dict[str, float]) -> list[dict]:
    """Token logprobs of '{"label": "positive"}' whose label token has the given alternatives."""
    def entry(token: str, logprob: float, top: dict[str, float] | None = None) -> dict:
        alternatives = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in (top or {}).items()]
        return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": alternatives}
    chosen = first_alternatives["positive"]
    return [entry('{"', 0.0), entry("label", 0.0), entry('":', 0.0), entry(' "', 0.0),
            entry("positive", chosen, first_alternatives), entry('"}', 0.0)]


def test_confidence_from_logprobs_decides_the_route(sentiment_project, fault_server):
    fault_server.content = '{"label": "positive"}'
    fault_server.logprobs = label_tokens({"positive": math.log(0.6), "negative": math.log(0.3),
                                          "neutral": math.log(0.1)})
    sentiment_project.label(LabelOptions(limit=1), base_url=fault_server.base_url, **FAST)
    pred = predictions(sentiment_project)["t000"]
    assert math.isclose(pred["confidence"], 0.6, abs_tol=1e-9)
    assert pred["confidence_method"] == "label_first_token"
    assert (pred["route"], json.loads(pred["reasons"])) == ("needs_review", ["low_confidence[label]"])

    fault_server.logprobs = label_tokens({"positive": math.log(0.9), "negative": math.log(0.05)})
    sentiment_project.label(LabelOptions(limit=1), base_url=fault_server.base_url, **FAST,
                            temperature=0.1)  # new decoding params: a new job for the same item
    pred = predictions(sentiment_project)["t000"]
    assert math.isclose(pred["confidence"], 0.9 / 0.95, abs_tol=1e-9)
    assert pred["route"] == "accepted"
    summary = sentiment_project.status()
    assert summary.routes == {"accepted": 1} and summary.confidence_histogram[9] == 1


def test_adding_a_rule_rejudges_cached_answers_without_calling_the_model(tmp_path, fault_server):
    project = flight_project(tmp_path, ["北京飞上海", "上海飞广州"], accept_without_confidence=True)
    fault_server.default = answer()
    project.label(base_url=fault_server.base_url, **FAST)
    assert {p["route"] for p in predictions(project).values()} == {"accepted"}
    text = project.spec_path.read_text(encoding="utf-8")
    project.spec_path.write_text(text.replace(
        "rules:\n", "rules:\n  - {rule: \"output['class'] != 'economy'\", message: no economy}\n", 1), encoding="utf-8")
    calls_before = len(fault_server.requests)
    result = project.label(base_url=fault_server.base_url, **FAST)
    assert result.counts.cache_hits == 2
    assert len(fault_server.requests) == calls_before  # cached answers re-judged, no new call
    assert {p["route"] for p in predictions(project).values()} == {"needs_review"}


def set_review(project, **settings):
    text = project.spec_path.read_text(encoding="utf-8")
    block = "review:\n" + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in settings.items())
    project.spec_path.write_text(text.replace("examples:", block + "examples:", 1), encoding="utf-8")


def test_self_consistency_scores_answers_when_there_are_no_logprobs(sentiment_project, fault_server):
    set_review(sentiment_project, self_consistency=3)
    fault_server.script = {0: 'ok:{"label": "positive"}', 1: 'ok:{"label": "positive"}', 2: 'ok:{"label": "negative"}'}
    sentiment_project.label(LabelOptions(limit=1), base_url=fault_server.base_url, **FAST)
    samples = fault_server.requests[1:3]
    assert [(r["temperature"], r["seed"]) for r in samples] == [(0.7, 1), (0.7, 2)]
    pred = predictions(sentiment_project)["t000"]
    assert (pred["confidence_method"], pred["route"]) == ("self_consistency", "needs_review")
    assert math.isclose(pred["confidence"], 2 / 3)
    assert json.loads(pred["reasons"]) == ["low_confidence[label]"]

    text = sentiment_project.spec_path.read_text(encoding="utf-8")
    sentiment_project.spec_path.write_text(text.replace("self_consistency: 3", "self_consistency: 3\n  threshold: 0.6"),
                                           encoding="utf-8")
    seen = len(fault_server.requests)
    again = sentiment_project.label(LabelOptions(limit=1), base_url=fault_server.base_url, **FAST)
    assert len(fault_server.requests) == seen and again.counts.cache_hits == 1  # samples came from the cache
    assert predictions(sentiment_project)["t000"]["route"] == "accepted"


def test_custom_validator_by_dotted_path(tmp_path, fault_server, monkeypatch):
    (tmp_path / "vocab_check.py").write_text(
        "CITIES = {'北京', '上海', '广州'}\n"
        "def known_cities(output, item):\n"
        "    return [f'unknown city {c}' for c in (output['departure_city'], output['arrival_city'])\n"
        "            if c is not None and c not in CITIES]\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    project = flight_project(tmp_path, ["明天九点北京飞纽约"], accept_without_confidence=True)
    text = project.spec_path.read_text(encoding="utf-8")
    project.spec_path.write_text(text.replace("rules:\n", "validators: ['vocab_check:known_cities']\nrules:\n", 1),
                                 encoding="utf-8")
    fault_server.default = answer(arrival_city="纽约")
    project.label(base_url=fault_server.base_url, **FAST)
    pred = predictions(project)["t000"]
    assert pred["route"] == "needs_review"
    assert json.loads(pred["reasons"]) == ["invalid[custom: vocab_check:known_cities: unknown city 纽约]"]


def test_a_validator_that_cannot_be_loaded_is_a_spec_error_naming_it(tmp_path):
    import pytest

    from labelloop import SpecError

    project = flight_project(tmp_path, ["x"])
    text = project.spec_path.read_text(encoding="utf-8")
    project.spec_path.write_text(text.replace("rules:\n", "validators: ['no_such_module:check']\nrules:\n", 1),
                                 encoding="utf-8")
    with pytest.raises(SpecError, match=r"labelloop.yaml:\d+: validators.0: validator 'no_such_module:check' cannot"):
        _ = project.spec  # reading the spec validates it
