"""The core install stays light: without the extras' packages, people's answers still import, aggregate by
majority and export, and commands that need an extra say which one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

EXTRAS_ONLY = ["numpy", "pandas", "scipy", "sklearn", "statsmodels", "krippendorff", "crowdkit", "matplotlib",
               "torch", "sentence_transformers", "datasketch", "joblib", "fastapi", "llama_cpp", "pyarrow",
               "datasets", "spacy", "seqeval", "phonenumbers", "cryptography", "opencc", "ray"]

SCRIPT = textwrap.dedent(f"""
    import sys, json, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {EXTRAS_ONLY!r}:
                raise ImportError(f"blocked: {{name}} (an extra's package)")
    sys.meta_path.insert(0, Block())
    from pathlib import Path
    from labelloop import Project
    from labelloop.cli import app
    from typer.testing import CliRunner
    root = Path(sys.argv[1])
    project = Project.init(root / "p", template="sentiment")
    (root / "items.jsonl").write_text('{{"id": "a", "text": "Good."}}\\n{{"id": "b", "text": "Bad."}}\\n')
    project.ingest(root / "items.jsonl", id_field="id")
    (root / "answers.jsonl").write_text("".join(json.dumps({{"item": i, "annotator": w, "labels": l}}) + "\\n"
        for i, w, l in [("a", "x", "positive"), ("a", "y", "positive"), ("a", "z", "negative"),
                        ("b", "x", "negative")]))
    project.import_annotations(root / "answers.jsonl")
    result = project.export(root / "out.jsonl")
    print("exported", result.written, sorted(json.loads(l)["method"] for l in open(root / "out.jsonl")))
    for command in ("agree", "train", "dedup", "embed", "serve", "monitor", "report"):
        result = CliRunner().invoke(app, [command, "--project", str(root / "p")])
        print(command, "exit", result.exit_code, result.output.strip())
    from labelloop import LabelloopError
    try:
        project.web_app()
    except LabelloopError as exc:
        print("web_app:", exc)
    result = CliRunner().invoke(app, ["label", "--runner", "ray", "--input", str(root / "items.jsonl"),
                                      "--output", str(root / "out"), "--project", str(root / "p")])
    print("ray exit", result.exit_code, result.output.strip())
    result = CliRunner().invoke(app, ["compare", "current", "strict:review.threshold=0.9", "--gold",
                                      str(root / "items.jsonl"), "--project", str(root / "p")])
    print("compare exit", result.exit_code, result.output.strip())
    spec = root / "p" / "labelloop.yaml"
    spec.write_text(spec.read_text() + "learn: {{fewshot: 2}}\\n")
    result = CliRunner().invoke(app, ["label", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                                      "--model", "m", "--project", str(root / "p")])
    print("fewshot exit", result.exit_code, result.output.strip())
""")


def test_answers_aggregate_and_export_without_any_extra(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "exported 2 ['majority', 'single']" in result.stdout
    assert "agree exit 1" in result.stdout and "pip install 'labelloop[agree]'" in result.stdout
    assert "train exit 1" in result.stdout
    assert "pip install torch==2.13.0 && pip install 'labelloop[embed]'" in result.stdout
    assert "dedup exit 1" in result.stdout and "pip install 'labelloop[dedup]'" in result.stdout
    lines = {line.split(" ", 1)[0]: line for line in result.stdout.splitlines()}
    embed_hint = "needs the embed extra: pip install torch==2.13.0 && pip install 'labelloop[embed]'"
    assert lines["embed"].startswith("embed exit 1 error: the flywheel") and embed_hint in lines["embed"]
    assert lines["serve"].startswith("serve exit 1 error: the review web app needs the web extra: pip install"
                                     " 'labelloop[web]'")
    assert lines["web_app:"].startswith("web_app: the review web app needs the web extra")
    assert lines["fewshot"].startswith("fewshot exit 1 error: learn.fewshot") and embed_hint in lines["fewshot"]
    assert lines["ray"].startswith("ray exit 1 error: the Ray runner (--runner ray) needs the ray extra:"
                                   " pip install 'labelloop[ray]'")
    assert lines["monitor"].startswith("monitor exit 1 error: the drift alarm (monitor) needs the agree extra")
    assert lines["report"].startswith("report exit 1 error: the report needs the agree extra")
    assert lines["compare"].startswith("compare exit 1 error: compare needs the agree extra:"
                                       " pip install 'labelloop[agree]'")
    assert "Traceback" not in result.stdout + result.stderr
