"""Quality against gold for each task kind, each number checked against scikit-learn or a direct count."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, mean_absolute_error

from labelloop.compare.quality import score
from labelloop.compare.significance import Verdict, mcnemar_midp, paired_bootstrap
from labelloop.spec import parse_spec, template_text
from test_kinds import SPECS


def test_classify_accuracy_macro_f1_per_label_and_confusion():
    spec = parse_spec(template_text("sentiment"))
    truth = ["positive", "negative", "neutral", "positive", "negative", "positive"]
    guess = ["positive", "positive", "neutral", None, "negative", "negative"]
    quality = score(spec, [{"label": t} for t in truth], [{"label": g} if g else None for g in guess])
    guessed = [g or "(none)" for g in guess]
    assert quality.metric == "accuracy" and quality.value == accuracy_score(truth, guessed) == 0.5
    assert quality.correct == [True, False, True, False, True, False]
    labels = spec.label_names
    assert quality.details["macro_f1"] == pytest.approx(f1_score(truth, guessed, labels=labels, average="macro"))
    assert quality.details["per_label"]["positive"] == {"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3}
    confusion = quality.details["confusion"]
    assert confusion["labels"][-1] == "(none)" and confusion["matrix"][0] == [1, 1, 0, 1]


def test_multilabel_macro_f1_over_labels_and_its_bootstrap():
    spec = parse_spec(SPECS["multilabel"][0])
    gold = [{"labels": ["TREATS"]}, {"labels": ["CAUSES", "PREVENTS"]}, {"labels": []}, {"labels": ["TREATS"]}]
    predicted = [{"labels": ["TREATS"]}, {"labels": ["CAUSES"]}, {"labels": ["TREATS"]}, None]
    quality = score(spec, gold, predicted)
    names = spec.label_names
    truth = [[n in g["labels"] for n in names] for g in gold]
    guess = [[n in (p or {}).get("labels", []) for n in names] for p in predicted]
    assert quality.value == pytest.approx(f1_score(np.array(truth), np.array(guess), average="macro", zero_division=0))
    assert quality.correct == [True, False, False, False] and quality.details["exact_set_accuracy"] == 0.25
    assert quality.primary(np.array([0, 0])) == 1.0  # the first item twice: TREATS found; the rest absent


def test_extract_exact_match_overall_and_per_field():
    spec = parse_spec(template_text("flight-booking"))
    gold = [{"intent": "book", "departure_city": "北京", "arrival_city": "上海"},
            {"intent": "book", "departure_city": "广州", "arrival_city": None}]
    predicted = [{"intent": "book", "departure_city": "北京", "arrival_city": "上海"},
                 {"intent": "book", "departure_city": "深圳", "arrival_city": None}]
    quality = score(spec, gold, predicted)
    assert quality.metric == "exact match" and quality.value == 0.5
    assert quality.details["per_field_exact_match"]["departure_city"] == 0.5
    assert quality.details["per_field_exact_match"]["intent"] == 1.0


def test_strict_span_f1_by_offsets_or_text():
    spec = parse_spec(SPECS["spans"][0])
    gold = [{"entities": [{"text": "头痛", "label": "symptom", "start": 2, "end": 4},
                          {"text": "布洛芬", "label": "drug", "start": 6, "end": 9}]},
            {"entities": [{"text": "发烧", "label": "symptom"}]}]
    predicted = [{"entities": [{"text": "头痛", "label": "symptom", "start": 2, "end": 4},
                               {"text": "布洛芬", "label": "symptom", "start": 6, "end": 9}]},
                 {"entities": [{"text": "发烧", "label": "symptom", "start": 0, "end": 2}]}]
    quality = score(spec, gold, predicted)
    # 2 matched (one by offsets, one by text), 3 gold, 3 predicted: P = R = F1 = 2/3
    assert quality.metric == "span F1" and quality.value == pytest.approx(2 / 3)
    assert quality.details["precision"] == pytest.approx(2 / 3) and quality.correct == [False, False]


def test_rate_mean_absolute_error_and_weighted_kappa():
    spec = parse_spec(SPECS["rate"][0])
    truth, guess = [1, 2, 3, 3, 2], [1, 3, 3, 2, 2]
    quality = score(spec, [{"rating": t} for t in truth], [{"rating": g} for g in guess])
    assert quality.metric == "mean absolute error" and not quality.higher_is_better
    assert quality.value == pytest.approx(mean_absolute_error(truth, guess))
    assert quality.details["weighted_kappa"] == pytest.approx(cohen_kappa_score(truth, guess, weights="quadratic"))
    missing = score(spec, [{"rating": 1}], [None])
    assert missing.value == 2  # a missing rating: the largest possible error


def test_a_lower_error_wins_the_verdict():
    spec = parse_spec(SPECS["rate"][0])
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 4, 400)
    close = [t if rng.random() < 0.9 else min(3, t + 1) for t in truth]
    far = [t if rng.random() < 0.5 else (1 if t > 1 else 3) for t in truth]
    gold = [{"rating": int(t)} for t in truth]
    a, b = score(spec, gold, [{"rating": int(v)} for v in far]), score(spec, gold, [{"rating": int(v)} for v in close])
    verdict = Verdict("A", "B", a.metric, paired_bootstrap(a.primary, b.primary, 400, resamples=300),
                      mcnemar_midp(a.correct, b.correct), 400, higher_is_better=False, percent=False)
    assert verdict.significant and verdict.sentence().startswith("B beats A by +0.")
    assert "in mean absolute error" in verdict.sentence()


def test_generate_has_nothing_to_check_and_lengths_must_match():
    with pytest.raises(ValueError, match="generate"):
        score(parse_spec(SPECS["generate"][0]), [{"output": "x"}], [{"output": "x"}])
    with pytest.raises(ValueError):
        score(parse_spec(template_text("sentiment")), [{"label": "positive"}], [])
