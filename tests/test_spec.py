"""The task spec: bundled templates, and errors that name the file, line and key."""

from __future__ import annotations

import jsonschema
import pytest

from labelloop.errors import SpecError
from labelloop.spec import (
    ClassifySpec,
    ExtractSpec,
    ModelSettings,
    load_spec,
    parse_spec,
    template_names,
    template_text,
)


def spec_error(text: str, filename: str = "task.yaml") -> SpecError:
    """The SpecError that parsing ``text`` raises."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, filename)
    return info.value


CLASSIFY_HEAD = "name: t\nkind: classify\ninstruction: pick one\n"  # lines 1-3


# -- bundled templates -------------------------------------------------------------------

def test_template_names_are_the_bundled_templates():
    assert template_names() == ["flight-booking", "sentiment", "topic"]


@pytest.mark.parametrize("name, spec_type", [("flight-booking", ExtractSpec), ("sentiment", ClassifySpec),
                                             ("topic", ClassifySpec)])
def test_template_parses_and_its_examples_satisfy_its_schema(name, spec_type):
    spec = parse_spec(template_text(name), f"{name}.yaml")
    assert type(spec) is spec_type
    assert spec.name == name
    assert len(spec.examples) == 2
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    for example in spec.examples:
        assert list(validator.iter_errors(example.output)) == []


def test_unknown_template_is_a_spec_error():
    with pytest.raises(SpecError, match=r"^nope: unknown template; choose one of flight-booking, sentiment, topic$"):
        template_text("nope")


def test_classify_output_schema_is_an_object_with_the_label_enum():
    spec = parse_spec(template_text("sentiment"))
    assert spec.output_schema() == {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
        "required": ["label"],
        "additionalProperties": False,
    }


def test_classify_labels_may_be_plain_names():
    spec = parse_spec(CLASSIFY_HEAD + "labels: [spam, ham, {name: other, description: neither}]\n")
    assert spec.label_names == ["spam", "ham", "other"]
    assert spec.output_schema()["properties"]["label"]["enum"] == ["spam", "ham", "other"]


def test_extract_output_schema_is_the_schema_given():
    spec = parse_spec(template_text("flight-booking"))
    assert spec.output_schema() is spec.json_schema
    assert spec.output_schema()["required"] == ["intent", "departure_city", "arrival_city", "date", "time",
                                                "class", "passenger_count"]


# -- errors: file, line and key ----------------------------------------------------------

def test_typo_of_a_required_key_points_at_the_typo_line():
    error = spec_error("name: t\nkind: classify\ninstrucion: pick one\nlabels: [a, b]\n")
    assert (error.line, error.key) == (3, "instrucion")
    assert str(error) == ("task.yaml:3: instrucion: Extra inputs are not permitted (did you mean 'instruction'?)"
                          " (and 1 more)")


def test_unknown_top_level_key_names_its_line_and_key():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nguideline: be careful\n")
    assert (error.path, error.line, error.key) == ("task.yaml", 5, "guideline")
    assert str(error) == "task.yaml:5: guideline: Extra inputs are not permitted (did you mean 'guidelines'?)"


def test_unknown_nested_key_names_its_line_and_dotted_key():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nmodel:\n  backend: openai\n  temprature: 0\n")
    assert (error.line, error.key) == (7, "model.temprature")
    assert str(error) == ("task.yaml:7: model.temprature: Extra inputs are not permitted"
                          " (did you mean 'temperature'?)")


def test_wrong_type_in_flow_mapping_names_line_and_key():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nmodel: {temperature: hot}\n")
    assert (error.line, error.key) == (5, "model.temperature")
    assert str(error).startswith("task.yaml:5: model.temperature: Input should be a valid number")


def test_wrong_type_points_at_the_line_of_the_nested_key_not_its_parent():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nmodel:\n  backend: openai\n  max_tokens: 16\n"
                                       "  temperature: hot\n")
    assert (error.line, error.key) == (8, "model.temperature")
    assert str(error).startswith("task.yaml:8: model.temperature: ")


def test_out_of_range_value_names_line_and_key():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nmodel:\n  concurrency: 0\n")
    assert str(error) == "task.yaml:6: model.concurrency: Input should be greater than or equal to 1"


def test_missing_kind_is_reported_at_line_1():
    error = spec_error("name: t\ninstruction: pick one\nlabels: [a, b]\n")
    assert (error.line, error.key) == (1, "kind")
    assert str(error) == ("task.yaml:1: kind: must be one of classify, extract, multilabel, spans, intent_slots, rate,"
                          " generate, qa, qa_generate, coherence (got None)")


def test_unknown_kind_names_its_line():
    error = spec_error("name: t\ninstruction: pick one\nkind: classfy\nlabels: [a, b]\n")
    assert (error.line, error.key) == (3, "kind")
    assert str(error) == ("task.yaml:3: kind: must be one of classify, extract, multilabel, spans, intent_slots, rate,"
                          " generate, qa, qa_generate, coherence (got 'classfy')")


def test_spec_that_is_not_a_mapping():
    error = spec_error("- a\n- b\n")
    assert str(error) == "task.yaml:1: the task spec must be a YAML mapping"


def test_duplicate_labels_name_the_labels_line():
    error = spec_error(CLASSIFY_HEAD + "guidelines: g\nlabels: [a, b, a, c, b]\n")
    assert (error.line, error.key) == (5, "labels")
    assert str(error) == "task.yaml:5: labels: duplicate labels: a, b"


def test_duplicate_labels_given_as_mappings():
    error = spec_error(CLASSIFY_HEAD + "labels:\n  - {name: x}\n  - {name: x, description: again}\n")
    assert (error.line, error.key) == (4, "labels")
    assert str(error) == "task.yaml:4: labels: duplicate labels: x"


def test_classify_needs_two_labels():
    error = spec_error(CLASSIFY_HEAD + "labels: [only]\n")
    assert (error.line, error.key) == (4, "labels")


EXTRACT_HEAD = "name: t\nkind: extract\ninstruction: fill it\n"  # lines 1-3


@pytest.mark.parametrize("schema_yaml", [
    "schema:\n  type: array\n  items: {type: string}\n",
    "schema:\n  type: object\n",
    "schema:\n  type: string\n",
])
def test_extract_schema_that_is_not_an_object_schema(schema_yaml):
    error = spec_error(EXTRACT_HEAD + "guidelines: g\n" + schema_yaml)
    assert (error.line, error.key) == (5, "schema")
    assert str(error) == "task.yaml:5: schema: must be an object schema with 'properties'"


def test_extract_schema_that_is_not_a_valid_json_schema():
    error = spec_error(EXTRACT_HEAD + "schema:\n  type: objekt\n  properties: {a: {type: string}}\n")
    assert (error.line, error.key) == (4, "schema")
    assert str(error).startswith("task.yaml:4: schema: not a valid JSON Schema: ")


def test_extract_example_violating_the_schema_names_examples_0_output():
    error = spec_error(EXTRACT_HEAD + "schema:\n  type: object\n  properties: {a: {type: string}}\n"
                                      "examples:\n  - input: hi\n    output: {a: 1}\n")
    assert (error.line, error.key) == (9, "examples.0.output")
    assert str(error) == "task.yaml:9: examples.0.output: does not match the output schema: 1 is not of type 'string'"


def test_classify_example_with_an_unknown_label_names_its_index_and_line():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nexamples:\n  - input: one\n    output: {label: a}\n"
                                       "  - input: two\n    output:\n      label: c\n")
    assert (error.line, error.key) == (9, "examples.1.output")
    assert str(error).startswith("task.yaml:9: examples.1.output: does not match the output schema: ")


def test_invalid_yaml_names_the_line():
    error = spec_error("name: t\nkind: classify\ninstruction: a: b\nlabels: [a, b]\n")
    assert (error.line, error.key) == (3, "")
    assert str(error) == "task.yaml:3: invalid YAML: mapping values are not allowed here"


def test_tab_indentation_is_invalid_yaml_at_its_line():
    error = spec_error("name: t\nkind: classify\n\tinstruction: x\n")
    assert error.line == 3
    assert str(error).startswith("task.yaml:3: invalid YAML: ")


# -- files -------------------------------------------------------------------------------

def test_load_spec_error_names_the_file_path(tmp_path):
    path = tmp_path / "labelloop.yaml"
    path.write_text(CLASSIFY_HEAD + "labels: [a, b]\nmodel: {temperature: hot}\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:5: model.temperature: ")


def test_load_spec_reads_a_valid_file(tmp_path):
    path = tmp_path / "labelloop.yaml"
    path.write_text(template_text("topic"), encoding="utf-8")
    spec = load_spec(path)
    assert spec.label_names[0] == "科技"
    assert len(spec.label_names) == 9


def test_non_utf8_spec_file(tmp_path):
    path = tmp_path / "labelloop.yaml"
    data = (CLASSIFY_HEAD + "labels: [a, b]\n").encode() + b"guidelines: caf\xe9\n"
    path.write_bytes(data)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    offset = data.index(b"\xe9")
    assert info.value.line is None
    assert str(info.value) == f"{path}: not valid UTF-8 (invalid continuation byte at byte {offset})"


def test_missing_spec_file(tmp_path):
    path = tmp_path / "labelloop.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: file not found"


# -- ModelSettings.with_overrides ----------------------------------------------------------

def test_env_overrides_the_file():
    settings = ModelSettings(concurrency=4)
    assert settings.with_overrides({}, {"LABELLOOP_CONCURRENCY": "8"}).concurrency == 8


def test_env_from_os_environ_overrides_the_file(monkeypatch):
    monkeypatch.setenv("LABELLOOP_CONCURRENCY", "8")
    monkeypatch.setenv("LABELLOOP_TEMPERATURE", "0.5")
    settings = ModelSettings(concurrency=4).with_overrides({})
    assert (settings.concurrency, settings.temperature) == (8, 0.5)


def test_explicit_override_beats_env():
    settings = ModelSettings(concurrency=4)
    assert settings.with_overrides({"concurrency": 2}, {"LABELLOOP_CONCURRENCY": "8"}).concurrency == 2


def test_none_override_means_not_given():
    settings = ModelSettings(concurrency=4, temperature=0.3)
    assert settings.with_overrides({"concurrency": None}, {"LABELLOOP_CONCURRENCY": "8"}).concurrency == 8
    kept = settings.with_overrides({"concurrency": None, "temperature": None}, {})
    assert (kept.concurrency, kept.temperature) == (4, 0.3)


def test_with_overrides_leaves_the_original_unchanged():
    settings = ModelSettings(concurrency=4)
    settings.with_overrides({"concurrency": 2}, {})
    assert settings.concurrency == 4


@pytest.mark.parametrize("overrides, environ, message", [
    ({}, {"LABELLOOP_CONCURRENCY": "lots"}, "Input should be a valid integer, unable to parse string as an integer"),
    ({"concurrency": 0}, {}, "Input should be greater than or equal to 1"),
])
def test_bad_override_is_a_spec_error_naming_the_key(overrides, environ, message):
    with pytest.raises(SpecError) as info:
        ModelSettings().with_overrides(overrides, environ)
    assert info.value.key == "model.concurrency"
    assert str(info.value) == f"settings: model.concurrency: {message}"


def test_duplicate_key_is_an_error_at_its_second_line():
    error = spec_error(CLASSIFY_HEAD + "labels: [a, b]\nmodel:\n  temperature: 0\n  temperature: 1\n")
    assert (error.line, error.key) == (7, "model.temperature")
    assert str(error) == "task.yaml:7: model.temperature: duplicate key"
