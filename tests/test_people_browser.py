"""People's quality in headless Chromium: a test question is indistinguishable from an ordinary item in the
page's DOM and in the API's answers; a new annotator qualifies through the web app, from a failed round (its
feedback page) to a passed one; a simulated annotator who answers at random gets the retraining marker."""

from __future__ import annotations

import json
import random
import re

import pytest

from conftest import FaultServer
from labelloop import Project
from labelloop.review import review_queue, submit
from test_people_quality import LABELS, SPEC
from test_web_browser import LiveServer, browser, login  # noqa: F401  (browser: the shared fixture)

pytestmark = pytest.mark.slow
# the page's structure: every element's tag, id, classes, name and type, in document order (no text, no values)
STRUCTURE = """() => [...document.querySelectorAll('body *')].map(e => [e.tagName, e.id, e.className,
    e.getAttribute('name'), e.getAttribute('type'), e.getAttribute('data-field')].join('|'))"""


def truth(text: str) -> str:
    return LABELS[int(re.findall(r"\d+", text)[0]) % 3]


@pytest.fixture
def quality_app(tmp_path):
    def start(annotation: str) -> tuple[Project, LiveServer]:
        root = tmp_path / "p"
        root.mkdir()
        (root / "labelloop.yaml").write_text(SPEC.format(annotation=annotation), encoding="utf-8")
        project = Project(root)
        items = root / "items.jsonl"
        items.write_text("".join(json.dumps({"id": f"t{i:03d}", "text": f"review {i}: it came"}) + "\n"
                                 for i in range(40)), encoding="utf-8")  # fmt: skip
        project.ingest(items, id_field="id")
        questions = root / "questions.jsonl"
        questions.write_text("".join(json.dumps({"id": f"t{100 + i:03d}", "text": f"review {100 + i}: it came",
                                                 "label": LABELS[(100 + i) % 3]}) + "\n" for i in range(12)),
                             encoding="utf-8")  # fmt: skip
        project.add_test_questions(questions)
        server = FaultServer()
        server.respond = lambda body: json.dumps({"label": truth(body["messages"][-1]["content"])})
        project.label(base_url=server.base_url)
        server.close()
        live = LiveServer(project)
        started.append((project, live))
        return project, live

    started: list = []
    yield start
    for project, live in started:
        live.stop()
        project.close()


def test_a_test_question_looks_like_any_other_item(quality_app, browser):  # noqa: F811
    project, server = quality_app("{test_questions: {rate: 0.0}}")
    token = project.add_reviewer("ana")
    page, dialogs = login(browser, server, token)
    page.goto(server.url + "/items/t005")
    ordinary = page.evaluate(STRUCTURE)
    page.goto(server.url + "/items/t104")
    test = page.evaluate(STRUCTURE)
    assert ordinary == test
    api = page.request
    one, other = (api.get(f"{server.url}/api/items/{i}").json() for i in ("t005", "t104"))
    assert one.keys() == other.keys() and {k: type(v) for k, v in one.items()} == {k: type(v) for k, v in
                                                                                    other.items()}  # fmt: skip
    assert (one["route"], one["reasons"]) == (other["route"], other["reasons"])
    page.keyboard.press("2")  # answered like any item: the same response, the next item
    page.wait_for_url(lambda url: "/items/t104" not in url)
    assert project.store.test_answers("ana")[0]["item_id"] == "t104"
    assert "t104" not in {r["item_id"] for r in project.store.annotations()}
    assert dialogs == []


def answer_round(page, wrong_last: bool) -> None:
    """Answer three test questions by key (their right label, but the last one wrong if ``wrong_last``)."""
    for n in range(3):
        page.wait_for_url(re.compile(r".*/items/t1\d\d$"))
        here, right = page.url, int(page.url[-3:]) % 3  # the right label's index; its key is one more
        page.keyboard.press(str((right + 1) % 3 + 1 if wrong_last and n == 2 else right + 1))
        page.wait_for_url(lambda url, here=here: url != here)


def test_qualification_from_a_failed_round_to_a_passed_one(quality_app, browser):  # noqa: F811
    project, server = quality_app("{qualify: {items: 3, pass: 1.0}, test_questions: {rate: 0.0}}")
    page, _ = login(browser, server, project.add_reviewer("bo"))
    assert "qualification: round 1, 0 of 3" in page.locator("#qualifying").inner_text()
    page.goto(server.url + "/next")
    page.wait_for_url("**/qualification")
    page.click("#next-round")
    answer_round(page, wrong_last=True)
    page.wait_for_url("**/qualification")
    assert "Round 1: 2 of 3 right" in page.content()
    missed = page.locator("tr.missed")
    assert missed.count() == 1 and re.search(r"(positive|negative|neutral): (the writer|no clear)", missed.inner_text())
    page.click("#next-round")
    answer_round(page, wrong_last=False)
    page.wait_for_url(re.compile(r".*/items/t0\d\d$"))  # qualified: ordinary items now
    assert project.qualification("bo").qualified and page.locator("#qualifying").count() == 0


def test_a_random_annotator_sees_the_retraining_marker(quality_app, browser):  # noqa: F811
    project, server = quality_app("{test_questions: {rate: 0.5}, show_scores: true}")
    store, spec = project.store, project.spec
    rng = random.Random(3)
    token = project.add_reviewer("rand")
    project.add_reviewer("sure")
    for name, accuracy in (("rand", 1 / 3), ("sure", 1.0)):
        for _ in range(30):
            item = review_queue(store, spec, name, limit=1)[0]
            label = truth(item.text) if rng.random() < accuracy else rng.choice(LABELS)
            submit(store, spec, item, name, {"label": label}, "label")
    page, _ = login(browser, server, token)
    marker = page.locator("#flagged")
    assert marker.inner_text() == "retraining suggested" and "test accuracy" in marker.get_attribute("title")
    assert re.match(r"your accuracy on test questions: \d+% of \d+", page.locator("#my-score").inner_text())
    sure, _ = login(browser, server, project.add_reviewer("sure"))
    assert sure.locator("#flagged").count() == 0
