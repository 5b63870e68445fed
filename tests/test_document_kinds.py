"""Long texts rated for coherence (windows, located problems mapped back to the full text) and question–answer
pairs written from documents' paragraphs (grounded answers, a judge per pair), through the whole loop against a
scripted OpenAI-compatible server (issue 19)."""

from __future__ import annotations

import html
import json
import re

import pytest

from labelloop import Project

COHERENCE = """name: coherence
kind: coherence
instruction: Rate the text's logical coherence.
window:
  chars: 6000
  overlap: 400
review:
  accept_without_confidence: true
  feedback_retries: 0
model:
  backend: openai
  base_url: {url}
  model: fault
"""
PLANTED = [
    "因此，月亮是用奶酪做的。",
    "它后来被彻底拆除了。",
    "我最喜欢的颜色是蓝色。",
]
ON_TOPIC = "第{n}号线路在第{n}年开通，全长{km}公里，沿线设有{s}个车站，方便了城市东部居民的出行。"


def long_text() -> tuple[str, list[int]]:
    """About 30,000 characters of on-topic Chinese sentences with the planted problems at known offsets."""
    parts, where, length, n = [], [], 0, 0
    plant_at = {90: 0, 400: 1, 640: 2}
    while length < 30_000:
        n += 1
        sentence = ON_TOPIC.format(n=n, km=n % 40 + 3, s=n % 17 + 5)
        if n in plant_at:
            where.append(length)
            sentence = PLANTED[plant_at[n]]
        parts.append(sentence)
        length += len(sentence)
        if n % 12 == 0:
            parts.append("\n\n")
            length += 2
    return "".join(parts), where


def coherence_answer(body: dict) -> str:
    text = body["messages"][-1]["content"]
    problems = [{"type": "off_topic", "quote": p, "suggestion": "delete it"} for p in PLANTED if p in text]
    if "QUOTE-THAT-IS-NOT-THERE" in text:
        problems.append({"type": "logic_jump", "quote": "a sentence the text does not have", "suggestion": "x"})
    ratings = {"topic_consistency": 2 if problems else 5, "causal_links": 4, "clear_references": 4,
               "smooth_transitions": 3}  # fmt: skip
    return json.dumps({"ratings": ratings, "problems": problems}, ensure_ascii=False)


def _project(tmp_path, spec: str, url: str) -> Project:
    project = Project.init(tmp_path / "p")
    project.spec_path.write_text(spec.format(url=url), encoding="utf-8")
    return Project.find(tmp_path / "p")


def _current(project: Project) -> dict[str, dict]:
    return {r["item_id"]: {**dict(r), "output": json.loads(r["output"]), "reasons": json.loads(r["reasons"])}
            for r in project.store.current_predictions("llm")}  # fmt: skip


def test_a_long_text_is_rated_by_window_and_its_problems_land_in_the_full_text(tmp_path, fault_server):
    text, planted_at = long_text()
    assert len(text) >= 30_000
    short = "The plan was simple. QUOTE-THAT-IS-NOT-THERE is written here. The plan worked."
    rows = [{"id": "long", "text": text}, {"id": "short", "text": short}]
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    project = _project(tmp_path, COHERENCE, fault_server.base_url)
    project.ingest(data, id_field="id")
    fault_server.respond = coherence_answer
    project.label()
    found = _current(project)
    long = found["long"]
    assert len(fault_server.requests) >= 6  # 30,000 characters in windows of 6,000, a call each; one for the short
    assert long["route"] == "accepted", long["reasons"]
    problems = long["output"]["problems"]
    assert [p["quote"] for p in problems] == PLANTED  # each once, though one may sit in two windows' overlap
    assert [p["start"] for p in problems] == planted_at
    assert all(text[p["start"] : p["end"]] == p["quote"] for p in problems)
    assert long["output"]["ratings"]["causal_links"] == 4
    assert 2 <= long["output"]["ratings"]["topic_consistency"] <= 5
    # the pre-screen flagged the planted sentences (no content shared with the two before) before any call
    flagged = {text[b["start"] : b["end"]] for b in long["output"]["breaks"]}
    assert {"我最喜欢的颜色是蓝色。"} <= flagged
    assert found["short"]["route"] == "needs_review" and found["short"]["reasons"] == ["ungrounded_quote"]
    (kept,) = found["short"]["output"]["problems"]  # kept as written, without offsets, for the reviewer
    assert kept["quote"] == "a sentence the text does not have" and "start" not in kept
    # a new quality gate judges every window's cached answer again: no call
    calls = len(fault_server.requests)
    project.close()
    spec = project.spec_path.read_text(encoding="utf-8").replace("feedback_retries: 0", "feedback_retries: 1")
    project.spec_path.write_text(spec, encoding="utf-8")
    project = Project.find(tmp_path / "p")
    run = project.label()
    assert (run.counts.cache_hits, len(fault_server.requests)) == (2, calls)
    assert _current(project)["long"]["output"]["problems"] == problems
    project.close()


QA_GENERATE = """name: pairs
kind: qa_generate
instruction: Write questions a reader of this paragraph could answer from it.
pairs: 2
review:
  threshold: 0.5
  feedback_retries: 0
model:
  backend: openai
  base_url: {url}
  model: fault
"""
HANDBOOK = """The library opens at nine in the morning and closes at six in the evening.

Members may borrow up to eight books at a time for three weeks.

图书馆三楼设有自习室，需要提前一天预约。
"""
PAIRS = {
    "The library opens": [("When does the library open?", "at nine in the morning")],
    "Members may borrow": [("How many books may a member borrow?", "up to eight books"),
                           ("For how long?", "a whole month")],  # not in the paragraph
    "图书馆三楼": [("自习室在哪里？", "图书馆三楼")],
}  # fmt: skip


def pairs_answer(body: dict) -> str:
    system, text = body["messages"][0]["content"], body["messages"][-1]["content"]
    if "strict reviewer" in system:
        return json.dumps({"rating": 2 if "How many" in text else 5})
    pairs = next(v for k, v in PAIRS.items() if text.startswith(k))
    return json.dumps({"pairs": [{"question": q, "answer": a} for q, a in pairs]}, ensure_ascii=False)


def test_pairs_from_paragraphs_are_grounded_judged_and_exported_with_provenance(tmp_path, fault_server):
    project = _project(tmp_path, QA_GENERATE, fault_server.base_url)
    (tmp_path / "handbook.txt").write_text(HANDBOOK, encoding="utf-8")
    result = project.ingest_docs([tmp_path / "handbook.txt"])
    assert result.items == 3
    fault_server.respond = pairs_answer
    project.label()
    found = _current(project)
    texts = project.store.item_texts(found)
    by_text = {texts[item_id][:10]: p for item_id, p in found.items()}
    opens = by_text["The librar"]
    assert opens["route"] == "accepted" and opens["confidence"] == 1.0
    assert opens["output"]["pairs"][0] | {} == {"question": "When does the library open?",
                                              "answer": "at nine in the morning", "start": 18, "end": 40}  # fmt: skip
    borrow = by_text["Members ma"]
    assert borrow["route"] == "needs_review" and borrow["reasons"][0] == "ungrounded_quote"
    assert found and by_text["图书馆三楼设有自习室"]["route"] == "accepted"
    # an unchanged paragraph keeps its item when the document changes elsewhere; a new one becomes an item
    (tmp_path / "handbook.txt").write_text(HANDBOOK + "\nThe café closes at five.\n", encoding="utf-8")
    assert project.ingest_docs([tmp_path / "handbook.txt"]).items == 1
    alpaca = tmp_path / "pairs.jsonl"
    project.export(alpaca, "alpaca")
    rows = [json.loads(line) for line in alpaca.read_text(encoding="utf-8").splitlines()]
    document = project.store.document("handbook", 1)["text"]
    assert {r["instruction"] for r in rows} == {"When does the library open?", "自习室在哪里？"}
    for row in rows:
        source = row["source"]
        assert document[source["start"] : source["end"]] == row["output"] and source["version"] == 1
    project.close()


@pytest.mark.parametrize("size, overlap", [(200, 200), (200, 500)])
def test_window_settings_are_checked_up_front(tmp_path, size, overlap):
    from labelloop.errors import SpecError
    from labelloop.spec import parse_spec

    with pytest.raises(SpecError, match="window"):
        parse_spec(f"name: c\nkind: coherence\ninstruction: rate\nwindow:\n  chars: {size}\n  overlap: {overlap}\n")


def test_reviewers_edit_ratings_and_problems_as_json_and_quotes_are_checked(tmp_path, fault_server):
    testclient = pytest.importorskip("fastapi.testclient")
    short = "The plan was simple. QUOTE-THAT-IS-NOT-THERE is written here. The plan worked."
    data = tmp_path / "texts.jsonl"
    data.write_text(json.dumps({"id": "short", "text": short}) + "\n", encoding="utf-8")
    project = _project(tmp_path, COHERENCE, fault_server.base_url)
    project.ingest(data, id_field="id")
    fault_server.respond = coherence_answer
    project.label()
    client = testclient.TestClient(project.web_app())
    headers = {"Authorization": f"Bearer {project.add_reviewer('ana')}"}
    page = client.get("/items/short", headers=headers).text
    shown = re.search(r'<textarea name="ratings"[^>]*data-kind="json">([^<]*)</textarea>', page).group(1)
    assert json.loads(html.unescape(shown))["causal_links"] == 4  # JSON a person can edit, not a Python repr
    ratings = {"topic_consistency": 3, "causal_links": 4, "clear_references": 4, "smooth_transitions": 3}
    wrong = {"ratings": ratings, "problems": [{"type": "logic_jump", "quote": "not in the text", "suggestion": ""}]}
    refused = client.post("/api/items/short/decision", headers=headers,
                          json={"action": "edit", "version": 0, "output": wrong})  # fmt: skip
    assert refused.status_code == 422 and "problems" in refused.text
    right = {"ratings": ratings, "problems": [{"type": "logic_jump", "quote": "QUOTE-THAT-IS-NOT-THERE is written",
                                               "suggestion": "cut it"}]}  # fmt: skip
    saved = client.post("/api/items/short/decision", headers=headers,
                        json={"action": "edit", "version": 0, "output": right})  # fmt: skip
    assert saved.status_code == 200, saved.text
    (problem,) = json.loads(project.store.annotations("short")[-1]["output"])["problems"]
    assert short[problem["start"] : problem["end"]] == "QUOTE-THAT-IS-NOT-THERE is written"
    project.close()
