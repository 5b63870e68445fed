"""Agreement and majority: crafted cases with known values, and a slice of medrel_crowd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelloop import agree

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RELATIONS = ["TREATS", "CAUSES"]


def test_perfect_agreement_gives_one():
    ann = {i: {"ann1": v, "ann2": v, "ann3": v} for i, v in enumerate("ABAB")}
    [pair] = [p for p in agree.pairwise(ann) if (p["a"], p["b"]) == ("ann1", "ann2")]
    assert pair["items"] == 4 and pair["percent_agreement"] == 1.0 and pair["cohen_kappa"] == pytest.approx(1.0)
    assert agree.fleiss_kappa(ann, ["A", "B"]) == pytest.approx(1.0)
    assert agree.krippendorff_alpha(ann) == pytest.approx(1.0)
    assert agree.krippendorff_alpha(ann, "ordinal", order=["A", "B"]) == pytest.approx(1.0)


def test_cohen_kappa_matches_hand_computation():
    # 10 items; (a, b) counts: AA 6, AB 1, BA 2, BB 1.
    # observed p_o = (6 + 1) / 10 = 0.7
    # marginals: a says A 7/10, b says A 8/10 -> p_e = 0.7*0.8 + 0.3*0.2 = 0.62
    # kappa = (0.7 - 0.62) / (1 - 0.62) = 0.08 / 0.38 = 4/19
    pairs = [("A", "A")] * 6 + [("A", "B")] + [("B", "A")] * 2 + [("B", "B")]
    ann = {i: {"a": x, "b": y} for i, (x, y) in enumerate(pairs)}
    [pair] = agree.pairwise(ann)
    assert (pair["a"], pair["b"], pair["items"]) == ("a", "b", 10)
    assert pair["percent_agreement"] == pytest.approx(0.7)
    assert pair["cohen_kappa"] == pytest.approx(4 / 19)


def test_pairwise_needs_two_shared_items_and_handles_frozensets():
    ann = {
        1: {"a": frozenset({"X"}), "b": frozenset({"X"}), "c": frozenset()},
        2: {"a": frozenset({"X", "Y"}), "b": frozenset({"X", "Y"})},
    }
    pairs = {(p["a"], p["b"]): p for p in agree.pairwise(ann)}
    assert set(pairs) == {("a", "b")}  # c shares only one item with each
    assert pairs["a", "b"]["cohen_kappa"] == pytest.approx(1.0)


def test_undefined_kappa_is_none():
    ann = {1: {"a": "A", "b": "A"}, 2: {"a": "A", "b": "A"}}
    assert agree.pairwise(ann)[0]["cohen_kappa"] is None
    assert agree.krippendorff_alpha(ann) is None
    assert agree.fleiss_kappa(ann, ["A", "B"]) is None


def test_fleiss_uses_items_with_the_modal_rater_count():
    # items 1, 2 have 3 raters (modal count); item 3 has 2 and is left out.
    # P_1 = P_2 = (2*1 + 1*0) / (3*2) = 1/3; p_A = p_B = 3/6 -> P_e = 0.5
    # kappa = (1/3 - 1/2) / (1 - 1/2) = -1/3
    ann = {
        1: {"x": "A", "y": "A", "z": "B"},
        2: {"x": "A", "y": "B", "z": "B"},
        3: {"x": "A", "y": "A"},
    }
    assert agree.fleiss_kappa(ann, ["A", "B"]) == pytest.approx(-1 / 3)
    with pytest.raises(ValueError):
        agree.fleiss_kappa(ann, ["A"])


def test_krippendorff_alpha_hand_value_with_missing():
    # pairable units: (A,A), (B,B), (A,B); c's lone answer on item 4 is unpairable and b is missing there.
    # coincidences: o_AA = 2, o_BB = 2, o_AB = o_BA = 1; n_A = n_B = 3, n = 6
    # D_o = 2/6, D_e = 2*3*3 / (6*5) = 0.6 -> alpha = 1 - (1/3)/0.6 = 4/9
    ann = {1: {"a": "A", "b": "A"}, 2: {"a": "B", "b": "B"}, 3: {"a": "A", "b": "B"}, 4: {"c": "B"}}
    assert agree.krippendorff_alpha(ann) == pytest.approx(4 / 9)
    with pytest.raises(ValueError):
        agree.krippendorff_alpha(ann, level="interval")


def test_per_label_agreement():
    ann = {
        1: {"a": frozenset({"X"}), "b": frozenset({"X"})},
        2: {"a": frozenset({"X", "Y"}), "b": frozenset({"Y"})},
        3: {"a": frozenset(), "b": frozenset(), "c": frozenset()},
    }
    result = agree.per_label_agreement(ann, ["X", "Y", "Z"])
    # Y: (F,F), (T,T), (F,F,F) -> perfect
    assert result["Y"]["alpha"] == pytest.approx(1.0)
    assert result["Y"]["percent_agreement"] == 1.0 and result["Y"]["positives"] == 2
    # X: 1 agreeing pair of 1, 0 of 1, 3 of 3 -> 4/5
    assert result["X"]["percent_agreement"] == pytest.approx(4 / 5)
    assert -1.0 <= result["X"]["alpha"] < 1.0
    # Z never chosen: alpha undefined, agreement trivially 1
    assert result["Z"] == {"alpha": None, "percent_agreement": 1.0, "positives": 0}


def test_majority_with_ties_and_missing():
    ann = {
        1: {"a": "A", "b": "A", "c": "B"},
        2: {"a": "B", "b": "A"},
        3: {"a": "C"},
        4: {},
    }
    result = agree.majority(ann)
    assert result[1] == {"value": "A", "share": pytest.approx(2 / 3), "tie": False}
    assert result[2] == {"value": "A", "share": 0.5, "tie": True}  # tie: first by repr
    assert result[3] == {"value": "C", "share": 1.0, "tie": False}
    assert 4 not in result


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"shared datasets not found at {DATASETS}")
def test_medrel_crowd_slice():
    root = DATASETS / "medrel_crowd"
    slice_ids = {row["id"] for row in _jsonl(root / "items.jsonl")[:100]}
    ann = agree.from_records(r for r in _jsonl(root / "annotations.jsonl") if r["item"] in slice_ids)
    assert len(ann) == 100

    per_label = agree.per_label_agreement(ann, RELATIONS)
    for rel in RELATIONS:
        assert isinstance(per_label[rel]["alpha"], float) and -1.0 <= per_label[rel]["alpha"] <= 1.0
    assert len(agree.majority(ann)) == 100

    votes = {rel: agree.majority(agree.binarize(ann, rel)) for rel in RELATIONS}
    judged = agreed = 0
    for row in _jsonl(root / "expert.jsonl"):
        if row["item"] not in slice_ids:
            continue
        for rel in RELATIONS:
            if rel in row:
                judged += 1
                agreed += votes[rel][row["item"]]["value"] == row[rel]
    share = agreed / judged
    print(
        f"medrel slice: alpha TREATS={per_label['TREATS']['alpha']:.3f} CAUSES={per_label['CAUSES']['alpha']:.3f}; "
        f"majority vs expert {agreed}/{judged} = {share:.1%}"
    )
    assert judged > 0
    assert share > 0.5
