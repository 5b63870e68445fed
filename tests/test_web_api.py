"""The review app's JSON API and its access rules (FastAPI's TestClient: the app in process)."""

from __future__ import annotations

import pytest

from conftest import FaultServer, make_project

testclient = pytest.importorskip("fastapi.testclient")
pytestmark = pytest.mark.usefixtures("backend")
FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=1)


@pytest.fixture
def app_and_tokens(tmp_path):
    fault = FaultServer()
    project = make_project(tmp_path / "p", ["Loved it.", "Broke.", "Blue."])
    project.label(base_url=fault.base_url, **FAST)
    fault.close()
    tokens = {"ana": project.add_reviewer("ana"), "eve": project.add_reviewer("eve", role="expert")}
    yield testclient.TestClient(project.web_app()), tokens, project
    project.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_api_route_needs_a_token(app_and_tokens):
    client, tokens, _ = app_and_tokens
    for path in ("/api/items", "/api/items/t000", "/api/annotations", "/api/progress"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=bearer("wrong")).status_code == 401
        assert client.get(path, headers=bearer(tokens["ana"])).status_code == 200
    assert client.post("/api/undo").status_code == 401
    assert client.get("/items/t000", follow_redirects=False).headers["location"] == "/login"


def test_openapi_describes_the_api(app_and_tokens):
    client, _, _ = app_and_tokens
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/api/items", "/api/items/{item_id}", "/api/items/{item_id}/decision", "/api/undo",
                          "/api/progress", "/api/annotations", "/api/items/{item_id}/adjudication",
                          "/api/disputes", "/api/next", "/api/items/{item_id}/hold", "/api/items/{item_id}/release",
                          "/api/qualification"}


def test_decisions_conflicts_and_progress(app_and_tokens):
    client, tokens, project = app_and_tokens
    ana, eve = bearer(tokens["ana"]), bearer(tokens["eve"])
    assert client.get("/api/progress", headers=ana).json() == {"done": 0, "left": 3, "by_reason": {"no_confidence": 3}}
    bad = client.post("/api/items/t000/decision", headers=ana,
                      json={"action": "edit", "version": 0, "output": {"label": "great"}})
    assert bad.status_code == 422 and "is not one of" in bad.json()["detail"]
    ok = client.post("/api/items/t000/decision", headers=ana, json={"action": "accept", "version": 0})
    assert ok.json() == {"saved": True, "next": "/items/t001"}
    late = client.post("/api/items/t000/decision", headers=eve,
                       json={"action": "label", "version": 0, "output": {"label": "negative"}})
    assert late.status_code == 409
    assert late.json()["annotator"] == "ana" and late.json()["output"] == {"label": "positive"}
    item = client.get("/api/items/t000", headers=eve).json()
    assert [(a["annotator"], a["output"]) for a in item["annotations"]] == [("ana", {"label": "positive"})]
    assert client.get("/api/progress", headers=ana).json()["done"] == 1
    missing = client.post("/api/items/nope/decision", headers=ana, json={"action": "accept", "version": 0})
    assert missing.status_code == 404
    assert client.post("/api/undo", headers=ana).json()["item_id"] == "t000"
    assert client.post("/api/undo", headers=ana).status_code == 404


def test_reviewer_roles_are_checked(app_and_tokens):
    from labelloop.review import ReviewError

    _, _, project = app_and_tokens
    with pytest.raises(ReviewError, match="role must be one of annotator, expert"):
        project.add_reviewer("x", role="boss")
    roles = {row["name"]: row["role"] for row in project.store.reviewers()}
    assert roles == {"ana": "annotator", "eve": "expert"}


def test_annotators_see_only_their_own_answers_experts_see_all_and_adjudicate(app_and_tokens):
    client, tokens, project = app_and_tokens
    bo = bearer(project.add_reviewer("bo"))
    ana, eve = bearer(tokens["ana"]), bearer(tokens["eve"])
    with project.spec_path.open("a", encoding="utf-8") as spec:
        spec.write("annotation:\n  overlap: {annotators: 2}\n")
    for who, label in ((ana, "positive"), (bo, "negative")):
        saved = client.post("/api/items/t000/decision", headers=who,
                            json={"action": "label", "version": 0, "output": {"label": label}})
        assert saved.json()["saved"] is True  # the same version: two answers are wanted
    assert [a["annotator"] for a in client.get("/api/annotations", headers=ana).json()] == ["ana"]
    assert [a["annotator"] for a in client.get("/api/items/t000", headers=bo).json()["annotations"]] == ["bo"]
    assert {a["annotator"] for a in client.get("/api/annotations", headers=eve).json()} == {"ana", "bo"}

    assert client.get("/api/disputes", headers=ana).status_code == 403
    assert client.post("/api/items/t000/adjudication", headers=ana, json={"output": {"label": "neutral"}}
                       ).status_code == 403
    [dispute] = client.get("/api/disputes", headers=eve).json()
    assert (dispute["item_id"], dispute["agreement"]) == ("t000", 0.5)
    assert dispute["answers"]["ana"] == {"label": "positive"} and dispute["answers"]["bo"] == {"label": "negative"}
    bad = client.post("/api/items/t000/adjudication", headers=eve, json={"output": {"label": "great"}})
    assert bad.status_code == 422
    done = client.post("/api/items/t000/adjudication", headers=eve, json={"output": {"label": "negative"}})
    assert done.json() == {"saved": True, "next": "/adjudicate"}
    assert client.get("/api/disputes", headers=eve).json() == []


def test_reviewers_asking_at_once_are_handed_different_items(app_and_tokens):
    client, tokens, project = app_and_tokens
    tokens["bob"] = project.add_reviewer("bob")
    ana, bob, eve = bearer(tokens["ana"]), bearer(tokens["bob"]), bearer(tokens["eve"])
    first = client.get("/api/next", headers=ana).json()["item"]["item_id"]
    second = client.get("/api/next", headers=bob).json()["item"]["item_id"]
    assert first != second
    assert client.get("/api/next", headers=ana).json()["item"]["item_id"] == first  # still hers
    assert client.get(f"/api/items/{first}", headers=eve).json()["held_by"] == ["ana"]  # experts see holds
    assert "held_by" not in client.get(f"/api/items/{first}", headers=bob).json() or \
        client.get(f"/api/items/{first}", headers=bob).json()["held_by"] == []
    assert client.post(f"/api/items/{first}/hold", headers=bob).json()["held"] is False
    queue = {item["item_id"] for item in client.get("/api/items", headers=bob).json()}
    assert queue == {"t000", "t001", "t002"} - {first}
    client.post(f"/api/items/{first}/release", headers=ana)
    assert client.post(f"/api/items/{first}/hold", headers=bob).json()["held"] is True


def test_an_answer_releases_the_item_and_the_next_is_held(app_and_tokens):
    client, tokens, project = app_and_tokens
    ana = bearer(tokens["ana"])
    item = client.get("/api/next", headers=ana).json()["item"]
    saved = client.post(f"/api/items/{item['item_id']}/decision", headers=ana,
                        json={"action": "accept", "version": item["version"]}).json()
    assert saved["saved"] and project.store.review_holders(item["item_id"]) == []
    following = saved["next"].rsplit("/", 1)[1]
    assert project.store.review_holders(following) == ["ana"]


def test_a_hold_expires(app_and_tokens, monkeypatch):
    client, tokens, project = app_and_tokens
    tokens["bob"] = project.add_reviewer("bob")
    ana, bob = bearer(tokens["ana"]), bearer(tokens["bob"])
    held = client.get("/api/next", headers=ana).json()["item"]["item_id"]
    import labelloop.store.claims as claims
    later = claims.time.time() + 121
    monkeypatch.setattr(claims.time, "time", lambda: later)
    assert client.post(f"/api/items/{held}/hold", headers=bob).json()["held"] is True
