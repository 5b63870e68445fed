"""The review web app in headless Chromium (Debian's), driven by Playwright like a reviewer would."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import FaultServer, free_port, make_project
from labelloop.assign import need

playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
CHROMIUM = os.environ.get("LABELLOOP_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.fail(f"headless browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                pytrace=False)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=1)

pytestmark = pytest.mark.slow


class LiveServer:
    """uvicorn serving a project's review app on 127.0.0.1, in a thread."""

    def __init__(self, project):
        self.port = free_port()
        config = uvicorn.Config(project.web_app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the review app did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serving(project, content: str | None = None):
    """Label ``project`` (answers: ``content``, no logprobs), add reviewer ana, serve it: (server, token)."""
    fault = FaultServer(content=content) if content else FaultServer()
    project.label(base_url=fault.base_url, **FAST)
    fault.close()
    token = project.add_reviewer("ana")
    server = LiveServer(project)
    try:
        yield server, token
    finally:
        server.stop()
        project.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield browser
        browser.close()


@pytest.fixture
def classify_app(tmp_path):
    fault = FaultServer()
    project = make_project(tmp_path / "c", ["Loved it.", "Broke on day one.", XSS, "It is a phone.", "Meh."])
    project.label(base_url=fault.base_url, **FAST)  # no logprobs: every item waits for review
    fault.close()
    tokens = {name: project.add_reviewer(name) for name in ("ana", "bo")}
    server = LiveServer(project)
    yield project, server, tokens
    server.stop()
    project.close()


def login(browser, server, token):
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_url(server.url + "/")
    return page, dialogs


def current(project) -> dict[str, dict]:
    return {row["item_id"]: json.loads(row["output"]) for row in project.store.annotations()}


def test_no_token_no_data(classify_app, browser):
    project, server, tokens = classify_app
    page = browser.new_page()
    page.goto(server.url + "/items/t000")
    assert page.url.endswith("/login") and "Loved it" not in page.content()
    page.fill("#token", "not-a-token")
    page.click("#login")
    assert page.locator("#login-error").inner_text() == "unknown token"
    api = page.request.get(server.url + "/api/items")
    assert api.status == 401
    logged_in, _ = login(browser, server, tokens["ana"])
    [cookie] = logged_in.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert logged_in.request.get(server.url + "/api/items").status == 200


def test_review_three_items_by_key_undo_and_escaped_text(classify_app, browser):
    project, server, tokens = classify_app
    page, dialogs = login(browser, server, tokens["ana"])
    assert page.locator("#left").inner_text() == "5"
    page.click("#start")
    page.wait_for_url("**/items/t000")
    page.keyboard.press("2")                       # negative
    page.wait_for_url("**/items/t001")
    page.keyboard.press("Enter")                   # accept the model's label
    page.wait_for_url("**/items/t002")
    text = page.locator("#text")
    assert text.inner_text() == XSS                # shown as text
    assert page.locator("#text img").count() == 0 and page.locator("#text script").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-item.png"), full_page=True)
    page.keyboard.press("3")                       # neutral
    page.wait_for_url("**/items/t003")
    assert current(project) == {"t000": {"label": "negative"}, "t001": {"label": "positive"},
                                "t002": {"label": "neutral"}}
    page.keyboard.press("u")                       # undo the last decision
    page.wait_for_url("**/items/t002")
    assert "t002" not in current(project)
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("s")
    page.wait_for_url("**/items/t003")
    assert dialogs == []                           # no script ran
    actions = [(row["actor"], row["action"], row["item_id"]) for row in project.store.audit_log()
               if row["actor"] == "ana"]
    assert actions == [("ana", "login", None), ("ana", "label", "t000"), ("ana", "accept", "t001"),
                       ("ana", "label", "t002"), ("ana", "undo", "t002"), ("ana", "skip", "t002")]


def test_second_reviewer_gets_a_conflict_not_an_overwrite(classify_app, browser):
    project, server, tokens = classify_app
    ana, _ = login(browser, server, tokens["ana"])
    bo, _ = login(browser, server, tokens["bo"])
    ana.goto(server.url + "/items/t004")
    bo.goto(server.url + "/items/t004")
    ana.keyboard.press("2")
    ana.wait_for_url(lambda url: "/items/t004" not in url)
    bo.keyboard.press("1")
    conflict = bo.locator("#conflict")
    conflict.wait_for(state="visible")
    assert "ana answered this item first" in conflict.inner_text() and '{"label":"negative"}' in conflict.inner_text()
    assert current(project)["t004"] == {"label": "negative"}
    assert [row["annotator"] for row in project.store.annotations("t004")] == ["ana"]


def test_edit_one_extract_field(tmp_path, browser):
    answer = json.dumps({"intent": "book_flight", "departure_city": "上海", "arrival_city": "北京", "date": "明天",
                         "time": "09:00", "class": "economy", "passenger_count": 1}, ensure_ascii=False)
    project = make_project(tmp_path / "f", ["明天九点从杭州飞北京，经济舱"], template="flight-booking")
    with serving(project, answer) as (server, token):
        page, _ = login(browser, server, token)
        page.goto(server.url + "/items/t000")
        row = page.locator('tr.field[data-field="departure_city"]')
        row.locator(".edit-field").click()
        row.locator("input").fill("杭州")
        page.locator('tr.field[data-field="class"] .edit-field').click()
        page.select_option('select[name="class"]', label="business")
        page.locator("#accept-all").click()
        page.wait_for_url(server.url + "/")
        saved = project.store.annotations("t000")[-1]
        assert saved["action"] == "edit"
        assert json.loads(saved["output"]) == {"intent": "book_flight", "departure_city": "杭州",
                                               "arrival_city": "北京", "date": "明天", "time": "09:00",
                                               "class": "business", "passenger_count": 1}


def test_long_label_sets_are_searchable(tmp_path, browser):
    labels = [f"intent_{i:02d}" for i in range(80)]
    project = make_project(tmp_path / "l", ["I lost my card"])
    project.spec_path.write_text(f"name: intents\nkind: classify\ninstruction: Pick the intent.\n"
                                 f"labels: {json.dumps(labels)}\n", encoding="utf-8")
    with serving(project, json.dumps({"label": "intent_05"})) as (server, token):
        page, _ = login(browser, server, token)
        page.goto(server.url + "/items/t000")
        page.keyboard.press("/")
        page.keyboard.type("intent_7")
        visible = page.locator("#labels li:not([hidden])")
        assert visible.count() == 10  # intent_70 .. intent_79
        page.keyboard.press("Enter")
        page.wait_for_url(server.url + "/")
        assert current(project) == {"t000": {"label": "intent_70"}}


def test_a_queue_of_100_items_is_cleared_with_the_keyboard_alone(tmp_path, browser):
    project = make_project(tmp_path / "q", [f"review number {i}" for i in range(100)])
    with serving(project) as (server, token):
        page, _ = login(browser, server, token)
        page.focus("#start")  # the queue page's start link, followed with Enter
        page.keyboard.press("Enter")
        for index in range(100):
            page.wait_for_url(f"**/items/t{index:03d}")
            page.keyboard.press("Enter" if index % 2 else "2")
        page.wait_for_url(server.url + "/")
        assert page.locator("#empty").is_visible() and page.locator("#left").inner_text() == "0"
        assert len(current(project)) == 100


def test_multilabel_items_are_reviewed_with_checkboxes_toggled_by_number_keys(tmp_path, browser):
    project = make_project(tmp_path / "m", ["Aspirin treats headaches and may cause ulcers."])
    project.spec_path.write_text("name: rel\nkind: multilabel\ninstruction: Which relations hold?\n"
                                 "labels: [TREATS, CAUSES, PREVENTS]\n", encoding="utf-8")
    with serving(project, json.dumps({"labels": ["TREATS"]})) as (server, token):
        page, _ = login(browser, server, token)
        page.goto(server.url + "/items/t000")
        assert page.locator("fieldset.choices input:checked").count() == 1
        page.keyboard.press("2")  # CAUSES on
        page.keyboard.press("Enter")
        page.wait_for_url(server.url + "/")
        saved = project.store.annotations("t000")[-1]
        assert (saved["action"], json.loads(saved["output"])) == ("edit", {"labels": ["TREATS", "CAUSES"]})


def test_spans_are_added_by_selecting_text_relabelled_and_deleted_by_key(tmp_path, browser):
    project = make_project(tmp_path / "s", ["头痛三天，吃了布洛芬"])
    project.spec_path.write_text("name: med\nkind: spans\ninstruction: Mark symptoms and drugs.\n"
                                 "labels: [symptom, drug]\n", encoding="utf-8")
    answer = json.dumps({"entities": [{"text": "三天", "label": "symptom"}]}, ensure_ascii=False)
    with serving(project, answer) as (server, token):
        page, _ = login(browser, server, token)
        page.goto(server.url + "/items/t000")
        assert page.locator("#span-text mark").inner_text().startswith("三天")
        page.locator("#span-text mark").click()
        page.keyboard.press("Delete")                  # the model's wrong mention goes
        assert page.locator("#span-text mark").count() == 0
        page.evaluate("""() => {                       // select 头痛 as a reviewer would with the mouse
            const node = document.querySelector('#span-text').firstChild;
            const range = document.createRange(); range.setStart(node, 0); range.setEnd(node, 2);
            const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
            document.querySelector('#span-text').dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
        }""")
        page.keyboard.press("2")                       # the next selection is a drug
        page.evaluate("""() => {
            const nodes = Array.from(document.querySelector('#span-text').childNodes);
            const node = nodes[nodes.length - 1];
            const at = node.textContent.indexOf('布洛芬');
            const range = document.createRange(); range.setStart(node, at); range.setEnd(node, at + 3);
            const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
            document.querySelector('#span-text').dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
        }""")
        page.locator("#span-text mark").first.click()
        page.keyboard.press("1")                       # the first mark becomes a symptom again
        page.keyboard.press("Enter")
        page.wait_for_url(server.url + "/")
        saved = json.loads(project.store.annotations("t000")[-1]["output"])
        assert sorted(saved["entities"], key=lambda m: m["start"]) == [
            {"text": "头痛", "label": "symptom", "start": 0, "end": 2},
            {"text": "布洛芬", "label": "drug", "start": 7, "end": 10}]


def test_a_generated_output_is_edited_in_a_text_box(tmp_path, browser):
    project = make_project(tmp_path / "g", ["我头痛"])
    project.spec_path.write_text("name: g\nkind: generate\ninstruction: Translate to English.\n"
                                 "rubric: [faithful]\n", encoding="utf-8")
    with serving(project, json.dumps({"output": "I has headache."})) as (server, token):
        page, _ = login(browser, server, token)
        page.goto(server.url + "/items/t000")
        page.locator('tr.field[data-field="output"] .edit-field').click()
        box = page.locator('textarea[name="output"]')
        box.fill("I have a headache.")
        box.press("Enter")                       # a new line, not a save
        assert page.url.endswith("/items/t000") and box.input_value() == "I have a headache.\n"
        box.press("Control+Enter")
        page.wait_for_url(server.url + "/")
        saved = json.loads(project.store.annotations("t000")[-1]["output"])
        assert saved == {"output": "I have a headache."}  # surrounding whitespace is trimmed


def test_blind_double_annotation_then_an_expert_settles_the_tie(tmp_path, browser):
    project = make_project(tmp_path / "b", [XSS])
    with project.spec_path.open("a", encoding="utf-8") as spec:
        spec.write("annotation:\n  overlap: {annotators: 2}\n  show_prelabel: false\n")
    with serving(project) as (server, ana_token):
        tokens = {"ana": ana_token, "bo": project.add_reviewer("bo"), "eve": project.add_reviewer("eve", "expert")}
        for name, key in (("ana", "1"), ("bo", "2")):  # positive, then negative
            page, _ = login(browser, server, tokens[name])
            assert page.locator("#disputes-link").count() == 0
            page.click("#start")
            page.wait_for_url("**/items/t000")
            assert page.locator("#model-label").inner_text() == "no answer"  # blind: no pre-label
            assert page.locator("#answered").count() == 0  # and no hint of the other's answer
            page.keyboard.press(key)
            page.wait_for_url(server.url + "/")
        assert project.store.review_progress("llm", need(project.spec)) == {"done": 1, "left": 0, "by_reason": {}}
        eve, dialogs = login(browser, server, tokens["eve"])
        eve.click("#disputes-link")
        eve.click("#start")
        eve.wait_for_url("**/adjudicate/t000")
        answers = eve.locator("#answers tr.answer")
        assert [answers.nth(i).get_attribute("data-by") for i in range(answers.count())] == [
            "ana", "bo", "llm (model, no vote)"]
        assert eve.locator("#text").inner_text() == XSS and eve.locator("#text img").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        eve.screenshot(path=str(ARTIFACTS / "adjudicate-item.png"), full_page=True)
        answers.nth(1).locator(".use-answer").click()
        eve.wait_for_url("**/adjudicate")
        assert eve.locator("#empty").inner_text() == "No disputed items."
        assert dialogs == []
        [gold] = project.store.gold()
        assert (gold["method"], json.loads(gold["decided_by"]), json.loads(gold["output"])) == (
            "expert", ["eve"], {"label": "negative"})
