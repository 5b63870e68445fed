"""The benchmark scripts' own plumbing: gold scored as predictions must score 1.0 everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"shared datasets folder not found at {DATASETS}")
def test_kinds_f1_self_check_scores_gold_as_perfect():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kinds_f1.py"), "--self-check"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-check ok: gold scores 1.0 on every metric" in result.stdout
    for task in ("restaurant8k_spans", "nlupp_hotels_intents", "crosswoz_spans", "banking77"):
        assert task in result.stdout


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"shared datasets folder not found at {DATASETS}")
def test_medrel_aggregation_matches_the_expert_on_treats(tmp_path):
    out = tmp_path / "medrel.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "medrel_aggregation.py"), "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    treats = {name: row["TREATS"] for name, row in report["results"].items()}
    assert treats["Dawid-Skene, per label"]["kappa"] > 0.7 > treats["always no"]["accuracy"]
    assert treats["majority, per label"]["f1"] > 0.7
    assert 0.45 < report["alpha"]["TREATS"] < 0.55  # the crowd's own agreement on TREATS
