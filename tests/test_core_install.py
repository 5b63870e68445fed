"""The core install stays light: without the extras' packages, people's answers still import, aggregate by
majority and export, and commands that need an extra say which one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

EXTRAS_ONLY = ["numpy", "pandas", "scipy", "sklearn", "statsmodels", "krippendorff", "crowdkit", "matplotlib",
               "torch", "sentence_transformers", "datasketch", "joblib", "fastapi", "llama_cpp", "pyarrow",
               "datasets", "spacy", "seqeval", "phonenumbers", "cryptography", "opencc"]

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
    for command in ("agree", "train", "dedup"):
        result = CliRunner().invoke(app, [command, "--project", str(root / "p")])
        print(command, "exit", result.exit_code, result.output.strip())
""")


def test_answers_aggregate_and_export_without_any_extra(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "exported 2 ['majority', 'single']" in result.stdout
    assert "agree exit 1" in result.stdout and "pip install 'labelloop[agree]'" in result.stdout
    assert "train exit 1" in result.stdout and "pip install torch==2.13.0 && pip install 'labelloop[embed]'" in result.stdout
    assert "dedup exit 1" in result.stdout and "pip install 'labelloop[dedup]'" in result.stdout
