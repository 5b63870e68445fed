"""Reviewing ``qa`` answers on the item page: the cited passages shown in their documents with each quote marked,
escaped, and citations fixed by selecting text (issue 19)."""

from __future__ import annotations

import json
import re

import pytest

from labelloop import Project
from test_qa import SPEC
from test_web_browser import ARTIFACTS, LiveServer, browser, login  # noqa: F401  (browser: the fixture, module-scoped)

pytest.importorskip("bm25s")
testclient = pytest.importorskip("fastapi.testclient")

MANUAL = """# Router manual

The router restarts automatically every night at 3 a.m. to apply updates.

The guest network is off by default. Turn it on in the Wi-Fi settings page.
"""
FILLER = [f"Filler paragraph {i} talks about tomatoes, soil and watering schedules in a garden." for i in range(60)]
RULE = "Rendering rule:\r\nthe <script>alert(1)</script> tag must show as plain text, never run."
NOTES = "\n\n".join(FILLER[:30] + [RULE] + FILLER[30:])  # over 4000 characters: only cited paragraphs are shown
# question -> (the scripted model's answer, the quote it cites); "orange" shares nothing with the quote: review
ANSWERS = {
    "Where is the guest network turned on?": ("orange", "Turn it on in the Wi-Fi settings page."),
    "How must the script tag be shown?": ("orange", "<script>alert(1)</script> tag"),
}


def respond(body: dict) -> str:
    user = body["messages"][-1]["content"]
    answer, quote = ANSWERS[user.split("\n", 1)[0].removeprefix("Question: ")]
    shown = re.findall(r"\[doc=(\S+) paragraph=(\S+)\][^\n]*\n(.*?)(?:\n\n|$)", user, re.S)
    doc, paragraph = next((d, p) for d, p, text in shown if quote in text)
    citation = {"doc": doc, "paragraph": paragraph, "quote": quote}
    return json.dumps({"answer": answer, "citations": [citation], "answerable": True})


@pytest.fixture
def qa_project(tmp_path, fault_server):
    project = Project.init(tmp_path / "qa")
    project.spec_path.write_text(SPEC.format(url=fault_server.base_url), encoding="utf-8")
    project = Project.find(tmp_path / "qa")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text(MANUAL, encoding="utf-8")
    (docs / "notes.jsonl").write_text(json.dumps({"id": "notes", "title": "Notes", "text": NOTES}) + "\n")
    project.ingest_docs([docs])
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "text": q}) + "\n" for i, q in enumerate(ANSWERS)))
    project.ingest(questions, id_field="id")
    fault_server.respond = respond
    project.label()
    routes = {r["item_id"]: r["route"] for r in project.store.current_predictions("llm")}
    assert routes == {"q0": "needs_review", "q1": "needs_review"}
    yield project
    project.close()


def test_the_item_page_shows_cited_passages_escaped_with_quotes_marked(qa_project):
    client = testclient.TestClient(qa_project.web_app())
    headers = {"Authorization": f"Bearer {qa_project.add_reviewer('ana')}"}
    short = client.get("/items/q0", headers=headers).text  # the manual is short: shown whole
    assert '<div class="passage" data-doc="manual" data-version="1" data-start="0">' in short
    assert (
        'The guest network is off by default. <mark data-cite="0">Turn it on in the Wi-Fi settings page.</mark>'
        in short
    )
    assert "every night at 3 a.m." in short and "rank 1" in short
    assert 'name="citations"' not in short  # citations are not edited as raw JSON
    long = client.get("/items/q1", headers=headers).text  # the notes are long: only the cited paragraph
    start = NOTES.index(RULE)
    assert f'data-doc="notes" data-version="1" data-start="{start}">' in long
    assert (
        'Rendering rule:&#13;\nthe <mark data-cite="0">&lt;script&gt;alert(1)&lt;/script&gt; tag</mark> must show as'
        in long
    )
    assert "<script>alert" not in long and "Filler paragraph 0 " not in long


def test_a_reviewer_fixes_a_citation_by_selecting_text(qa_project, browser):  # noqa: F811 (the fixture)
    project = qa_project
    server = LiveServer(project)
    try:
        page, dialogs = login(browser, server, project.add_reviewer("ana"))
        page.goto(server.url + "/items/q1")
        assert page.locator(".passage mark").inner_text() == "<script>alert(1)</script> tag"
        assert page.locator(".passage script").count() == 0
        page.evaluate("""() => {                 // select 'must show as plain text' as a reviewer would
            const passage = document.querySelector('.passage');
            const node = passage.lastChild;        // the text after the mark
            const at = node.textContent.indexOf('must show as plain text');
            const range = document.createRange(); range.setStart(node, at); range.setEnd(node, at + 23);
            const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
        }""")
        page.click("#cite-selection")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-qa-item.png"), full_page=True)
        page.locator('#citations li[data-index="0"] .remove-citation').click()
        assert page.locator("#citations li").all_inner_texts()[0].startswith("must show as plain text")
        assert page.locator(".passage mark.uncited").count() == 1
        page.locator('tr.field[data-field="answer"] .edit-field').click()
        page.locator('textarea[name="answer"]').fill("as plain text")
        page.locator("#accept-all").click()
        page.wait_for_url(server.url + "/items/q0", timeout=5000)  # else #message says why
        assert dialogs == []
    finally:
        server.stop()
    saved = json.loads(project.store.annotations("q1")[-1]["output"])
    (citation,) = saved["citations"]
    text = project.store.document("notes", 1)["text"]
    start = text.index("must show as plain text")
    assert (citation["quote"], citation["start"], citation["end"]) == ("must show as plain text", start, start + 23)
    assert text[citation["start"] : citation["end"]] == citation["quote"]
    rule = next(p for p in project.store.paragraphs("notes", 1) if p["start"] <= start < p["end"])
    assert (citation["doc"], citation["paragraph"], citation["version"]) == ("notes", rule["id"], 1)
    assert (saved["answer"], saved["answerable"]) == ("as plain text", True)
