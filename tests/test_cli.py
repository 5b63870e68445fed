"""Every command through the CLI runner, the embedded model included, and one-line errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from labelloop.cli import app

runner = CliRunner()


def invoke(*args: str, cwd=None):
    return runner.invoke(app, list(args), catch_exceptions=False)


COMMANDS = {"init", "ingest", "plan", "label", "status", "logs", "review", "export", "import-labelstudio", "serve",
            "demo", "import-annotations", "aggregate", "agree", "embed", "train", "calibrate", "simulate", "dedup",
            "audit", "migrate-store", "compare", "monitor", "report", "annotators", "test-questions add",
            "guidelines digest", "guidelines accept", "ingest-docs",
            "reviewer add", "sync labelstudio", "pii show", "pii reveal"}


def _leaf_commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every command and sub-command of the CLI by its full name ("pii show")."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group
            found.update(_leaf_commands(command, (*prefix, name)))
        else:
            found[" ".join((*prefix, name))] = command
    return found


def test_every_command_and_sub_command_has_help_text():
    root = typer.main.get_command(app)
    commands = _leaf_commands(root)
    assert set(commands) == COMMANDS
    for name, command in commands.items():
        assert command.help, name
        result = invoke(*name.split(), "--help")
        assert result.exit_code == 0, name
        assert command.help.split("\n")[0][:30] in " ".join(result.output.split()), name
    for group in ("reviewer", "sync", "pii"):
        result = invoke(group, "--help")
        assert result.exit_code == 0 and root.commands[group].help in " ".join(result.output.split())


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
    text = " ".join(invoke("status").output.split())
    assert "3 items" in text and f"model calls: {summary['calls']['calls']:,} (" in text
    assert summary["calls"]["calls"] >= 2 and "recent runs" in text and "prediction status" in text


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


@pytest.mark.slow
def test_demo_labels_both_bundled_tasks_with_the_embedded_model(tmp_path):
    result = invoke("demo", str(tmp_path / "demo"), "--limit", "2", "--quiet")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for task in ("flight-booking", "sentiment"):
        assert (tmp_path / "demo" / task / "labelloop.yaml").is_file()
        assert (tmp_path / "demo" / task / "labels.jsonl").is_file()
    assert text.count("run 1 finished: 2 labeled") == 2 and "40 items" in text
    assert f"next: cd {tmp_path / 'demo' / 'flight-booking'} && labelloop review" in text


def test_serve_runs_the_review_app_until_stopped(tmp_path):
    import subprocess
    import sys
    import urllib.request

    from conftest import free_port, wait_for

    invoke("init", str(tmp_path / "p"))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "labelloop", "serve", "--port", str(port), "--project",
                                str(tmp_path / "p")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/login", 60, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
            assert response.status == 200 and "token" in response.read().decode().lower()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/items", timeout=5)
        assert refused.value.code == 401
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"review app on http://127.0.0.1:{port}/" in output


def test_pii_show_and_reveal_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELLOOP_PII_KEY", "correct horse battery staple")
    invoke("init", str(tmp_path / "p"))
    spec = tmp_path / "p" / "labelloop.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "pii: {types: {phone: mask, email: placeholder}}\n",
                    encoding="utf-8")
    data = tmp_path / "items.jsonl"
    text = "Call 13812345678 or write to li.si@example.com"
    data.write_text(json.dumps({"id": "m1", "text": text}) + "\n", encoding="utf-8")
    root = str(tmp_path / "p")
    assert invoke("ingest", str(data), "--id-field", "id", "--project", root).exit_code == 0
    shown = json.loads(invoke("pii", "show", "m1", "--project", root).output)
    assert [(f["type"], f["action"]) for f in shown] == [("phone", "mask"), ("email", "placeholder")]
    assert "13812345678" not in json.dumps(shown)
    revealed = json.loads(invoke("pii", "reveal", "m1", "--actor", "dpo", "--project", root).output)
    assert revealed["original"] == text and revealed["placeholders"] == {"<EMAIL_1>": "li.si@example.com"}
    audit = json.loads(invoke("audit", "--action", "pii-reveal", "--json", "--project", root).output)
    assert [(row["actor"], row["item_id"]) for row in audit] == [("dpo", "m1")]
    monkeypatch.setenv("LABELLOOP_PII_KEY", "a wrong passphrase")
    wrong = invoke("pii", "reveal", "m1", "--project", root)
    assert wrong.exit_code == 1 and "not this project's passphrase" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1


def test_ray_runner_options_need_the_ray_runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "proj", "--template", "sentiment").exit_code == 0
    monkeypatch.chdir(tmp_path / "proj")
    def said(result) -> str:  # the error box's text, unwrapped
        return " ".join(result.output.replace("│", " ").split())

    result = invoke("label", "--input", "items.parquet", "--output", "out")
    assert result.exit_code == 2 and "need --runner ray" in said(result)
    result = invoke("label", "--runner", "spark")
    assert result.exit_code == 2 and "local or ray" in said(result)
