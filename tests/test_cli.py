"""Every command through the CLI runner, the embedded model included, and one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from labelloop.cli import app

runner = CliRunner()


def invoke(*args: str, cwd=None):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_every_command_has_help_text():
    commands = app.registered_commands
    names = {c.name or c.callback.__name__ for c in commands}
    assert names == {"init", "ingest", "plan", "label", "status", "logs", "review", "export", "import-labelstudio",
                     "serve", "demo", "import-annotations", "aggregate", "agree", "embed", "train", "calibrate",
                     "simulate", "dedup", "audit"}
    for command in commands:
        assert command.callback.__doc__, command.callback.__name__
        result = invoke(command.name or command.callback.__name__, "--help")
        assert result.exit_code == 0
        assert command.callback.__doc__.split("\n")[0][:30] in " ".join(result.output.split())


@pytest.mark.slow
def test_init_ingest_plan_label_status_logs_with_the_embedded_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "proj", "--template", "sentiment").exit_code == 0
    data = tmp_path / "reviews.jsonl"
    data.write_text('{"id": "r1", "text": "Works great."}\n{"id": "r2", "text": "Broke at once."}\n'
                    '{"id": "r3", "text": "Fine, I guess."}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path / "proj")
    result = invoke("ingest", str(data), "--id-field", "id")
    assert result.exit_code == 0 and "3 items added, 0 already present" in result.output
    plan = invoke("plan", "--limit", "2")
    assert plan.exit_code == 0
    assert "items to label" in plan.output and "Works great." in plan.output and "llamacpp" in plan.output
    labeled = invoke("label", "--limit", "2", "--quiet")
    assert labeled.exit_code == 0 and "run 1 finished: 2 labeled" in labeled.output
    status = invoke("status", "--json")
    summary = json.loads(status.output)
    assert summary["items"] == 3 and summary["predictions"]["unlabeled"] == 1
    assert summary["predictions"].get("ok", 0) + summary["predictions"].get("unparsable", 0) == 2
    logs = json.loads(invoke("logs", "-n", "5").output)
    assert len(logs) == 2 and {entry["item_id"] for entry in logs} == {"r1", "r2"}
    assert "response" not in logs[0] and logs[0]["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "response" in json.loads(invoke("logs", "-n", "1", "--full").output)[0]
    assert "2 labeled" in invoke("status").output or "ok" in invoke("status").output


def test_outside_a_project_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("status")
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: no labelloop.yaml in")
    assert len(result.output.strip().splitlines()) == 1


def test_invalid_spec_is_a_one_line_error_with_its_line(tmp_path):
    invoke("init", str(tmp_path / "p"))
    spec = tmp_path / "p" / "labelloop.yaml"
    spec.write_text(spec.read_text().replace("max_tokens: 16", "max_tokens: lots"))
    result = invoke("plan", "--project", str(tmp_path / "p"))
    assert result.exit_code == 1
    line = next(n for n, text in enumerate(spec.read_text().splitlines(), 1) if "max_tokens: lots" in text)
    assert f"labelloop.yaml:{line}: model.max_tokens:" in " ".join(result.output.split())


def test_bad_input_line_is_a_one_line_error_and_writes_nothing(tmp_path):
    invoke("init", str(tmp_path / "p"))
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "fine"}\n{"text": broken}\n', encoding="utf-8")
    result = invoke("ingest", str(data), "--project", str(tmp_path / "p"))
    assert result.exit_code == 1
    assert f"{data}:2: invalid JSON" in " ".join(result.output.split())
    status = json.loads(invoke("status", "--json", "--project", str(tmp_path / "p")).output)
    assert status["items"] == 0


def test_unknown_template_and_unknown_backend_are_clear(tmp_path):
    result = invoke("init", str(tmp_path / "x"), "--template", "nope")
    assert result.exit_code == 1 and "unknown template; choose one of flight-booking" in " ".join(result.output.split())
    invoke("init", str(tmp_path / "p"))
    result = invoke("label", "--backend", "nope", "--project", str(tmp_path / "p"))
    assert result.exit_code == 1 and "unknown backend 'nope'" in result.output


def test_unreachable_server_exits_1_with_one_line(tmp_path):
    invoke("init", str(tmp_path / "p"))
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    invoke("ingest", str(data), "--project", str(tmp_path / "p"))
    result = invoke("label", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                    "--project", str(tmp_path / "p"))
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach http://127.0.0.1:9/v1")


def test_project_rereads_its_spec_when_the_file_changes(tmp_path):
    from labelloop import Project

    project = Project.init(tmp_path / "p")
    assert project.spec.scoring == "generate"
    text = project.spec_path.read_text(encoding="utf-8")
    project.spec_path.write_text(text.replace("kind: classify\n", "kind: classify\nscoring: logprob\n"),
                                 encoding="utf-8")
    assert project.spec.scoring == "logprob"


def test_review_then_export_through_the_cli(tmp_path):
    from conftest import FaultServer, make_project

    server = FaultServer()
    try:
        project = make_project(tmp_path / "p", ["Fine.", "Bad."])
        project.label(backend="openai", base_url=server.base_url, model="fault", concurrency=1)
        project.close()
        root = str(tmp_path / "p")
        status = invoke("status", "--project", root).output
        assert "needs_review" in status and "no_confidence" in status
        runner.invoke(app, ["review", "--reviewer", "bo", "--project", root], input="2\nq\n")
        out = tmp_path / "labels.jsonl"
        result = invoke("export", str(out), "--project", root)
        assert result.exit_code == 0
        assert "wrote 1 records" in result.output and "left out: 1 needs_review" in result.output
        [record] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert (record["id"], record["output"], record["source"]) == ("t000", {"label": "negative"}, "human")
        both = invoke("export", str(tmp_path / "all.csv"), "--format", "csv", "--include-unreviewed",
                      "--project", root)
        assert "wrote 2 records" in both.output
        bad = invoke("export", str(tmp_path / "x"), "--format", "xml", "--project", root)
        assert bad.exit_code == 1 and "xml" in bad.output
    finally:
        server.close()


def test_reviewer_add_prints_a_token_that_logs_in(tmp_path):
    from labelloop import Project
    from labelloop.review import authenticate

    invoke("init", str(tmp_path / "p"))
    assert "Add a reviewer" in invoke("reviewer", "add", "--help").output
    result = invoke("reviewer", "add", "ana", "--role", "expert", "--project", str(tmp_path / "p"))
    assert result.exit_code == 0
    token = result.output.strip().rsplit(" ", 1)[-1]
    with Project(tmp_path / "p") as project:
        assert authenticate(project.store, token).role == "expert"
        assert project.store.db.execute("SELECT count(*) FROM reviewers WHERE token_hash = ?",
                                        (token,)).fetchone()[0] == 0  # only the hash is stored
    bad = invoke("reviewer", "add", "bo", "--role", "boss", "--project", str(tmp_path / "p"))
    assert bad.exit_code == 1 and "role must be one of annotator, expert" in bad.output


def test_sync_labelstudio_has_help_text():
    assert "Push the items waiting for review to Label Studio" in " ".join(
        invoke("sync", "labelstudio", "--help").output.split())
