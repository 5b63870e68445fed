"""Certify the labels a labeler may accept without review: at most ``budget`` wrong ones, with a stated confidence.

The goal is a dataset accuracy (``target``): everything people reviewed is right, so the accepted labels may
hold at most ``budget = (1 - target) * n`` errors. Which labels to accept is decided on a *fresh* certification
sample, drawn uniformly at random without replacement from the items nobody reviewed, *after* the labeler was
frozen. The candidate accept sets are nested — the ``k`` most confident unreviewed items, for growing ``k`` — and
each is tested, most confident first, with the exact one-sided hypergeometric upper bound on its number of wrong
labels (finite population, sampling without replacement; the draws that fall into a set are a uniform sample of
it). Testing stops at the first set that fails (fixed-sequence testing: Maurer, Hothorn & Lehmacher 1995;
Westfall & Krishen 2001), so the one set accepted keeps the stated confidence although many were tried. The draws
are reviewed by people, so they are right in the final data whether or not their set is accepted.

Nothing here looks at labels chosen by active learning: those decide *when* to certify and *how much* to draw
(:func:`plan`), which affects the cost, never the validity — so no confidence is spent per round (compare
Bonferroni over every possible round, which the loop used before). Pure functions on arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, binom, hypergeom

__all__ = ["Certificate", "Plan", "certify", "certify_in_looks", "errors_upper_bound", "plan"]

_DRAW_GRID = np.arange(10, 100_001, 10)  # sample sizes :func:`plan` considers


def errors_upper_bound(population: int, draws: int, errors: int, alpha: float) -> int:
    """The exact one-sided upper confidence bound (level ``1 - alpha``) on the number of wrong labels in a
    population of ``population`` items, after ``draws`` uniform draws without replacement found ``errors``:
    the largest count ``E`` with ``P(X <= errors | population, E, draws) > alpha``."""
    if not 0 <= errors <= draws <= population:
        raise ValueError(f"need 0 <= errors <= draws <= population, got {errors}, {draws}, {population}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    low, high = errors, population - (draws - errors)  # the counts the draws allow; P(X <= errors) falls in E
    if hypergeom.cdf(errors, population, high, draws) > alpha:
        return high
    while high - low > 1:  # invariant: low is plausible (or the observed count), high is not
        middle = (low + high) // 2
        if hypergeom.cdf(errors, population, middle, draws) > alpha:
            low = middle
        else:
            high = middle
    return low


@dataclass(frozen=True)
class Plan:
    """The accept set to aim for (the ``k`` most confident unreviewed items) and the draws needed to certify it,
    expected from estimated error probabilities; ``effort``: the items people touch (the draws, and the items
    outside the set) if it succeeds."""

    k: int
    draws: int
    expected_errors: float
    effort: int


def plan(
    error_probability: np.ndarray, budget: float, alpha: float, *, step: int | None = None, success: float = 0.8
) -> Plan:
    """The cheapest certification to expect, given each unreviewed item's estimated probability of a wrong label,
    most confident first: for each candidate set, the fewest draws whose binomial (Clopper–Pearson) bound fits
    the budget when the draws find as many wrong labels as they do with probability ``success`` (so a plan is
    not a coin toss). Draws are spread over every unreviewed item, and those outside the set would be reviewed
    anyway, so a set of ``k`` costs ``draws`` (inside it) plus the ``len - k`` items left."""
    p = np.asarray(error_probability, dtype=float)
    pool = len(p)
    nothing = Plan(0, 0, 0.0, pool)
    if pool == 0:
        return nothing
    step = step or max(1, pool // 50)
    expected = np.cumsum(p)
    best = nothing
    for k in sorted({*range(step, pool + 1, step), pool}):
        rate = max(float(expected[k - 1]) / k, 1e-4)
        grid = _DRAW_GRID[k >= _DRAW_GRID]
        found = binom.ppf(success, grid, rate)
        upper = np.where(found >= grid, 1.0, beta.ppf(1.0 - alpha, found + 1, np.maximum(grid - found, 1)))
        fits = upper * k <= budget
        if not fits.any():
            continue
        draws = int(grid[np.argmax(fits)])
        effort = draws + pool - k
        if effort < best.effort:
            best = Plan(k, draws, float(expected[k - 1]), effort)
    return best


@dataclass(frozen=True)
class Certificate:
    """What a certification sample proved: the ``accepted`` most confident items (minus the draws, which people
    reviewed) hold at most ``upper_bound`` wrong labels, at the confidence ``1 - alpha``."""

    accepted: int  # size of the largest certified set (0: none)
    upper_bound: int | None  # bound on its wrong labels, before the draws inside it were reviewed
    draws: int
    errors_found: int  # wrong labels among the draws inside the accepted set
    alpha: float


def certify(
    wrong_in_draw_order: np.ndarray, positions: np.ndarray, pool: int, budget: float, alpha: float, sizes: list[int]
) -> Certificate:
    """Test the nested sets ``sizes`` (ascending; the ``k`` most confident of ``pool`` unreviewed items) with the
    draws made so far: ``positions[i]`` is the confidence rank (0 = most confident) of the i-th drawn item and
    ``wrong_in_draw_order[i]`` whether the labeler was wrong on it. Fixed-sequence: the first set whose bound
    exceeds ``budget`` ends the testing."""
    positions = np.asarray(positions, dtype=int)
    wrong = np.asarray(wrong_in_draw_order, dtype=bool)
    if len(positions) != len(wrong):
        raise ValueError("positions and wrong_in_draw_order must have the same length")
    accepted, bound, found = 0, None, 0
    for k in sizes:
        if not 0 < k <= pool:
            raise ValueError(f"set size {k} is not within 1..{pool}")
        inside = positions < k
        errors = int(wrong[inside].sum())
        upper = errors_upper_bound(k, int(inside.sum()), errors, alpha)
        if upper > budget:
            break
        accepted, bound, found = k, upper, errors
    return Certificate(accepted, bound, len(positions), found, alpha)


def certify_in_looks(
    planned: Plan,
    pool: int,
    budget: float,
    alpha: float,
    rng: np.random.Generator,
    review: Callable[[np.ndarray], np.ndarray],
    looks: int = 2,
) -> tuple[Certificate, np.ndarray]:
    """Certify a frozen labeler's ``pool`` unreviewed items (ranked most confident first) as planned: draw the
    planned sample uniformly (``planned.draws`` inside the planned set, so about ``draws * pool / k`` in all),
    have people ``review`` it (the ranks drawn -> whether the labeler was wrong on each) and test every
    ``pool // 50``-th set; when that does not reach the planned set, draw as many again and look once more, up
    to ``looks`` times. ``alpha`` is each look's share of the confidence budget (the caller divides its own by
    ``looks``). The certificate of the last look, and the ranks people reviewed."""
    draw_order = rng.permutation(pool)
    first = min(pool, int(np.ceil(planned.draws * pool / max(planned.k, 1))))
    step = max(1, pool // 50)
    sizes = sorted({*range(step, pool + 1, step), pool})  # fixed-sequence: trying more sets costs nothing
    wrong = np.zeros(0, dtype=bool)
    for look in range(1, looks + 1):
        positions = draw_order[: min(pool, first * look)]
        wrong = np.concatenate([wrong, np.asarray(review(positions[len(wrong) :]), dtype=bool)])
        result = certify(wrong, positions, pool, budget, alpha, sizes)
        if result.accepted >= planned.k or len(positions) == pool:
            break
    return result, positions
