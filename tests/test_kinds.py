"""The task kinds beyond classify and extract: specs, prompts, and a labeling run through each."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import FaultServer
from labelloop import Project, SpecError
from labelloop.prompt import build_prompt
from labelloop.spec import parse_spec

SPECS = {
    "multilabel": ("name: m\nkind: multilabel\ninstruction: Which relations hold?\n"
                   "labels: [TREATS, CAUSES, PREVENTS]\nreview: {fields: {TREATS: 0.9}}\n",
                   {"labels": ["TREATS", "CAUSES"]}),
    "spans": ("name: s\nkind: spans\ninstruction: Mark symptoms and drugs.\nlabels: [symptom, drug]\n",
              {"entities": [{"text": "头痛", "label": "symptom", "occurrence": None}]}),
    "intent_slots": ("name: i\nkind: intent_slots\ninstruction: Intent and slots.\n"
                     "intents: [book_table, cancel]\nslots: [time, people]\n",
                     {"intent": "book_table", "slots": [{"text": "7pm", "label": "time"}]}),
    "rate": ("name: r\nkind: rate\ninstruction: Rate the coherence.\ncriteria: [topic consistency, causal links]\n"
             "levels: [{value: 1, description: incoherent}, {value: 2, description: partly}, "
             "{value: 3, description: coherent}]\n", {"rating": 2}),
    "generate": ("name: g\nkind: generate\ninstruction: Translate to English.\n"
                 "rubric: [faithful to the source, fluent English]\n", {"output": "I have a headache."}),
}


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_each_kind_parses_and_its_example_answer_fits(kind):
    text, answer = SPECS[kind]
    spec = parse_spec(text)
    assert spec.kind == kind
    jsonschema.validate(answer, spec.output_schema())
    prompt = build_prompt(spec)
    assert spec.output_description() in prompt.shared[0]["content"]
    assert prompt.output_schema == spec.guided_schema()


def test_mentions_are_written_without_offsets_and_stored_with_them():
    spec = parse_spec(SPECS["spans"][0])
    mention = spec.guided_schema()["properties"]["entities"]["items"]
    assert set(mention["properties"]) == {"text", "label", "occurrence"}
    stored = spec.output_schema()["properties"]["entities"]["items"]
    assert set(stored["properties"]) == {"text", "label", "occurrence", "start", "end"}


@pytest.mark.parametrize("text, key, message", [
    ("name: r\nkind: rate\ninstruction: x\nlevels: [{value: 2, description: a}, {value: 1, description: b}]\n",
     "levels", "level values must be distinct and in ascending order"),
    ("name: s\nkind: spans\ninstruction: x\nlabels: [symptom]\nvocabularies: {drug: drugs.txt}\n",
     "vocabularies", "not labels: drug"),
    ("name: m\nkind: multilabel\ninstruction: x\nlabels: [a, b]\nreview: {fields: {c: 0.9}}\n",
     "review.fields", "not output fields: c"),
    ("name: g\nkind: generate\ninstruction: x\nrubric: []\n", "rubric", "at least 1 item"),
])
def test_kind_specific_errors_name_the_key(text, key, message):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert info.value.key == key and message in str(info.value)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_a_labeling_run_and_an_export_for_each_kind(tmp_path, kind):
    text, answer = SPECS[kind]
    root = tmp_path / kind
    root.mkdir()
    (root / "labelloop.yaml").write_text(text + "review: {accept_without_confidence: true}\n"
                                         if "review:" not in text else text, encoding="utf-8")
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"id": "a", "text": "我头痛，7pm for two"}, ensure_ascii=False) + "\n", encoding="utf-8")
    server = FaultServer(content=json.dumps(answer, ensure_ascii=False))
    try:
        with Project(root) as project:
            project.ingest(data, id_field="id")
            result = project.label(backend="openai", base_url=server.base_url, model="fault", concurrency=1)
            assert (result.counts.items_done, result.unparsable) == (1, 0)
            sent = server.requests[0]["response_format"]["json_schema"]["schema"]
            assert sent == project.spec.guided_schema()
            exported = project.export(tmp_path / f"{kind}.jsonl", include_unreviewed=True)
            assert exported.written == 1
            [record] = [json.loads(line) for line in (tmp_path / f"{kind}.jsonl").read_text().splitlines()]
            jsonschema.validate(record["output"], project.spec.output_schema())
    finally:
        server.close()


def test_mentions_are_grounded_to_offsets_and_missing_ones_go_to_review(tmp_path):
    from labelloop.gate import judge
    from labelloop.store import Item

    spec = parse_spec(SPECS["spans"][0] + "review: {accept_without_confidence: true}\n")
    item = Item("a", "头痛三天，吃了布洛芬还是头痛", {}, "")
    answer = {"entities": [{"text": "头痛", "label": "symptom"}, {"text": "布洛芬", "label": "drug"},
                           {"text": "头痛", "label": "symptom"}, {"text": "ＡＢＣ", "label": "drug"}]}
    verdict = judge(spec, item, json.dumps(answer, ensure_ascii=False), None)
    assert verdict.validation.output["entities"] == [
        {"text": "头痛", "label": "symptom", "start": 0, "end": 2},
        {"text": "布洛芬", "label": "drug", "start": 7, "end": 10},
        {"text": "头痛", "label": "symptom", "start": 12, "end": 14}]
    assert verdict.route.state == "needs_review" and verdict.route.reasons == ["ungrounded"]
    assert verdict.validation.problems[0].message == "'ＡＢＣ' (drug): not in the text"
    clean = judge(spec, item, json.dumps({"entities": answer["entities"][:3]}, ensure_ascii=False), None)
    assert clean.route.state == "accepted"
    jsonschema.validate(clean.validation.output, spec.output_schema())


def test_generated_outputs_are_rated_by_a_judge_and_the_rating_is_the_confidence(tmp_path):
    root = tmp_path / "g"
    root.mkdir()
    (root / "labelloop.yaml").write_text(SPECS["generate"][0], encoding="utf-8")
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "a", "text": "我头痛"}\n{"id": "b", "text": "我很好"}\n', encoding="utf-8")
    server = FaultServer()
    server.script = {0: 'ok:{"output": "I have a headache."}', 1: 'ok:{"rating": 4}',
                     2: 'ok:{"output": "Good."}', 3: 'ok:{"rating": 2}'}
    try:
        with Project(root) as project:
            project.ingest(data, id_field="id")
            project.label(backend="openai", base_url=server.base_url, model="fault", concurrency=1)
            judge_call = server.requests[1]
            assert judge_call["response_format"]["json_schema"]["schema"]["properties"]["rating"]["enum"] == [
                1, 2, 3, 4, 5]
            assert "Output:\nI have a headache." in judge_call["messages"][-1]["content"]
            assert "- faithful to the source" in judge_call["messages"][0]["content"]
            rows = {r["item_id"]: r for r in project.store.db.execute(
                "SELECT * FROM predictions WHERE is_current = 1")}
            assert (rows["a"]["confidence"], rows["a"]["confidence_method"], rows["a"]["route"]) == (
                0.75, "judge:4/5", "accepted")
            assert (rows["b"]["confidence"], rows["b"]["route"], json.loads(rows["b"]["reasons"])) == (
                0.25, "needs_review", ["low_confidence[output]"])
            seen = len(server.requests)
            text = project.spec_path.read_text(encoding="utf-8")
            project.spec_path.write_text(text + "review: {threshold: 0.2}\n", encoding="utf-8")
            again = project.label(backend="openai", base_url=server.base_url, model="fault", concurrency=1)
            assert len(server.requests) == seen and again.counts.cache_hits == 2  # ratings from the cache
            assert project.status().routes == {"accepted": 2}
    finally:
        server.close()


def test_a_mention_outside_its_labels_vocabulary_goes_to_review(tmp_path):
    from labelloop.gate import judge
    from labelloop.spec import load_spec
    from labelloop.store import Item

    (tmp_path / "drugs.txt").write_text("布洛芬\n阿司匹林\n", encoding="utf-8")
    (tmp_path / "labelloop.yaml").write_text(
        SPECS["spans"][0] + "vocabularies: {drug: drugs.txt}\nreview: {accept_without_confidence: true}\n",
        encoding="utf-8")
    spec = load_spec(tmp_path / "labelloop.yaml")
    item = Item("a", "吃了布洛芬和板蓝根", {}, "")
    answer = {"entities": [{"text": "布洛芬", "label": "drug"}, {"text": "板蓝根", "label": "drug"}]}
    verdict = judge(spec, item, json.dumps(answer, ensure_ascii=False), None)
    assert verdict.route.reasons == ["vocabulary[drug]"]
    assert verdict.validation.problems[0].message == "'板蓝根' is not in the drug vocabulary"
    (tmp_path / "labelloop.yaml").write_text(SPECS["spans"][0] + "vocabularies: {drug: missing.txt}\n",
                                             encoding="utf-8")
    with pytest.raises(SpecError, match=r"labelloop.yaml:5: vocabularies.drug: cannot read .*missing.txt"):
        load_spec(tmp_path / "labelloop.yaml")


def test_one_text_with_two_labels_goes_to_review_nested_spans_follow_the_policy():
    from labelloop.gate import judge
    from labelloop.store import Item

    spec = parse_spec(SPECS["spans"][0] + "review: {accept_without_confidence: true}\n")
    item = Item("a", "持续性头痛", {}, "")
    nested = {"entities": [{"text": "持续性头痛", "label": "symptom"}, {"text": "头痛", "label": "symptom"}]}
    verdict = judge(spec, item, json.dumps(nested, ensure_ascii=False), None)
    assert verdict.route.state == "accepted"  # prefer_finer keeps 头痛, by the spec's policy
    assert [m["text"] for m in verdict.validation.output["entities"]] == ["头痛"]
    conflict = {"entities": [{"text": "头痛", "label": "symptom"}, {"text": "头痛", "label": "drug"}]}
    verdict = judge(spec, item, json.dumps(conflict, ensure_ascii=False), None)
    assert verdict.route.reasons == ["label_conflict"]
