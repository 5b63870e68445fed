"""Confidence calibration, calibration error and the auto-accept threshold with a precision guarantee."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import beta

from labelloop.learn.calibrate import (
    Calibrator,
    Threshold,
    clopper_pearson_lower,
    expected_calibration_error,
    fit_calibrator,
    guaranteed_threshold,
    reliability_table,
    write_reliability_plot,
)


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores uniform on [0, 1], but a label with score s is right with probability s**2 only."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(size=n)
    return scores, rng.uniform(size=n) < scores**2


def halves(scores: np.ndarray, correct: np.ndarray):
    half = len(scores) // 2
    return (scores[:half], correct[:half]), (scores[half:], correct[half:])


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_fitting_on_one_half_calibrates_the_other(method):
    (fit_s, fit_y), (test_s, test_y) = halves(*overconfident(4000, seed=42))
    calibrator = fit_calibrator(fit_s, fit_y, method)
    before = expected_calibration_error(test_s, test_y)
    after = expected_calibration_error(calibrator(test_s), test_y)
    assert calibrator.method == method
    assert before == pytest.approx(0.165, abs=0.005)
    assert after < 0.045 and after < before / 4
    grid = np.linspace(-1.0, 2.0, 301)
    out = calibrator(grid)
    assert out.shape == grid.shape and (out >= 0).all() and (out <= 1).all() and (np.diff(out) >= 0).all()


def test_isotonic_predicts_as_scikit_learn_does_clipped_outside_the_data():
    from sklearn.isotonic import IsotonicRegression

    scores, correct = overconfident(500, seed=1)
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, correct)
    grid = np.linspace(-0.5, 1.5, 401)
    np.testing.assert_allclose(fit_calibrator(scores, correct)(grid), model.predict(grid), atol=1e-12)


def test_platt_is_scikit_learns_sigmoid_calibration():
    sklearn_calibration = pytest.importorskip("sklearn.calibration")
    if not hasattr(sklearn_calibration, "_SigmoidCalibration"):
        pytest.skip("scikit-learn's private sigmoid calibration moved")
    scores, correct = overconfident(2000, seed=3)
    reference = sklearn_calibration._SigmoidCalibration().fit(scores, correct)
    params = fit_calibrator(scores, correct, "platt").params
    assert params["coef"] == pytest.approx(-reference.a_, rel=1e-2)
    assert params["intercept"] == pytest.approx(-reference.b_, rel=1e-2)


def test_platt_stays_finite_when_the_outcomes_are_separable():
    scores = np.linspace(0, 1, 40)
    calibrator = fit_calibrator(scores, scores > 0.5, "platt")
    assert np.isfinite([calibrator.params["coef"], calibrator.params["intercept"]]).all()
    assert calibrator(0.0) < 0.1 and calibrator(1.0) > 0.9


@pytest.mark.parametrize("correct", [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0, 0, 1]])
def test_too_few_of_either_outcome_gives_the_identity(correct):
    calibrator = fit_calibrator([0.1, 0.3, 0.5, 0.7, 1.2], correct, "platt")
    assert calibrator == Calibrator("identity", {})
    np.testing.assert_array_equal(calibrator([-0.2, 0.4, 1.3]), [0.0, 0.4, 1.0])


def test_two_of_each_outcome_are_enough():
    assert fit_calibrator([0.1, 0.3, 0.5, 0.7], [0, 1, 0, 1]).method == "isotonic"


@pytest.mark.parametrize("method", ["isotonic", "platt", "identity"])
def test_round_trip_through_json_gives_identical_outputs(method):
    scores, correct = overconfident(1000, seed=5)
    if method == "identity":
        correct = np.ones_like(correct)
    calibrator = fit_calibrator(scores, correct, "platt" if method == "platt" else "isotonic")
    assert calibrator.method == method
    rebuilt = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert rebuilt == calibrator
    grid = np.linspace(-0.2, 1.2, 1001)
    np.testing.assert_array_equal(rebuilt(grid), calibrator(grid))


def test_unknown_methods_are_refused():
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibrator([0.1, 0.9], [0, 1], "beta")
    with pytest.raises(ValueError, match="unknown calibration method"):
        Calibrator.from_dict({"method": "spline", "params": {}})


def test_ece_is_small_for_a_calibrated_labeler_and_the_gap_for_a_constant_one():
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=20000)
    assert expected_calibration_error(scores, rng.uniform(size=20000) < scores) < 0.015
    assert expected_calibration_error([0.9] * 100, [1] * 60 + [0] * 40) == pytest.approx(0.3)
    assert expected_calibration_error([0.25, 0.75], [0, 1], bins=2) == pytest.approx(0.25)


def test_reliability_table_lists_the_non_empty_bins():
    rows = reliability_table([0.05, 0.15, 0.15, 0.95, 1.0, 0.0], [1, 0, 1, 1, 0, 0], bins=10)
    assert [(r["lo"], r["hi"], r["count"]) for r in rows] == [(0.0, 0.1, 2), (0.1, 0.2, 2), (0.9, 1.0, 2)]
    assert rows[0]["mean_confidence"] == pytest.approx(0.025) and rows[0]["accuracy"] == 0.5
    assert rows[1]["mean_confidence"] == pytest.approx(0.15) and rows[1]["accuracy"] == 0.5
    assert rows[2]["mean_confidence"] == pytest.approx(0.975) and rows[2]["accuracy"] == 0.5


@pytest.mark.parametrize("confidence, correct", [([0.5, 0.6], [1]), ([0.5, 1.5], [1, 0]), ([0.5, np.nan], [1, 0]),
                                                 ([0.5, 0.6], [1, 2]), ([], [])])
def test_ece_refuses_bad_input(confidence, correct):
    with pytest.raises(ValueError):
        expected_calibration_error(confidence, correct)


def test_clopper_pearson_lower_matches_known_values():
    assert clopper_pearson_lower(95, 100, 0.9) == pytest.approx(0.90923, abs=1e-5)
    for k, n, level in [(95, 100, 0.9), (7, 10, 0.95), (499, 500, 0.99)]:
        assert clopper_pearson_lower(k, n, level) == pytest.approx(beta.ppf(1 - level, k, n - k + 1), rel=1e-9)
    assert clopper_pearson_lower(20, 20, 0.9) == pytest.approx(0.1 ** (1 / 20))  # all right: (1 - level)^(1/n)
    assert clopper_pearson_lower(0, 10) == 0.0
    assert clopper_pearson_lower(0, 0) == 0.0
    with pytest.raises(ValueError):
        clopper_pearson_lower(11, 10)
    with pytest.raises(ValueError):
        clopper_pearson_lower(5, 10, level=1.0)


def test_no_threshold_when_nothing_meets_the_target():
    rng = np.random.default_rng(2)
    result = guaranteed_threshold(rng.uniform(size=500), rng.uniform(size=500) < 0.7, target=0.95)
    assert result == Threshold(None, 0, None, None, 0.0, 0.95, 0.9)
    assert guaranteed_threshold([], [], target=0.8).threshold is None


def test_threshold_fields():
    confidence = [0.95] * 20 + [0.85] * 20 + [0.5] * 20
    correct = [1] * 19 + [0] + [1] * 17 + [0] * 3 + [1] * 10 + [0] * 10
    result = guaranteed_threshold(confidence, correct, target=0.8, level=0.9)
    # 19/20 passes (bound 0.819), 36/40 passes (0.810), 46/60 fails (0.682)
    assert result == Threshold(0.85, 40, 0.9, pytest.approx(clopper_pearson_lower(36, 40, 0.9)), 40 / 60, 0.8, 0.9)


def test_the_walk_stops_at_the_first_failure():
    confidence = [0.99] * 50 + [0.9] * 10 + [0.8] * 300
    correct = [1] * 50 + [1, 0] * 5 + [1] * 300
    assert clopper_pearson_lower(55, 60) < 0.9 <= clopper_pearson_lower(355, 360)  # 0.8 alone would pass
    result = guaranteed_threshold(confidence, correct, target=0.9, level=0.9)
    assert (result.threshold, result.accepted, result.precision) == (0.99, 50, 1.0)
    assert result.lower_bound == pytest.approx(0.1 ** (1 / 50))


def test_a_required_precision_per_threshold_replaces_the_target():
    """A dataset-accuracy goal: a threshold that accepts fewer items may be less precise."""
    confidence = [0.95] * 20 + [0.85] * 20 + [0.5] * 20
    correct = [1] * 19 + [0] + [1] * 17 + [0] * 3 + [1] * 10 + [0] * 10
    assert guaranteed_threshold(confidence, correct, target=0.8).threshold == 0.85
    loose = guaranteed_threshold(confidence, correct, target=0.8, required=lambda values: np.full(len(values), 0.6))
    assert (loose.threshold, loose.accepted) == (0.5, 60)  # 46/60 right: bound 0.682 >= 0.6
    strict = guaranteed_threshold(confidence, correct, target=0.8,
                                  required=lambda values: np.where(values > 0.9, 0.8, 0.99))
    assert strict.threshold == 0.95  # the second threshold fails the stricter need: the walk stops above it


def test_thresholds_too_small_to_ever_pass_do_not_stop_the_walk():
    confidence = np.linspace(0.5, 1.0, 100)  # distinct values: the top ones accept a handful of items each
    result = guaranteed_threshold(confidence, np.ones(100), target=0.95, level=0.9)
    assert (result.threshold, result.accepted, result.coverage) == (0.5, 100, 1.0)
    wrong_at_the_top = np.r_[np.ones(99), 0]
    assert guaranteed_threshold(confidence, wrong_at_the_top, target=0.95).threshold is None


def test_the_guarantee_holds_in_repeated_sampling():
    """A calibrated labeler (confidence S ~ Beta(3, 1), right with probability S): choose a threshold on 500
    calibration items, then compare the true precision of what it accepts, E[S | S >= t], with the target."""
    target, level, runs = 0.9, 0.9, 200

    def true_precision(t: float) -> float:
        return 3 / 4 * (1 - t**4) / (1 - t**3)

    rng = np.random.default_rng(7)
    violations = naive_violations = found = 0
    for _ in range(runs):
        confidence = rng.uniform(size=500) ** (1 / 3)
        correct = rng.uniform(size=500) < confidence
        chosen = guaranteed_threshold(confidence, correct, target, level).threshold
        if chosen is not None:
            found += 1
            violations += true_precision(chosen) < target
        naive_violations += true_precision(_lowest_with_observed_precision(confidence, correct, target)) < target
    assert violations / runs <= (1 - level) + 0.03
    assert naive_violations / runs > 0.4  # without the bound the target is missed about half the time
    assert found / runs > 0.75


def _lowest_with_observed_precision(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    order = np.argsort(-confidence)
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    return float(confidence[order][np.flatnonzero(precision >= target).max()])


def test_reliability_plot_is_a_png(tmp_path):
    (fit_s, fit_y), (test_s, test_y) = halves(*overconfident(1000, seed=4))
    after = fit_calibrator(fit_s, fit_y)(test_s)
    path = write_reliability_plot(tmp_path / "reliability.png", {"before": (test_s, test_y), "after": (after, test_y)})
    assert path == str(tmp_path / "reliability.png")
    data = (tmp_path / "reliability.png").read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
