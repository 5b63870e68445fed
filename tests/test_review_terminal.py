"""Terminal review, driven through the CLI with keys on stdin, as a reviewer would type them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import make_project
from labelloop.cli import app

runner = CliRunner()
FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=1)


def review(project, keys: str, *extra: str):
    return runner.invoke(app, ["review", "--reviewer", "ana", "--project", str(project.root), *extra],
                         input=keys, catch_exceptions=False)


def annotations(project) -> dict[str, dict]:
    rows = project.store.db.execute("SELECT * FROM annotations WHERE is_current = 1")
    return {row["item_id"]: dict(row) for row in rows}


def test_pick_skip_accept_then_quit(tmp_path, fault_server):
    project = make_project(tmp_path / "p", ["Fine.", "Meh.", "[bold]Great[/bold] & <b>fast</b>", "Ok."])
    project.label(base_url=fault_server.base_url, **FAST)  # no logprobs: every answer waits for review
    result = review(project, "2\ns\na\nq\n")
    assert result.exit_code == 0
    assert "[bold]Great[/bold] & <b>fast</b>" in result.output  # shown as text, not markup
    assert "2 reviewed, 1 skipped, 2 left in the queue" in result.output
    done = annotations(project)
    assert set(done) == {"t000", "t002"}
    assert (json.loads(done["t000"]["output"]), done["t000"]["action"]) == ({"label": "negative"}, "label")
    assert (json.loads(done["t002"]["output"]), done["t002"]["action"]) == ({"label": "positive"}, "accept")
    audit = [(r["actor"], r["action"], r["item_id"], r["before"], r["after"]) for r in project.store.audit_log()
             if r["actor"] == "ana"]
    assert audit == [("ana", "label", "t000", '{"label":"positive"}', '{"label":"negative"}'),
                     ("ana", "skip", "t001", '{"label":"positive"}', None),
                     ("ana", "accept", "t002", '{"label":"positive"}', '{"label":"positive"}')]
    again = review(project, "a\na\n")  # a new session: the skipped item comes back first
    assert "2 reviewed, 0 skipped, 0 left" in again.output
    project.close()


def test_edit_fields_by_type_with_errors_asked_again(tmp_path, fault_server):
    project = make_project(tmp_path / "f", ["从上海，不对，从杭州飞北京，三个人"], template="flight-booking")
    fault_server.default = "ok:" + json.dumps(
        {"intent": "book_flight", "departure_city": "上海", "arrival_city": "北京", "date": None, "time": None,
         "class": None, "passenger_count": 2}, ensure_ascii=False)
    project.label(base_url=fault_server.base_url, **FAST)
    keys = "e\n2\n杭州\ne\n7\nthree\ne\n7\n3\ne\n6\n3\ne\n5\n9am\na\ne\n5\n\na\n"
    result = review(project, keys)
    assert "passenger_count: expected integer or null" in result.output
    assert "not saved: time: '9am' does not match" in result.output
    saved = annotations(project)["t000"]
    assert saved["action"] == "edit"
    assert json.loads(saved["output"]) == {"intent": "book_flight", "departure_city": "杭州", "arrival_city": "北京",
                                           "date": None, "time": None, "class": "business", "passenger_count": 3}
    [row] = project.store.audit_log("t000")
    assert json.loads(row["before"])["departure_city"] == "上海" and json.loads(row["after"])["passenger_count"] == 3
    project.close()


def test_empty_queue_and_end_of_input(tmp_path, fault_server):
    project = make_project(tmp_path / "p", ["Fine."])
    assert "0 reviewed, 0 skipped, 0 left" in review(project, "").output
    project.label(base_url=fault_server.base_url, **FAST)
    assert "0 reviewed, 0 skipped, 1 left" in review(project, "").output  # EOF quits cleanly
    project.close()

def test_audit_log_is_append_only(tmp_path, fault_server):

    import pytest

    project = make_project(tmp_path / "p", ["Fine."])
    project.label(base_url=fault_server.base_url, **FAST)
    review(project, "a\n")
    with pytest.raises(Exception, match="append-only"):  # sqlite3.IntegrityError, or psycopg on PostgreSQL
        project.store.db.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(Exception, match="append-only"):  # sqlite3.IntegrityError, or psycopg on PostgreSQL
        project.store.db.execute("DELETE FROM audit_log")
    project.close()


def test_a_label_set_is_typed_as_numbers_or_names():
    import pytest

    from labelloop.review import ReviewError, parse_field_value
    from labelloop.spec import parse_spec

    spec = parse_spec("name: m\nkind: multilabel\ninstruction: x\nlabels: [TREATS, CAUSES, PREVENTS]\n")
    assert parse_field_value(spec, "labels", "1, 3") == ["TREATS", "PREVENTS"]
    assert parse_field_value(spec, "labels", "CAUSES 2") == ["CAUSES"]
    assert parse_field_value(spec, "labels", "") == []
    with pytest.raises(ReviewError, match="'9' is not one of TREATS, CAUSES, PREVENTS"):
        parse_field_value(spec, "labels", "9")


def test_a_reviewers_mentions_are_grounded_or_refused(tmp_path, fault_server):
    import pytest

    from labelloop.review import ReviewError, queue_item, submit

    project = make_project(tmp_path / "s", ["头痛三天，吃了布洛芬"])
    project.spec_path.write_text("name: med\nkind: spans\ninstruction: x\nlabels: [symptom, drug]\n",
                                 encoding="utf-8")
    fault_server.content = '{"entities": []}'
    project.label(base_url=fault_server.base_url, **FAST)
    item = queue_item(project.store, project.spec, "t000")
    with pytest.raises(ReviewError, match="the text at 0:2 is not '布洛芬'"):
        submit(project.store, project.spec, item, "ana", {"entities": [
            {"text": "布洛芬", "label": "drug", "start": 0, "end": 2}]}, "edit")
    with pytest.raises(ReviewError, match="'阿司匹林': not in the text"):
        submit(project.store, project.spec, item, "ana", {"entities": [{"text": "阿司匹林", "label": "drug"}]}, "edit")
    submit(project.store, project.spec, item, "ana", {"entities": [{"text": "布洛芬", "label": "drug"}]}, "edit")
    assert json.loads(annotations(project)["t000"]["output"]) == {
        "entities": [{"text": "布洛芬", "label": "drug", "start": 7, "end": 10}]}
    project.close()
