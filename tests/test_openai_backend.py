"""The OpenAI-compatible backend against a real llama.cpp server (bundled SmolLM2) on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from conftest import make_project
from labelloop import LabelOptions, Project

pytestmark = pytest.mark.slow

FLIGHT_TEXTS = ["帮我订一张明天上午九点从北京飞上海的经济舱机票", "我想取消下周五去成都的航班",
                "两位大人，下周三晚上8点半从广州到杭州，公务舱"]


def label_with_server(project: Project, url: str, **options):
    return project.label(LabelOptions(**options), backend="openai", base_url=url, concurrency=4)


def test_classify_against_llama_server_is_schema_bound_and_logged(sentiment_project, llama_server):
    result = label_with_server(sentiment_project, llama_server)
    assert (result.counts.items_done, result.counts.items_failed, result.unparsable) == (6, 0, 0)
    rows = sentiment_project.store.db.execute(
        "SELECT p.output, c.response, c.prompt_tokens, c.completion_tokens, c.model, c.latency_ms"
        " FROM predictions p JOIN llm_calls c ON c.id = p.call_id WHERE p.is_current = 1").fetchall()
    assert len(rows) == 6
    for row in rows:
        assert json.loads(row["output"])["label"] in {"positive", "negative", "neutral"}
        assert row["prompt_tokens"] > 100 and row["completion_tokens"] > 0 and row["latency_ms"] > 0
        logprobs = json.loads(row["response"])["choices"][0]["logprobs"]["content"]
        assert logprobs and len(logprobs[0]["top_logprobs"]) == 5
        assert row["model"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")  # learned from /v1/models


def test_extract_output_satisfies_the_task_schema(tmp_path, llama_server):
    project = make_project(tmp_path / "flight", FLIGHT_TEXTS, template="flight-booking")
    result = label_with_server(project, llama_server)
    assert result.counts.items_done == 3
    schema = project.spec.output_schema()
    outputs = [json.loads(r[0]) for r in project.store.db.execute(
        "SELECT output FROM predictions WHERE is_current = 1 AND status = 'ok'")]
    assert len(outputs) == 3
    for output in outputs:
        assert set(output) == set(schema["required"])
        assert output["intent"] in schema["properties"]["intent"]["enum"]
    project.close()


def test_rerun_of_a_finished_job_makes_zero_calls(sentiment_project, llama_server):
    label_with_server(sentiment_project, llama_server)
    again = label_with_server(sentiment_project, llama_server)
    assert (again.planned, again.counts.calls) == (0, 0)
    assert sentiment_project.store.db.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 6


def test_changed_prompt_relabels_and_old_answers_come_from_cache(sentiment_project, llama_server):
    label_with_server(sentiment_project, llama_server)
    spec_path = sentiment_project.spec_path
    original = spec_path.read_text(encoding="utf-8")
    spec_path.write_text(original.replace("Sarcasm counts", "Irony counts"), encoding="utf-8")
    changed = Project(sentiment_project.root)
    second = label_with_server(changed, llama_server)
    assert (second.planned, second.counts.calls) == (6, 6)
    changed.close()
    spec_path.write_text(original, encoding="utf-8")
    restored = Project(sentiment_project.root)
    third = label_with_server(restored, llama_server)
    assert (third.planned, third.counts.calls, third.counts.cache_hits) == (6, 0, 6)
    current = restored.store.db.execute(
        "SELECT item_id, count(*) FROM predictions WHERE is_current = 1 GROUP BY item_id").fetchall()
    assert len(current) == 6 and all(n == 1 for _, n in current)
    assert restored.store.db.execute("SELECT count(*) FROM predictions").fetchone()[0] == 18
    restored.close()


def test_label_scoring_answers_in_three_tokens_and_scores_by_logprobs(tmp_path, llama_server):
    project = make_project(tmp_path / "scored", ["I love it.", "It broke at once.", "It is blue."])
    spec_text = project.spec_path.read_text(encoding="utf-8")
    project.spec_path.write_text(spec_text.replace("kind: classify\n", "kind: classify\nscoring: logprob\n"),
                                 encoding="utf-8")
    result = label_with_server(project, llama_server)
    assert result.counts.items_done == 3
    rows = project.store.db.execute(
        "SELECT p.output, p.confidence, p.confidence_method, p.field_confidence, c.completion_tokens, c.request"
        " FROM predictions p JOIN llm_calls c ON c.item_id = p.item_id WHERE p.is_current = 1").fetchall()
    for row in rows:
        assert row["completion_tokens"] <= 3
        assert json.loads(row["request"])["max_tokens"] == 3
        if row["output"] is not None:  # a bare answer that names no label is unparsable, not guessed
            assert json.loads(row["output"])["label"] in {"positive", "negative", "neutral"}
            assert row["confidence_method"] in {"label_first_token", "label_sequence"}
            assert 0.0 <= row["confidence"] <= 1.0
    assert any(row["output"] is not None for row in rows)
    project.close()


def test_live_answers_get_a_confidence_from_their_logprobs(sentiment_project, llama_server):
    label_with_server(sentiment_project, llama_server)
    rows = sentiment_project.store.db.execute(
        "SELECT confidence, confidence_method, field_confidence, route FROM predictions WHERE is_current = 1")
    for row in rows:
        assert row["confidence_method"] in {"label_first_token", "label_sequence"}
        assert 0.0 <= row["confidence"] <= 1.0
        assert set(json.loads(row["field_confidence"])) == {"label"}
        assert row["route"] in {"accepted", "needs_review"}
