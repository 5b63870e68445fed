"""Property tests: whatever the model writes, validation and routing end in exactly one state with reasons."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.confidence import Confidence
from labelloop.gate import judge
from labelloop.route import ACCEPTED, FAILED, NEEDS_REVIEW, route
from labelloop.spec import parse_spec, template_text
from labelloop.store import Item

FLIGHT = parse_spec(template_text("flight-booking"))
SENTIMENT = parse_spec(template_text("sentiment"))
ITEM = Item("x", "明天从北京飞上海", {"source": "web"}, "")
GOOD = {"intent": "book_flight", "departure_city": "北京", "arrival_city": "上海", "date": "明天",
        "time": "09:00", "class": "economy", "passenger_count": 1}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)


def assert_one_state(verdict) -> None:
    state, reasons = verdict.route.state, verdict.route.reasons
    assert state in (ACCEPTED, NEEDS_REVIEW)
    assert (state == ACCEPTED) == (reasons == [])
    assert all(isinstance(r, str) and r for r in reasons)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_from_the_model(text):
    for spec in (FLIGHT, SENTIMENT):
        assert_one_state(judge(spec, ITEM, text, None))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GOOD) + ["extra", "label"]), json_values, max_size=9))
def test_any_json_object_with_wrong_types_and_fields(output):
    verdict = judge(FLIGHT, ITEM, json.dumps(output, ensure_ascii=False), None)
    assert_one_state(verdict)
    if verdict.validation.problems:
        assert verdict.route.state == NEEDS_REVIEW
        assert any(r.startswith("invalid[") for r in verdict.route.reasons)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["北京", "上海", None]), st.sampled_from(["北京", "上海", None]),
       st.one_of(st.none(), st.integers(-3, 5)), st.text(max_size=8))
def test_rule_and_range_violations_are_named(departure, arrival, passengers, time):
    output = {**GOOD, "departure_city": departure, "arrival_city": arrival, "passenger_count": passengers,
              "time": time}
    verdict = judge(FLIGHT, ITEM, json.dumps(output, ensure_ascii=False), None)
    assert_one_state(verdict)
    reasons = verdict.route.reasons
    schema_ok = (passengers is None or passengers >= 1) and len(time) == 5 and time[:2].isdigit() \
        and time[2] == ":" and time[3:].isdigit()
    if schema_ok and departure is not None and departure == arrival:
        assert "invalid[rule: departure and arrival city must differ]" in reasons
    if passengers is not None and passengers < 1:
        assert "invalid[passenger_count]" in reasons


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1), st.dictionaries(st.sampled_from(["label"]), st.floats(0, 1)))
def test_confidence_thresholds_route_consistently(value, fields):
    validation = judge(SENTIMENT, ITEM, '{"label": "positive"}', None).validation
    routed = route(SENTIMENT, validation, Confidence(value, "label_first_token", fields))
    low = [f for f, v in fields.items() if v < 0.7] or ([] if value >= 0.7 else ["*"])
    assert (routed.state == ACCEPTED) == (not low)


def test_a_failed_call_is_failed():
    assert route(FLIGHT, None, None).state == FAILED
