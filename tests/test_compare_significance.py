"""The paired tests of ``labelloop compare``, against scipy and statsmodels and by simulation: the mid-p test is
the exact test less the point probability, a null difference is called significant at about the nominal rate,
and the sample size it proposes gives the stated power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from labelloop.compare.significance import Verdict, items_to_detect, mcnemar_midp, mean_of, paired_bootstrap


def correctness(rng: np.random.Generator, items: int, accuracy: float) -> np.ndarray:
    return rng.random(items) < accuracy


def verdict(a: np.ndarray, b: np.ndarray, seed: int = 0) -> Verdict:
    interval = paired_bootstrap(mean_of(a), mean_of(b), len(a), resamples=500, seed=seed)
    return Verdict("A", "B", "accuracy", interval, mcnemar_midp(a, b), len(a))


@pytest.mark.parametrize("seed", range(20))
def test_mid_p_is_the_exact_test_less_the_point_probability(seed):
    rng = np.random.default_rng(seed)
    a, b = correctness(rng, 200, 0.7), correctness(rng, 200, rng.uniform(0.6, 0.8))
    result = mcnemar_midp(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    exact = mcnemar(table, exact=True).pvalue
    n, k = result.only_a + result.only_b, min(result.only_a, result.only_b)
    if result.only_a != result.only_b:
        assert result.p_value == pytest.approx(exact - stats.binom.pmf(k, n, 0.5))
    assert result.p_value <= exact
    assert exact == pytest.approx(stats.binomtest(k, n, 0.5).pvalue)


def test_edge_cases():
    same = np.array([True, False, True])
    assert mcnemar_midp(same, same).p_value == 1.0
    assert paired_bootstrap(mean_of(same), mean_of(same), 3).low == 0.0
    assert items_to_detect(5, 5, 100) is None
    with pytest.raises(ValueError):
        mcnemar_midp([True], [True, False])


def test_a_null_difference_is_rarely_called_significant():
    called = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        a, b = correctness(rng, 300, 0.8), correctness(rng, 300, 0.8)
        called += verdict(a, b, seed).significant
    assert called <= 8, f"{called} of 100 null differences called significant"


def test_a_real_difference_is_found_in_both_directions():
    rng = np.random.default_rng(7)
    worse, better = correctness(rng, 800, 0.70), correctness(rng, 800, 0.80)
    forward, backward = verdict(worse, better), verdict(better, worse)
    assert forward.significant and forward.sentence().startswith("B beats A by +")
    assert backward.significant and backward.sentence().startswith("A beats B by +")
    assert forward.interval.difference == pytest.approx(better.mean() - worse.mean())
    assert forward.interval.low < forward.interval.difference < forward.interval.high
    assert "95% CI [" in forward.sentence() and "p = " in forward.sentence()


def test_the_proposed_number_of_items_gives_the_stated_power():
    p_a, p_b = 0.75, 0.80  # independent errors: discordant proportions p_a(1 - p_b) and p_b(1 - p_a)
    needed = items_to_detect(round(1e6 * p_a * (1 - p_b)), round(1e6 * p_b * (1 - p_a)), 10**6)
    assert needed is not None and 500 < needed < 5000
    rng = np.random.default_rng(3)
    found = sum(
        mcnemar_midp(correctness(rng, needed, p_a), correctness(rng, needed, p_b)).p_value < 0.05 for _ in range(300)
    )
    assert 0.72 <= found / 300 <= 0.88


def test_a_small_difference_says_how_many_items_would_detect_it():
    rng = np.random.default_rng(11)
    a, b = correctness(rng, 150, 0.78), correctness(rng, 150, 0.80)
    said = verdict(a, b)
    assert not said.significant and said.items_needed
    assert said.sentence().startswith("no significant difference between A and B")
    assert f"about {said.items_needed:,} gold items would detect" in said.sentence()
