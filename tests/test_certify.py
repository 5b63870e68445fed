"""The certification: its exact bound against scipy, and its guarantee under repetition (with a control that
shows the repetition test catches a bound that is not one)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hypergeom

from labelloop.learn.certify import certify, errors_upper_bound, plan


@pytest.mark.parametrize(("population", "draws", "errors", "alpha"), [(500, 50, 2, 0.05), (2000, 120, 0, 0.1),
                                                                      (80, 80, 5, 0.05), (1000, 10, 10, 0.1)])
def test_the_bound_is_the_largest_error_count_the_draws_do_not_rule_out(population, draws, errors, alpha):
    bound = errors_upper_bound(population, draws, errors, alpha)
    assert hypergeom.cdf(errors, population, bound, draws) > alpha
    if bound + 1 <= population - (draws - errors):
        assert hypergeom.cdf(errors, population, bound + 1, draws) <= alpha
    if draws == population:
        assert bound == errors  # everything was looked at


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="errors <= draws <= population"):
        errors_upper_bound(10, 20, 1, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        errors_upper_bound(10, 5, 1, 1.5)


def labeler_errors(pool: int, seed: int) -> np.ndarray:
    """Whether each unreviewed item's label is wrong, most confident first: errors grow with rank."""
    rng = np.random.default_rng(seed)
    return rng.random(pool) < np.linspace(0.0, 0.3, pool)


def accepted_errors(wrong: np.ndarray, budget: float, alpha: float, draws: int, seed: int, bound=None) -> int:
    """Certify with ``draws`` uniform draws; the wrong labels among the accepted items nobody reviewed."""
    rng = np.random.default_rng(seed)
    positions = rng.permutation(len(wrong))[:draws]
    sizes = list(range(50, len(wrong) + 1, 50))
    if bound is None:
        result = certify(wrong[positions], positions, len(wrong), budget, alpha, sizes)
        accepted = result.accepted
    else:  # a stand-in bound, run the same way
        accepted = 0
        for k in sizes:
            inside = positions < k
            if bound(k, int(inside.sum()), int(wrong[positions][inside].sum())) > budget:
                break
            accepted = k
    unreviewed = np.setdiff1d(np.arange(accepted), positions)
    return int(wrong[unreviewed].sum())


def test_certified_sets_hold_the_budget_at_the_stated_confidence_over_repetition():
    wrong = labeler_errors(2000, seed=0)
    budget, alpha = 60.0, 0.1
    over = [accepted_errors(wrong, budget, alpha, 300, seed) > budget for seed in range(400)]
    assert np.mean(over) <= alpha
    sizes = [accepted_errors(wrong, budget, alpha, 300, seed) for seed in range(20)]
    assert np.mean(sizes) > 0.4 * budget  # the budget is spent, not hoarded


def test_the_repetition_test_catches_a_point_estimate_posing_as_a_bound():
    wrong = labeler_errors(2000, seed=0)
    budget, alpha = 60.0, 0.1
    naive = lambda k, draws, errors: k * errors / max(draws, 1)  # noqa: E731 - no upper confidence, just the rate
    over = [accepted_errors(wrong, budget, alpha, 300, seed, bound=naive) > budget for seed in range(400)]
    assert np.mean(over) > 2 * alpha


def test_a_plan_draws_more_for_a_tighter_budget_and_nothing_for_an_impossible_one():
    error_probability = np.linspace(0.0, 0.3, 2000)
    loose, tight = plan(error_probability, 150, 0.05), plan(error_probability, 40, 0.05)
    assert 0 < tight.k < loose.k <= 2000 and loose.effort < tight.effort
    assert loose.expected_errors <= 150 and tight.expected_errors <= 40
    assert plan(np.full(100, 0.5), 1, 0.05).k == 0  # nothing can be proved: review everything
