"""The drift alarm's statistics: each against scipy on the same numbers, quiet on unshifted batches drawn from
real data at about the stated rate, and raised by known shifts (banking77 card intents only; CrossWOZ turns of
one domain after a mix; a changed model's lower confidence; longer texts; a broken encoding; the embedding
centroid of card questions, with two embedders whose raw distances differ tenfold)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from labelloop.monitor.drift import (
    Thresholds,
    centroid_shift,
    distribution_shift,
    input_shift,
    label_shift,
    population_stability_index,
    rate_shift,
    unknown_characters,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_data = pytest.mark.skipif(not (DATA / "banking77").is_dir(), reason="shared datasets not found")


def test_each_statistic_matches_scipy_and_the_formula():
    ref, batch = ["a"] * 60 + ["b"] * 40, ["a"] * 30 + ["b"] * 50 + ["c"] * 20
    expected_psi = sum((b - r) * math.log(b / r) for r, b in [(0.6, 0.3), (0.4, 0.5), (1e-4, 0.2)])
    assert population_stability_index(ref, batch) == pytest.approx(expected_psi)
    shift = label_shift(ref, batch)
    table = [[60, 40, 0], [30, 50, 20]]
    assert shift.p_value == pytest.approx(stats.chi2_contingency(table)[1]) and shift.alarm
    rng = np.random.default_rng(0)
    x, y = rng.beta(8, 2, 200), rng.beta(5, 3, 200)
    ks = distribution_shift("confidence", x, y)
    assert (ks.value, ks.p_value) == pytest.approx(tuple(stats.ks_2samp(x, y)))
    rate = rate_shift("review rate", (20, 200), (60, 200), 0.1)
    assert rate.p_value == pytest.approx(stats.fisher_exact([[20, 180], [60, 140]])[1])
    assert rate.value == pytest.approx(0.2) and rate.alarm
    assert not label_shift(ref[:10], batch[:10]).alarm, "too few items to alarm"


def banking() -> list[tuple[str, str]]:
    return [(row["text"], row["label"]) for row in map(json.loads, (DATA / "banking77" / "train.jsonl").open())]


@needs_data
def test_banking77_quiet_on_unshifted_batches_and_alarmed_by_card_intents_only():
    rows = banking()
    rng = random.Random(1)
    reference = rng.sample(rows, 400)
    false_alarms = 0
    for _ in range(100):
        batch = rng.sample(rows, 400)
        false_alarms += label_shift([r[1] for r in reference], [r[1] for r in batch]).alarm
        false_alarms += any(s.alarm for s in input_shift([r[0] for r in reference], [r[0] for r in batch]))
    assert false_alarms <= 3, f"{false_alarms} alarms on 100 unshifted batches (two tests each)"
    cards = rng.sample([r for r in rows if "card" in r[1]], 400)
    shifted = label_shift([r[1] for r in reference], [r[1] for r in cards])
    assert shifted.alarm and shifted.value > 1 and shifted.p_value < 1e-10


@needs_data
def test_crosswoz_turns_of_one_domain_after_a_mix_raise_the_alarm():
    rows = [json.loads(line) for line in (DATA / "crosswoz" / "val.jsonl").open(encoding="utf-8")]
    domain = [(r["text"], r["domains"][0] if r["domains"] else "none") for r in rows]
    rng = random.Random(2)
    mixed = rng.sample(domain, 300)
    unshifted = rng.sample(domain, 300)
    hotels = rng.sample([d for d in domain if d[1] == "酒店"], 300)
    assert not label_shift([d[1] for d in mixed], [d[1] for d in unshifted]).alarm
    assert label_shift([d[1] for d in mixed], [d[1] for d in hotels]).alarm


def test_a_changed_models_lower_confidence_longer_texts_and_broken_encoding():
    rng = np.random.default_rng(4)
    assert distribution_shift("confidence", rng.beta(9, 1, 300), rng.beta(4, 2, 300)).alarm
    assert not distribution_shift("confidence", rng.beta(9, 1, 300), rng.beta(9, 1, 300)).alarm
    short = [f"order {i} arrived late" for i in range(100)]
    long = [f"order {i} arrived late and " + "the box was damaged, " * 5 for i in range(100)]
    broken = [f"order {i} arrived l\ufffdte \x01" for i in range(100)]
    lengths, unknown = input_shift(short, long)
    assert lengths.alarm and not unknown.alarm
    lengths, unknown = input_shift(short, broken)
    assert unknown.alarm and unknown.value == pytest.approx(unknown_characters(broken)[0] / sum(map(len, broken)))
    assert Thresholds().p_value == 0.01


def test_the_centroid_distance_and_its_permutation_test_match_the_formula_and_scipy():
    rng = np.random.default_rng(5)
    ref, batch = rng.normal(size=(300, 12)), rng.normal(size=(80, 12)) + 0.12
    found = centroid_shift(ref, batch, permutations=4000)
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (ref, batch)]
    centre = unit[0].mean(axis=0)
    spread = np.sqrt(((unit[0] - centre) ** 2).sum(axis=1).mean())
    assert found.value == pytest.approx(np.linalg.norm(unit[1].mean(axis=0) - centre) / spread)

    def distance(a, b, axis):
        return np.linalg.norm(a.mean(axis=axis) - b.mean(axis=axis), axis=-1)

    expected = stats.permutation_test(unit, distance, vectorized=True, n_resamples=4000, alternative="greater",
                                      random_state=0, axis=0).pvalue  # fmt: skip
    assert found.p_value == pytest.approx(expected, abs=0.02) and 0.001 < expected < 0.5
    assert centroid_shift(ref[:20], batch).value is None, "too few items to test"


@needs_data
@pytest.mark.slow
def test_the_embedding_centroid_is_quiet_on_unshifted_batches_and_moved_by_card_questions():
    from labelloop.learn.embed import E5Embedder, SentenceTransformerEmbedder

    rows = banking()
    rng = random.Random(3)
    pool = rng.sample([r for r in rows if "card" not in r[1]], 900)
    cards = rng.sample([r for r in rows if "card" in r[1]], 100)
    for embedder, texts in ((SentenceTransformerEmbedder(), pool + cards), (E5Embedder(), pool[:500] + cards)):
        vectors = np.asarray(embedder.embed([t for t, _ in texts]))
        reference, rest, card_vectors = vectors[:300], vectors[300:-100], vectors[-100:]
        alarms = sum(centroid_shift(reference, rest[np.random.default_rng(k).choice(len(rest), 100, replace=False)],
                                    seed=k).alarm for k in range(20))  # fmt: skip
        assert alarms == 0, f"{embedder.name}: {alarms} alarms on 20 unshifted batches"
        shifted = centroid_shift(reference, card_vectors)
        assert shifted.alarm and shifted.value > 0.3 and shifted.p_value < 0.01, (embedder.name, shifted)
