"""People's quality on real crowd answers (medrel_crowd, TREATS), through ``benchmarks/people_quality.py``:
workers replayed as annotators with half the expert's items as test questions; the test-accuracy flags find
the workers the other half shows to be worst far above chance, and ``aggregate: auto`` (choosing by the test
questions) matches the best method chosen with hindsight on the held-out half."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "medrel_crowd"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared datasets not found at {DATA}")
def test_flags_and_auto_on_treats(tmp_path):
    out = tmp_path / "people.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "people_quality.py"), "--relations", "TREATS",
                             "--splits", "1", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = json.loads(out.read_text())
    assert row["precision_at_k_tests"] >= 2 * row["random_precision_tests"] and row["flagged_by_tests_judged"] >= 5
    assert row["hindsight"] - row["auto"] <= 0.005, row
    assert row["auto"] > row["methods"]["majority"], "on TREATS a worker model beats the majority"
    assert 0.8 < row["auto_without_flagged"] <= 1.0
