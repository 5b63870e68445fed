"""Confidence from token logprobs: crafted token streams, and answers recorded from a llama.cpp server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.confidence import Confidence, score
from labelloop.confidence.tokens import align, top_level_spans
from labelloop.spec import parse_spec, template_text

DATA = Path(__file__).parent / "data" / "confidence"
SENTIMENT = parse_spec(template_text("sentiment"))  # labels: positive, negative, neutral
FLIGHT = parse_spec(template_text("flight-booking"))
LOW = -0.01  # logprob of the tokens a test does not look at
NESTED = parse_spec("""
name: nested
kind: extract
instruction: Extract the passengers and a note.
schema:
  type: object
  properties:
    passengers: {type: array, items: {type: object}}
    note: {type: [string, "null"]}
    extra: {type: object}
  required: [passengers]
""")


def entry(piece: str | bytes, logprob: float = LOW, top: dict[str | bytes, float] | None = None,
          *, exact: bool = True) -> dict:
    """One OpenAI-shaped token; ``exact=False`` drops ``bytes`` and decodes lossily, as llama-cpp-python's server."""
    data = piece.encode() if isinstance(piece, str) else piece
    alternatives = [entry(alt, lp, exact=exact) for alt, lp in (top or {}).items()]
    if exact:
        return {"token": data.decode(errors="replace"), "logprob": logprob, "bytes": list(data),
                "top_logprobs": alternatives}
    return {"token": data.decode(errors="ignore"), "logprob": logprob, "bytes": None, "top_logprobs": alternatives}


def label_stream(value_tokens: list[dict], opening: str = ' "', closing: str = '"}') -> list[dict]:
    return [entry('{"'), entry("label"), entry('":'), entry(opening), *value_tokens, entry(closing)]


def joined(tokens: list[dict]) -> str:
    return b"".join(bytes(t["bytes"]) for t in tokens).decode()


def check(spec, text: str, tokens: list[dict] | None) -> Confidence:
    return score(spec, json.loads(text), text, tokens)


# --- classify -------------------------------------------------------------------------------------

def test_distinct_first_tokens_renormalise_over_the_options():
    top = {"positive": -0.5, "negative": -1.5, "neutral": -2.0, "pos": -3.0, "the": -4.0, " ": -4.5}
    tokens = label_stream([entry("positive", -0.5, {**top, "positive": -0.5})])  # sampled token repeated (k+1)
    result = check(SENTIMENT, joined(tokens), tokens)
    positive = math.exp(-0.5) + math.exp(-3.0)  # "positive" and "pos" both start only "positive": summed
    expected = positive / (positive + math.exp(-1.5) + math.exp(-2.0))
    assert result == Confidence(pytest.approx(expected), "label_first_token", {"label": pytest.approx(expected)})


def test_first_token_holding_the_opening_quote_is_matched_after_the_text_before_the_value():
    top = {' "neg': -0.2, ' "pos': -1.0, ' "': -2.0, " null": -2.5, ' "negative"': -3.0}
    tokens = [entry('{"label":'), entry(' "neg', -0.2, top), entry('ative"}')]
    result = check(SENTIMENT, joined(tokens), tokens)
    negative = math.exp(-0.2) + math.exp(-3.0)  # ' "' could start every option and ' null' none: ignored
    assert result.method == "label_first_token"
    assert result.value == pytest.approx(negative / (negative + math.exp(-1.0)))


def test_sampled_token_missing_from_top_logprobs_still_counts():
    tokens = label_stream([entry("neutral", -2.0, {"positive": -0.3, "negative": -1.0})])
    result = check(SENTIMENT, joined(tokens), tokens)
    expected = math.exp(-2.0) / (math.exp(-2.0) + math.exp(-0.3) + math.exp(-1.0))
    assert result.value == pytest.approx(expected) and result.method == "label_first_token"


def test_first_token_shared_by_several_labels_uses_the_label_sequence():
    # "ne" starts both "neutral" and "negative": the first token cannot tell them apart.
    tokens = label_stream([entry("ne", -0.4, {"ne": -0.4, "positive": -1.2}), entry("utral", -0.7)])
    result = check(SENTIMENT, joined(tokens), tokens)
    assert result == Confidence(pytest.approx(math.exp(-1.1)), "label_sequence",
                                {"label": pytest.approx(math.exp(-1.1))})


def test_chinese_labels_compare_first_tokens_byte_by_byte():
    topic = parse_spec(template_text("topic"))
    sport, tech, finance = "体".encode(), "科".encode(), "财".encode()  # each token: 2 of a character's 3 bytes
    top = {sport[:2]: -0.5, tech[:2]: -1.0, finance[:2]: -2.0, b"x": -3.0}
    tokens = label_stream([entry(sport[:2], -0.5, top), entry(sport[2:] + "育".encode())])
    result = check(topic, joined(tokens), tokens)
    expected = math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.0) + math.exp(-2.0))
    assert result.method == "label_first_token" and result.value == pytest.approx(expected)


def test_a_confidence_the_model_writes_is_ignored():
    tokens = [entry('{"label": "'), entry("positive", -0.1, {"negative": -2.4}), entry('", "confidence": 0.99}')]
    result = check(SENTIMENT, joined(tokens), tokens)
    assert result.value == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4)))
    assert result.fields == {"label": result.value}


# --- extract --------------------------------------------------------------------------------------

BEIJING = "北京".encode()  # e5 8c 97 e4 ba ac: tokens below split both characters


def flight_tokens(exact: bool) -> list[dict]:
    pieces: list[tuple[str | bytes, float]] = [
        ('{"', LOW), ("departure", LOW), ("_city", LOW), ('":', LOW), (' "', -0.1),
        (BEIJING[:2], -0.2), (BEIJING[2:4], -0.3), (BEIJING[4:], -0.4), ('",', -0.05),
        (' "', LOW), ("arrival_city", LOW), ('":', LOW), (" null", -0.9), (",", LOW),
        (' "', LOW), ("passenger_count", LOW), ('":', LOW), (" ", -1.5), ("2", -0.6), ("}", LOW)]
    return [entry(piece, logprob, exact=exact) for piece, logprob in pieces]


@pytest.mark.parametrize("exact", [True, False], ids=["bytes", "lossy-text-only"])
def test_chinese_value_split_across_byte_tokens(exact):
    text = '{"departure_city": "北京", "arrival_city": null, "passenger_count": 2}'
    result = check(FLIGHT, text, flight_tokens(exact))
    expected = {"departure_city": math.exp(-0.1 - 0.2 - 0.3 - 0.4 - 0.05),  # quotes included
                "arrival_city": math.exp(-0.9),  # the null token
                "passenger_count": math.exp(-0.6)}  # the " " before the value is not part of it
    assert result.method == "field_min"
    assert result.fields == pytest.approx(expected)
    assert result.value == pytest.approx(min(expected.values()))


def test_lossy_tokens_keep_their_split_characters_inside_the_value():
    text = '{"departure_city": "北京", "arrival_city": null, "passenger_count": 2}'
    spans = [(t.start, t.end) for t in align(text.encode(), flight_tokens(exact=False))]
    value = text.encode().index(BEIJING)
    assert spans[5:8] == [(value, value + 6)] * 3  # the three text-less pieces share the bytes they wrote
    assert spans[4][1] == value and spans[8][0] == value + 6


def test_nested_values_and_escaped_quotes():
    text = '{"passengers": [{"name": "A \\"B\\"", "seat": [1, 2]}], "note": "say \\"hi\\", ok}", "extra": {}}'
    cuts = ['{"passengers": [', '{"name": "A \\"', 'B\\"",', ' "seat": [1, 2]}]', ', "note": "say', ' \\"hi\\",',
            ' ok}"', ', "extra": {', "}}"]
    assert "".join(cuts) == text
    tokens = [entry(cut, -0.1 * (n + 1)) for n, cut in enumerate(cuts)]
    result = check(NESTED, text, tokens)
    assert result.fields == pytest.approx({"passengers": math.exp(-0.1 - 0.2 - 0.3 - 0.4),
                                           "note": math.exp(-0.5 - 0.6 - 0.7),
                                           "extra": math.exp(-0.8 - 0.9)})
    assert result.value == pytest.approx(result.fields["passengers"])  # the only required field


def test_item_confidence_is_over_all_fields_when_none_is_required():
    spec = parse_spec(template_text("flight-booking").replace(
        "required: [intent, departure_city, arrival_city, date, time, class, passenger_count]", "required: []"))
    tokens = [entry('{"date": "'), entry("明天", -0.2), entry('", "time": '), entry("null", -1.0), entry("}")]
    result = check(spec, joined(tokens), tokens)
    assert result.value == pytest.approx(math.exp(-1.0))


@given(st.dictionaries(st.text(max_size=5), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8), max_size=5), st.booleans(), st.sampled_from([(", ", ": "), (",", ":"), (" ,\n ", " :\t")]))
@settings(max_examples=200, deadline=None)
def test_scanner_finds_every_top_level_value(obj, ascii_only, separators):
    raw = json.dumps(obj, ensure_ascii=ascii_only, separators=separators).encode()
    spans = top_level_spans(raw)
    assert {key: json.loads(raw[start:end]) for key, (start, end) in spans.items()} == obj


# --- what cannot be scored --------------------------------------------------------------------------

@pytest.mark.parametrize("logprobs", [None, []])
def test_no_logprobs_is_unavailable(logprobs):
    assert check(SENTIMENT, '{"label": "positive"}', logprobs) == Confidence(None, "unavailable", {})


@pytest.mark.parametrize("tokens", [
    [entry('{"label": "'), entry("negative"), entry('"}')],  # another answer's tokens
    [entry('{"label": "'), entry("posi")],  # the tokens stop early
    [entry('{"label": "pos'), entry("X"), entry('itive"}')],  # a token the text does not have
    [entry('{"label": "'), {"token": "positive", "bytes": None}, entry('"}')],  # no logprob
    [entry('{"label": "'), entry("positive", float("nan")), entry('"}')],
    [entry('{"label": "'), "positive", entry('"}')],  # not a dict
], ids=["other-text", "short", "inserted", "no-logprob", "nan", "not-a-dict"])
def test_tokens_that_do_not_fit_the_text_are_unavailable(tokens):
    assert check(SENTIMENT, '{"label": "positive"}', tokens).method == "unavailable"


def test_unscannable_text_is_unavailable():
    text = '{"label": "positive"'
    assert score(SENTIMENT, {"label": "positive"}, text, [entry(text)]).method == "unavailable"


def test_leading_whitespace_and_end_of_turn_tokens_are_tolerated():
    tokens = [entry(' {"label": "'), entry("positive", -0.1, {"negative": -2.4}), entry('"}'), entry("<|im_end|>")]
    result = score(SENTIMENT, {"label": "positive"}, '\n{"label": "positive"}', tokens)
    assert result.method == "label_first_token" and 0.9 < result.value < 1


# --- answers recorded from llama-cpp-python's OpenAI server (SmolLM2-135M, temperature 0) ---------------

FIXTURES = {"sentiment_negative": (SENTIMENT, "label_first_token"),
            "topic_chinese_label": (parse_spec(template_text("topic")), "label_sequence"),
            "flight_book": (FLIGHT, "field_min"), "flight_cancel": (FLIGHT, "field_min")}


def recorded(name: str) -> tuple[str, list[dict]]:
    choice = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))["choices"][0]
    return choice["message"]["content"], choice["logprobs"]["content"]


@pytest.mark.parametrize("name", FIXTURES)
def test_recorded_answers_score_every_field(name):
    spec, method = FIXTURES[name]
    text, tokens = recorded(name)
    result = score(spec, json.loads(text), text, tokens)
    assert result.method == method
    assert set(result.fields) == set(json.loads(text))
    assert all(0 <= v <= 1 for v in [result.value, *result.fields.values()])


@pytest.mark.parametrize("name", FIXTURES)
def test_recorded_tokens_cover_the_answer_in_order(name):
    text, tokens = recorded(name)
    raw = text.encode()
    placed = align(raw, tokens)
    covered = {byte for t in placed for byte in range(t.start, t.end)}
    assert covered == set(range(len(raw)))
    assert all(a.start <= b.start and a.end <= b.end for a, b in zip(placed, placed[1:]))
    for token, entry_ in zip(placed, tokens):  # each token's own text sits at the end of its span
        assert raw[token.start:token.end].endswith(entry_["token"].encode())


def test_recorded_label_first_token_is_the_share_of_the_options():
    text, tokens = recorded("sentiment_negative")
    alternatives = {alt["token"]: alt["logprob"] for alt in tokens[4]["top_logprobs"]}
    options = [math.exp(alternatives[name]) for name in ("negative", "neutral", "positive")]
    assert score(SENTIMENT, json.loads(text), text, tokens).value == pytest.approx(options[0] / sum(options))


def test_recorded_lossy_chinese_value_counts_every_piece():
    text, tokens = recorded("flight_book")
    assert json.loads(text)["arrival_city"] == "广州"
    first = next(i for i, t in enumerate(tokens) if t["token"] == "")  # 广州 arrives as four text-less pieces
    assert [t["token"] for t in tokens[first - 1:first + 5]] == [' "', "", "", "", "", '",']
    expected = math.exp(sum(t["logprob"] for t in tokens[first - 1:first + 5]))
    assert score(FLIGHT, json.loads(text), text, tokens).fields["arrival_city"] == pytest.approx(expected)


def test_bare_label_answer_is_scored_from_its_first_token():
    from labelloop.spec import parse_spec, template_text

    spec = parse_spec(template_text("sentiment").replace("kind: classify\n", "kind: classify\nscoring: logprob\n"))
    assert spec.guided_schema() is None and spec.label_from_text(" neg") == "negative"
    assert spec.label_from_text("ne") is None  # neutral or negative: not guessed

    def tok(text, logprob, top):
        return {"token": text, "logprob": logprob, "bytes": list(text.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top]}

    logprobs = [tok("neg", math.log(0.5), [("neg", math.log(0.5)), ("pos", math.log(0.3)), ("The", math.log(0.1)),
                                           ("Neutral", math.log(0.1))]),
                tok("ative", 0.0, [("ative", 0.0)])]
    result = score(spec, {"label": "negative"}, "negative", logprobs)
    assert result.method == "label_first_token"
    assert math.isclose(result.value, 0.5 / 0.9) and result.fields == {"label": result.value}


def test_each_chosen_label_of_a_set_gets_its_own_confidence():
    from labelloop.route import route
    from labelloop.spec import parse_spec
    from labelloop.store import Item
    from labelloop.validate import validate_answer

    spec = parse_spec("name: m\nkind: multilabel\ninstruction: x\nlabels: [TREATS, CAUSES, PREVENTS]\n"
                      "review: {fields: {CAUSES: 0.95}}\n")
    text = '{"labels": ["TREATS", "CAUSES"]}'
    pieces = [('{"labels": ["', 0.0), ("TRE", math.log(0.9)), ("ATS", 0.0), ('", "', 0.0), ("CA", math.log(0.8)),
              ("USES", math.log(0.5)), ('"]}', 0.0)]
    logprobs = [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in pieces]
    result = score(spec, json.loads(text), text, logprobs)
    assert result.method == "label_set"
    assert math.isclose(result.fields["TREATS"], 0.9) and math.isclose(result.fields["CAUSES"], 0.4)
    assert math.isclose(result.value, 0.4)
    routed = route(spec, validate_answer(spec, text, Item("a", "t", {}, "")), result)
    assert routed.reasons == ["low_confidence[CAUSES]"]
    empty = score(spec, {"labels": []}, '{"labels": []}',
                  [{"token": '{"labels": []}', "logprob": math.log(0.7), "bytes": list(b'{"labels": []}')}])
    assert math.isclose(empty.value, 0.7) and empty.fields == {}


def test_each_mention_gets_its_own_confidence():
    from labelloop.spec import parse_spec

    spec = parse_spec("name: s\nkind: spans\ninstruction: x\nlabels: [symptom, drug]\n")
    text = '{"entities": [{"text": "头痛", "label": "symptom"}, {"text": "布洛芬", "label": "drug"}]}'
    first, second = '{"text": "头痛", "label": "symptom"}', '{"text": "布洛芬", "label": "drug"}'
    pieces = [('{"entities": [', 0.0), (first, math.log(0.9)), (", ", 0.0), (second, math.log(0.6)), ("]}", 0.0)]
    logprobs = [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in pieces]
    result = score(spec, json.loads(text), text, logprobs)
    assert result.method == "mention_min"
    assert set(result.fields) == {"entities[0]", "entities[1]"}
    assert math.isclose(result.fields["entities[0]"], 0.9) and math.isclose(result.value, 0.6)
    empty = score(spec, {"entities": []}, '{"entities": []}',
                  [{"token": '{"entities": []}', "logprob": math.log(0.8), "bytes": list(b'{"entities": []}')}])
    assert math.isclose(empty.value, 0.8) and set(empty.fields) == {"entities"}


def test_coherence_gets_a_confidence_per_dimension_and_a_threshold_can_name_one():
    from labelloop.route import route
    from labelloop.validate import Validation

    spec = parse_spec("name: c\nkind: coherence\ninstruction: rate\ndimensions: {topic: on topic, links: causal}\n"
                      "review: {threshold: 0.1, fields: {links: 0.8}}\n")  # fmt: skip
    tokens = [entry('{"ratings": {"topic": '), entry("4", math.log(0.9)), entry(', "links": '),
              entry("2", math.log(0.5)), entry('}, "problems": []}')]  # fmt: skip
    confidence = check(spec, joined(tokens), tokens)
    assert confidence.fields["topic"] == pytest.approx(0.9)  # the tokens that wrote the level alone
    assert confidence.fields["links"] == pytest.approx(0.5)
    assert confidence.value == pytest.approx(min(confidence.fields["ratings"], confidence.fields["problems"]))
    output = json.loads(joined(tokens))
    assert route(spec, Validation(output), confidence).reasons == ["low_confidence[links]"]
