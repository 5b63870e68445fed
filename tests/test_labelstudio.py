"""Label Studio: labeling config, task export, import of exports, and sync with a real Label Studio server."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import MODEL, Case, build_store, free_port, wait_for
from labelloop.export import export
from labelloop.labelstudio import LabelStudioError, export_tasks, import_export, labeling_config, sync
from labelloop.prompt import build_prompt
from labelloop.spec import TaskSpec, parse_spec, template_text
from labelloop.store import Store

pytestmark = pytest.mark.filterwarnings("ignore:The `parse_obj` method is deprecated")  # inside the SDK

DATA = Path(__file__).parent / "data" / "labelstudio"
SENTIMENT = parse_spec(template_text("sentiment"))
FLIGHT = parse_spec(template_text("flight-booking"))
NUMBERS = parse_spec("""
name: numbers
kind: extract
instruction: Read the price and the stars.
schema:
  type: object
  properties:
    price: {type: [number, "null"], minimum: 0, maximum: 1000}
    stars: {type: integer, enum: [1, 2, 3]}
  required: [price, stars]
""")
FLIGHT_BOOK = {"intent": "book_flight", "departure_city": "北京", "arrival_city": "上海", "date": "明天",
               "time": None, "class": "business", "passenger_count": 2}
FLIGHT_CANCEL = {"intent": "cancel_flight", "departure_city": None, "arrival_city": "广州", "date": None,
                 "time": "20:30", "class": None, "passenger_count": 3}


def make_store(path: Path, spec: TaskSpec, cases: dict[str, tuple[str, Any, float | None, str | None]]) -> Store:
    """A store with one item per case id and, where a route is given, the model's prediction."""
    return build_store(path, spec, [Case(item_id, text, route, output, confidence)
                                    for item_id, (text, output, confidence, route) in cases.items()])


SENTIMENT_CASES = {
    "t000": ("Loved it, works perfectly.", {"label": "positive"}, 0.41, "needs_review"),
    "t001": ("Terrible, broke on day one.", {"label": "negative"}, 0.55, "needs_review"),
    "t002": ("It is a phone.", {"label": "positive"}, 0.38, "needs_review"),
    "t003": ("Great value and fast shipping.", {"label": "positive"}, 0.97, "accepted"),
    "t004": ("Never again, rude staff.", None, None, "failed"),
    "t005": ("Arrived on Tuesday.", None, None, None),
}
FLIGHT_CASES = {
    "f000": ("帮我订两张明天从北京飞上海的公务舱", {**FLIGHT_BOOK, "passenger_count": 1}, 0.52, "needs_review"),
    "f001": ("我们两个半人去成都", {**FLIGHT_BOOK, "departure_city": None, "arrival_city": "成都"}, 0.3,
             "needs_review"),
    "f002": ("取消今晚八点半去广州的三张票", FLIGHT_CANCEL, 0.61, "needs_review"),
    "f003": ("晚上八点去深圳", {**FLIGHT_CANCEL, "time": "8pm"}, 0.2, "needs_review"),
}


@pytest.fixture
def sentiment_store(tmp_path) -> Iterator[Store]:
    store = make_store(tmp_path / "s.db", SENTIMENT, SENTIMENT_CASES)
    yield store
    store.close()


@pytest.fixture
def flight_store(tmp_path) -> Iterator[Store]:
    store = make_store(tmp_path / "f.db", FLIGHT, FLIGHT_CASES)
    yield store
    store.close()


def controls(config: str) -> list[ET.Element]:
    """The control tags of a labeling config, in order (every child of View but Header and Text)."""
    view = ET.fromstring(config)
    assert view.tag == "View"
    texts = [e for e in view if e.tag == "Text"]
    assert [(t.get("name"), t.get("value")) for t in texts] == [("labelloop_text", "$text")]
    return [e for e in view if e.tag not in ("Header", "Text")]


def rows(store: Store, sql: str, *params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in store.db.execute(sql, params)]


# -- labeling config -------------------------------------------------------------------------------


def test_config_of_classify_is_one_single_choice_with_label_hints():
    [choices] = controls(labeling_config(SENTIMENT))
    assert (choices.tag, choices.get("name"), choices.get("toName")) == ("Choices", "label", "labelloop_text")
    assert (choices.get("choice"), choices.get("required")) == ("single", "true")
    assert [(c.get("value"), c.get("hint")) for c in choices] == [
        (label.name, label.description) for label in SENTIMENT.labels]


def test_config_of_extract_has_one_control_per_field():
    tags = controls(labeling_config(FLIGHT))
    assert [(e.tag, e.get("name"), e.get("required")) for e in tags] == [
        ("Choices", "intent", "true"), ("TextArea", "departure_city", None), ("TextArea", "arrival_city", None),
        ("TextArea", "date", None), ("TextArea", "time", None), ("Choices", "class", None),
        ("Number", "passenger_count", None)]
    intent, *_, klass, count = tags
    assert [c.get("value") for c in klass] == ["economy", "premium_economy", "business", "first"]  # no null
    assert [c.get("value") for c in intent] == FLIGHT.output_schema()["properties"]["intent"]["enum"]
    assert (count.get("min"), count.get("max"), count.get("step")) == ("1", None, "1")
    assert all(e.get("toName") == "labelloop_text" and e.get("choice") == "single" for e in (intent, klass))
    assert all(e.get("maxSubmissions") == "1" for e in tags if e.tag == "TextArea")


def test_config_of_numbers_and_non_string_enums():
    price, stars = controls(labeling_config(NUMBERS))
    assert (price.tag, price.get("min"), price.get("max"), price.get("step"), price.get("required")) == (
        "Number", "0", "1000", "any", None)
    assert (stars.tag, [c.get("value") for c in stars], stars.get("required")) == ("Choices", ["1", "2", "3"], "true")


@pytest.mark.parametrize("prop, kind", [("{type: boolean}", "boolean"),
                                        ("{type: array, items: {type: string}}", "array"),
                                        ("{type: [string, integer]}", "string or integer")])
def test_config_refuses_fields_without_a_control(prop, kind):
    spec = parse_spec(f"name: x\nkind: extract\ninstruction: Do it.\nschema:\n  type: object\n"
                      f"  properties:\n    ok: {{type: string}}\n    flag: {prop}\n")
    with pytest.raises(LabelStudioError, match=f"field 'flag': type {kind} has no Label Studio control"):
        labeling_config(spec)


# -- export ----------------------------------------------------------------------------------------


def test_export_writes_tasks_with_predictions_and_the_config_beside_them(sentiment_store, tmp_path):
    result = export_tasks(sentiment_store, SENTIMENT, tmp_path / "out" / "tasks.json", actor="lead")
    assert (result.tasks, result.predictions) == (6, 4)
    assert Path(result.config_path) == tmp_path / "out" / "tasks.xml"
    assert Path(result.config_path).read_text(encoding="utf-8") == labeling_config(SENTIMENT) + "\n"
    tasks = json.loads(Path(result.tasks_path).read_text(encoding="utf-8"))
    version = f"{MODEL}@{build_prompt(SENTIMENT).version}"
    assert tasks[0] == {"data": {"text": "Loved it, works perfectly.", "labelloop_id": "t000"},
                        "predictions": [{"model_version": version, "score": 0.41, "result": [
                            {"from_name": "label", "to_name": "labelloop_text", "type": "choices",
                             "value": {"choices": ["positive"]}}]}]}
    assert tasks[3]["predictions"][0]["score"] == 0.97
    assert [t["data"]["labelloop_id"] for t in tasks if "predictions" not in t] == ["t004", "t005"]  # failed, unlabeled
    [audit] = rows(sentiment_store, "SELECT actor, action, detail FROM audit_log")
    assert (audit["actor"], audit["action"], json.loads(audit["detail"])["format"]) == ("lead", "export", "labelstudio")


def test_export_maps_each_field_type_and_leaves_nulls_empty(flight_store, tmp_path):
    tasks = json.loads(Path(export_tasks(flight_store, FLIGHT, tmp_path / "t.json").tasks_path).read_text("utf-8"))
    result = {r["from_name"]: (r["type"], r["value"]) for r in tasks[2]["predictions"][0]["result"]}
    assert result == {"intent": ("choices", {"choices": ["cancel_flight"]}),
                      "arrival_city": ("textarea", {"text": ["广州"]}), "time": ("textarea", {"text": ["20:30"]}),
                      "passenger_count": ("number", {"number": 3})}


def test_export_refuses_an_xml_tasks_path(sentiment_store, tmp_path):
    with pytest.raises(LabelStudioError, match="must not end in .xml"):
        export_tasks(sentiment_store, SENTIMENT, tmp_path / "tasks.xml")
    assert not list(tmp_path.glob("tasks*"))


def test_predictions_come_back_exactly_when_annotators_accept_them(flight_store, tmp_path):
    """Export, let every annotator submit the prediction unchanged, import: each output is the model's, exactly."""
    tasks = json.loads(Path(export_tasks(flight_store, FLIGHT, tmp_path / "t.json").tasks_path).read_text("utf-8"))
    for number, task in enumerate(tasks):
        task.update(id=number + 1, annotations=[{"id": 500 + number, "completed_by": 1, "was_cancelled": False,
                                                 "result": task["predictions"][0]["result"]}])
    (tmp_path / "accepted.json").write_text(json.dumps(tasks), encoding="utf-8")
    result = import_export(flight_store, FLIGHT, tmp_path / "accepted.json")
    assert result.errors == [
        "task 4 (item f003), annotation 503: field 'time': '8pm' does not match '^\\\\d{2}:\\\\d{2}$'"]
    imported = {r["item_id"]: json.loads(r["output"]) for r in rows(flight_store, "SELECT * FROM annotations")}
    assert imported == {item_id: case[1] for item_id, case in FLIGHT_CASES.items() if item_id != "f003"}


# -- import of an export file ------------------------------------------------------------------------


def test_import_reports_bad_tasks_and_imports_the_good_ones(sentiment_store):
    result = import_export(sentiment_store, SENTIMENT, DATA / "sentiment_export.json")
    assert (result.imported, result.skipped_existing, result.cancelled) == (2, 0, 1)
    assert result.errors == [
        "task 103 (item t002), annotation 9003: field 'label': 'very positive' is not one of"
        " ['positive', 'negative', 'neutral']",
        "task 106: no data.labelloop_id (not a task labelloop exported)"]
    annotations = rows(sentiment_store, "SELECT item_id, annotator, output, action, source, external_id,"
                                        " prediction_id IS NOT NULL AS linked FROM annotations ORDER BY id")
    assert annotations == [
        {"item_id": "t000", "annotator": "ana@example.org", "output": '{"label":"negative"}',
         "action": "import-labelstudio", "source": "labelstudio", "external_id": "9001", "linked": 1},
        {"item_id": "t001", "annotator": "ls-user-4", "output": '{"label":"neutral"}',
         "action": "import-labelstudio", "source": "labelstudio", "external_id": "9002", "linked": 1}]
    audit = [(r["actor"], r["action"], r["item_id"], r["before"], r["after"]) for r in sentiment_store.audit_log()]
    assert audit == [("ana@example.org", "import-labelstudio", "t000", '{"label":"positive"}', '{"label":"negative"}'),
                     ("ls-user-4", "import-labelstudio", "t001", '{"label":"negative"}', '{"label":"neutral"}')]
    versions = dict(sentiment_store.db.execute("SELECT id, review_version FROM items"))
    assert versions == {"t000": 1, "t001": 1, "t002": 0, "t003": 0, "t004": 0, "t005": 0}


def test_importing_the_same_export_again_adds_nothing(sentiment_store):
    first = import_export(sentiment_store, SENTIMENT, DATA / "sentiment_export.json")
    def counts() -> list[int]:
        return [sentiment_store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("annotations", "audit_log")]

    before = counts()
    again = import_export(sentiment_store, SENTIMENT, DATA / "sentiment_export.json")
    assert (again.imported, again.skipped_existing, again.cancelled, again.errors) == (0, 2, 1, first.errors)
    assert counts() == before == [2, 2]
    assert sentiment_store.db.execute("SELECT sum(review_version) FROM items").fetchone()[0] == 2


def test_import_checks_every_field_of_an_extract_answer(flight_store):
    result = import_export(flight_store, FLIGHT, DATA / "flight_export.json")
    assert result.imported == 2
    assert result.errors == [
        "task 202 (item f001), annotation 9102: field 'passenger_count': 2.5 is not of type 'integer', 'null'",
        "task 204 (item f003), annotation 9104: 'intent' is a required property;"
        " field 'time': '8pm' does not match '^\\\\d{2}:\\\\d{2}$'"]
    imported = {r["item_id"]: (r["annotator"], json.loads(r["output"]))
                for r in rows(flight_store, "SELECT * FROM annotations")}
    assert imported == {"f000": ("li.wei@example.org", FLIGHT_BOOK), "f002": ("ls-user-6", FLIGHT_CANCEL)}
    assert type(imported["f002"][1]["passenger_count"]) is int  # Label Studio's 3.0 is the integer 3


def test_imported_answers_are_the_exported_human_labels(sentiment_store, tmp_path):
    import_export(sentiment_store, SENTIMENT, DATA / "sentiment_export.json")
    export(sentiment_store, SENTIMENT, tmp_path / "labels.jsonl")
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "labels.jsonl").read_text("utf-8").splitlines())}
    assert {i: (r["source"], r.get("decided_by"), r["output"]) for i, r in records.items()} == {
        "t000": ("human", "ana@example.org", {"label": "negative"}),
        "t001": ("human", "ls-user-4", {"label": "neutral"}),
        "t003": ("model", None, {"label": "positive"})}


def test_import_names_tasks_of_unknown_items_and_unreadable_files(sentiment_store, tmp_path):
    task = {"id": 7, "data": {"text": "x", "labelloop_id": "nope"},
            "annotations": [{"id": 1, "completed_by": 1, "result": []}]}
    (tmp_path / "unknown.json").write_text(json.dumps([task]), encoding="utf-8")
    assert import_export(sentiment_store, SENTIMENT, tmp_path / "unknown.json").errors == [
        "task 7 (item nope): the item is not in this project"]
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    with pytest.raises(LabelStudioError, match=r"broken.json: cannot read a Label Studio JSON export \(Expecting"):
        import_export(sentiment_store, SENTIMENT, tmp_path / "broken.json")
    (tmp_path / "object.json").write_text('{"id": 1}', encoding="utf-8")
    with pytest.raises(LabelStudioError, match="object.json: not a Label Studio JSON export"):
        import_export(sentiment_store, SENTIMENT, tmp_path / "object.json")


# -- sync with a real Label Studio server ------------------------------------------------------------

LS_BIN = Path(os.environ.get("LABELLOOP_LABEL_STUDIO_BIN",
                             Path(__file__).resolve().parents[1] / ".venv-ls" / "bin" / "label-studio"))
LS_EMAIL, LS_PASSWORD = "reviewer@labelloop.test", "not-a-secret-42"


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    token: str  # a personal access token (JWT refresh token), as a user creates one in Account & Settings
    legacy_token: str  # the user's legacy API token (refused while the organization disables them)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the HTTP API as the user would (Bearer access token obtained from the personal token)."""
        import requests

        access = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": self.token}, timeout=30)
        access.raise_for_status()
        response = requests.request(method, f"{self.url}{path}", timeout=60,
                                    headers={"Authorization": f"Bearer {access.json()['access']}"}, **kwargs)
        response.raise_for_status()
        return response.json()


def personal_access_token(url: str, email: str, password: str) -> str:
    """Log in as a person does and create a personal access token (Account & Settings > Personal Access Token)."""
    import requests

    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30).raise_for_status()
    login = session.post(f"{url}/user/login/", allow_redirects=False, timeout=30,
                         data={"email": email, "password": password,
                               "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert login.status_code == 302, f"login failed: {login.status_code}"
    created = session.post(f"{url}/api/token/", headers={"X-CSRFToken": session.cookies["csrftoken"]}, timeout=30)
    created.raise_for_status()
    return created.json()["token"]


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:
    """A real Label Studio server on 127.0.0.1 (its own data dir, offline, no telemetry), from its own venv."""
    if not LS_BIN.exists():
        pytest.skip(f"Label Studio is not installed at {LS_BIN}: run 'make labelstudio'"
                    " (or point LABELLOOP_LABEL_STUDIO_BIN at a label-studio executable)")
    port, data = free_port(), tmp_path_factory.mktemp("labelstudio")
    legacy = secrets.token_hex(20)
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
           "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false", "LOG_LEVEL": "WARNING"}
    command = [str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data), "--username", LS_EMAIL, "--password", LS_PASSWORD, "--user-token", legacy]
    with (data / "server.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/health", 180, process)
            yield LabelStudioServer(url, personal_access_token(url, LS_EMAIL, LS_PASSWORD), legacy)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ls_tasks(server: LabelStudioServer, title: str) -> list[dict[str, Any]]:
    [project] = [p for p in server.api("GET", "/api/projects", params={"title": title})["results"]
                 if p["title"] == title]
    return server.api("GET", "/api/tasks", params={"project": project["id"], "fields": "all"})["tasks"]


@pytest.mark.slow
def test_sync_pushes_review_items_and_pulls_annotations(label_studio, sentiment_store, tmp_path):
    first = sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.token, "sentiment review")
    assert (first.pushed, first.already_pushed, first.pulled, first.errors) == (3, 0, 0, [])
    tasks = {t["data"]["labelloop_id"]: t for t in ls_tasks(label_studio, "sentiment review")}
    assert sorted(tasks) == ["t000", "t001", "t002"]  # needs_review only
    [prediction] = tasks["t000"]["predictions"]
    assert (prediction["model_version"], prediction["score"]) == (f"{MODEL}@{build_prompt(SENTIMENT).version}", 0.41)
    assert prediction["result"][0]["value"] == {"choices": ["positive"]}

    second = sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.token, "sentiment review")
    assert (second.pushed, second.already_pushed, second.pulled) == (0, 3, 0)
    assert len(ls_tasks(label_studio, "sentiment review")) == 3

    label_studio.api("POST", f"/api/tasks/{tasks['t001']['id']}/annotations/", json={"lead_time": 4.2, "result": [
        {"from_name": "label", "to_name": "labelloop_text", "type": "choices", "value": {"choices": ["neutral"]}}]})
    third = sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.token, "sentiment review")
    assert (third.pushed, third.already_pushed, third.pulled, third.errors) == (0, 3, 1, [])
    [annotation] = rows(sentiment_store, "SELECT * FROM annotations")
    assert (annotation["item_id"], annotation["annotator"], json.loads(annotation["output"]), annotation["source"]) == (
        "t001", LS_EMAIL, {"label": "neutral"}, "labelstudio")
    [audit] = [r for r in sentiment_store.audit_log() if r["action"] == "import-labelstudio"]
    assert (audit["actor"], audit["item_id"], audit["after"]) == (LS_EMAIL, "t001", '{"label":"neutral"}')
    export(sentiment_store, SENTIMENT, tmp_path / "labels.jsonl")
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "labels.jsonl").read_text("utf-8").splitlines())}
    assert (records["t001"]["source"], records["t001"]["decided_by"]) == ("human", LS_EMAIL)
    assert sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.token, "sentiment review").pulled == 0


@pytest.mark.slow
def test_sync_adopts_tasks_it_pushed_but_did_not_record(label_studio, sentiment_store):
    """A sync that dies between Label Studio's import and the store's commit leaves no duplicate behind."""
    assert sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.token, "crash").pushed == 3
    with sentiment_store.transaction() as db:
        db.execute("DELETE FROM labelstudio_tasks")
    project_id = ls_tasks(label_studio, "crash")[0]["project"]
    label_studio.api("POST", f"/api/projects/{project_id}/import",  # another project's item: not adopted
                     json=[{"data": {"text": "elsewhere", "labelloop_id": "other-project-item"}}])
    again = sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.token, "crash")
    assert (again.pushed, again.already_pushed, again.errors) == (0, 3, [])
    assert len(ls_tasks(label_studio, "crash")) == 4
    assert sentiment_store.db.execute("SELECT count(*) FROM labelstudio_tasks").fetchone()[0] == 3


@pytest.mark.slow
def test_sync_of_an_extract_task_maps_every_control_back(label_studio, flight_store):
    assert sync(flight_store, FLIGHT, label_studio.url, label_studio.token, "flights").pushed == 4
    tasks = {t["data"]["labelloop_id"]: t for t in ls_tasks(label_studio, "flights")}
    answer = [{"from_name": name, "to_name": "labelloop_text", "type": kind, "value": value} for name, kind, value in [
        ("intent", "choices", {"choices": ["book_flight"]}), ("departure_city", "textarea", {"text": ["北京"]}),
        ("arrival_city", "textarea", {"text": ["上海"]}), ("date", "textarea", {"text": ["明天"]}),
        ("class", "choices", {"choices": ["business"]}), ("passenger_count", "number", {"number": 2})]]
    label_studio.api("POST", f"/api/tasks/{tasks['f000']['id']}/annotations/", json={"result": answer})
    wrong = [{**answer[-1], "value": {"number": 2.5}}]
    label_studio.api("POST", f"/api/tasks/{tasks['f001']['id']}/annotations/", json={"result": answer[:-1] + wrong})
    result = sync(flight_store, FLIGHT, label_studio.url, label_studio.token, "flights")
    assert (result.pushed, result.pulled) == (0, 1)
    [error] = result.errors
    assert error.startswith(f"task {tasks['f001']['id']} (item f001), annotation ")
    assert error.endswith("field 'passenger_count': 2.5 is not of type 'integer', 'null'")
    [annotation] = rows(flight_store, "SELECT item_id, output FROM annotations")
    assert (annotation["item_id"], json.loads(annotation["output"])) == ("f000", FLIGHT_BOOK)


@pytest.mark.slow
def test_sync_names_a_refused_token_and_accepts_legacy_tokens_where_enabled(label_studio, sentiment_store):
    with pytest.raises(LabelStudioError, match="answered 401: .*legacy token authentication has been disabled"
                                               r".*\(use a personal access token"):
        sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.legacy_token, "legacy")
    label_studio.api("POST", "/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True})
    assert sync(sentiment_store, SENTIMENT, label_studio.url, label_studio.legacy_token, "legacy").pushed == 3


def test_sync_names_an_unreachable_server(sentiment_store):
    with pytest.raises(LabelStudioError, match=r"http://127.0.0.1:\d+: cannot reach Label Studio"):
        sync(sentiment_store, SENTIMENT, f"http://127.0.0.1:{free_port()}", "token", "nowhere")


# -- the CLI ---------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None):
    from typer.testing import CliRunner

    from labelloop.cli import app

    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def sentiment_project(tmp_path) -> Iterator[Path]:
    """A project directory whose store holds SENTIMENT_CASES."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "labelloop.yaml").write_text(template_text("sentiment"), encoding="utf-8")
    make_store(root / "labelloop.db", SENTIMENT, SENTIMENT_CASES).close()
    return root


def test_cli_export_and_import(sentiment_project, tmp_path):
    exported = cli("export", str(tmp_path / "ls" / "tasks.json"), "--format", "labelstudio",
                   "--project", str(sentiment_project))
    assert exported.exit_code == 0
    text = " ".join(exported.output.split())
    assert "wrote 6 records to" in text and "(labelstudio; 4 model, 2 unlabeled); and" in text
    assert text.endswith(f"{tmp_path / 'ls' / 'tasks.xml'}")
    assert (tmp_path / "ls" / "tasks.xml").read_text("utf-8") == labeling_config(SENTIMENT) + "\n"
    refused = cli("export", str(tmp_path / "t.json"), "--format", "labelstudio", "--include-unreviewed",
                  "--project", str(sentiment_project))
    assert refused.exit_code == 1 and "do not apply to the labelstudio format" in " ".join(refused.output.split())
    for _ in range(2):  # the bad annotations stay bad: both runs exit 1; the second imports nothing
        imported = cli("import-labelstudio", str(DATA / "sentiment_export.json"), "--project", str(sentiment_project))
        assert imported.exit_code == 1
        assert "error: task 103 (item t002), annotation 9003: field 'label': 'very positive'" in imported.output
    assert "0 annotations imported, 2 already present, 1 cancelled, 2 bad" in imported.output


@pytest.mark.slow
def test_cli_sync(label_studio, sentiment_project):
    args = ["sync", "labelstudio", "--url", label_studio.url, "--token-env", "LS_TOKEN", "--project", "cli sync",
            "--dir", str(sentiment_project)]
    first = cli(*args, env={"LS_TOKEN": label_studio.token})
    assert first.exit_code == 0 and "pushed 3 tasks (0 already in the project); pulled 0" in first.output
    again = cli(*args, env={"LS_TOKEN": label_studio.token})
    assert again.exit_code == 0 and "pushed 0 tasks (3 already in the project)" in again.output
    missing = cli(*args, env={"LS_TOKEN": ""})
    assert missing.exit_code == 1 and "environment variable LS_TOKEN holds no Label Studio token" in missing.output
