"""Exact and near-duplicate groups: normalisation, MinHash LSH grouping, merging, and real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labelloop.dedup import Group, exact_groups, group_duplicates, near_groups, normalize
from labelloop.errors import InputError, MissingExtra

pytest.importorskip("datasketch")

BANKING77 = Path("/work/shared/datasets/banking77/train.jsonl")

CARD = ("I ordered a new debit card two weeks ago and it still has not arrived at my home address. "
        "Can you tell me when it will be delivered?")
CARD_WORD_CHANGED = CARD.replace("home", "postal")  # trigram Jaccard 0.90
CARD_REWORDED = ("I ordered a new debit card a month ago and it has not arrived yet. "
                 "When will it be delivered to my address?")  # trigram Jaccard 0.52
PIN = "How do I change the PIN of my card and how long does it take before I can use the new one?"
PIN_WORD_CHANGED = PIN.replace("change", "reset")
FLIGHT, FLIGHT_TO = "明天上午九点从北京飞上海", "明天上午九点从北京飞往上海"  # trigram Jaccard 0.62, bigram 0.77
CARD_ZH = "我上个月在网上申请了一张新的借记卡，到现在已经等了两个多星期还没有收到，请问能帮我查一下快递现在到哪里了吗？"
CARD_ZH_WORD_ADDED = CARD_ZH.replace("到哪里", "到了哪里")  # trigram Jaccard 0.91


def trigram_jaccard(a: str, b: str) -> float:
    """The exact Jaccard similarity of two texts' character trigram sets (the quantity MinHash estimates)."""
    sets = [{t[i : i + 3] for i in range(max(len(t) - 2, 1))} for t in (normalize(a), normalize(b))]
    return len(sets[0] & sets[1]) / len(sets[0] | sets[1])


def member_sets(groups: list[Group]) -> list[set[str]]:
    return [set(group.members) for group in groups]


def test_normalize_folds_width_case_and_whitespace_but_keeps_punctuation():
    assert normalize("Ｈｅｌｌｏ  World") == "hello world"
    assert normalize("\n  Straße\t\u00a0ﬁne!  ") == "strasse fine!"
    assert normalize("Hello, world?") != normalize("Hello world")


def test_exact_groups_match_width_case_and_whitespace_variants_in_first_appearance_order():
    items = [("a", "Ｈｅｌｌｏ  World"), ("b", "goodbye"), ("c", "hello world"), ("d", "Goodbye "),
             ("e", "HELLO\nWORLD"), ("f", "hello, world"), ("g", "unique")]
    assert exact_groups(items) == [
        Group("a", ["a", "c", "e"], "exact", 1.0),
        Group("b", ["b", "d"], "exact", 1.0),
    ]


def test_exact_groups_without_duplicates_is_empty():
    assert exact_groups([("a", "one"), ("b", "two"), ("c", "one two")]) == []


def test_near_groups_an_english_sentence_with_one_word_changed():
    assert trigram_jaccard(CARD, CARD_WORD_CHANGED) > 0.85
    groups = near_groups([("x", PIN), ("a", CARD), ("b", "Totally unrelated words here."), ("c", CARD_WORD_CHANGED)])
    assert len(groups) == 1
    group = groups[0]
    assert (group.representative, group.members, group.kind) == ("a", ["a", "c"], "near")
    assert 0.8 <= group.similarity < 1.0
    assert abs(group.similarity - trigram_jaccard(CARD, CARD_WORD_CHANGED)) < 0.1


def test_near_groups_chinese_without_spaces():
    groups = near_groups([("zh1", CARD_ZH), ("en", CARD), ("zh2", CARD_ZH_WORD_ADDED)])
    assert member_sets(groups) == [{"zh1", "zh2"}]


def test_short_chinese_pair_needs_smaller_shingles_or_a_lower_threshold():
    items = [("f1", FLIGHT), ("f2", FLIGHT_TO)]
    assert near_groups(items) == []  # one added character changes 3 of 10 trigrams: Jaccard 0.62 < 0.8
    groups = near_groups(items, ngram=2, threshold=0.6)
    assert member_sets(groups) == [{"f1", "f2"}]
    assert 0.6 <= groups[0].similarity < 1.0


def test_unrelated_texts_are_not_grouped():
    items = [("1", CARD), ("2", PIN), ("3", FLIGHT), ("4", "What is the exchange rate for euros today?"),
             ("5", "Can I get a refund for a payment I did not make?")]
    assert near_groups(items) == []
    assert group_duplicates(items) == []


def test_threshold_is_respected():
    items = [("a", CARD), ("b", CARD_REWORDED)]
    assert 0.4 < trigram_jaccard(CARD, CARD_REWORDED) < 0.6
    assert near_groups(items, threshold=0.8) == []
    assert near_groups(items, threshold=0.7) == []
    loose = near_groups(items, threshold=0.3)
    assert member_sets(loose) == [{"a", "b"}]
    assert 0.3 <= loose[0].similarity < 0.7


def test_members_chained_through_a_middle_text_form_one_group():
    first = CARD.replace("two weeks ago", "last month")
    steps = [CARD, first, first.replace("will be delivered", "gets here")]  # trigram Jaccard 0.80, 0.83; ends 0.65
    assert trigram_jaccard(steps[0], steps[2]) < 0.7 < min(trigram_jaccard(*steps[:2]), trigram_jaccard(*steps[1:]))
    assert near_groups([("a", steps[0]), ("c", steps[2])], threshold=0.7) == []
    groups = near_groups(list(zip("abc", steps)), threshold=0.7)
    assert len(groups) == 1 and groups[0].members == ["a", "b", "c"]
    assert groups[0].similarity < 0.7  # the ends' own estimate: a chained group can fall below the threshold


def test_texts_shorter_than_the_ngram_are_one_shingle():
    assert member_sets(near_groups([("a", "ok"), ("b", "OK"), ("c", "oh")])) == [{"a", "b"}]
    assert near_groups([("a", "ab"), ("b", "abc")]) == []


def test_near_groups_are_deterministic_across_processes_and_hash_seeds():
    script = (
        "import json; from labelloop.dedup import near_groups; "
        f"items = {[('a', CARD), ('b', PIN), ('c', CARD_WORD_CHANGED), ('d', PIN_WORD_CHANGED), ('e', FLIGHT)]!r}; "
        "print(json.dumps([[g.members, g.similarity] for g in near_groups(items, seed=7)]))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1]
    assert [members for members, _ in outputs[0]] == [["a", "c"], ["b", "d"]]


def test_seed_changes_the_estimate_but_not_clear_groups():
    items = [("a", CARD), ("b", CARD_WORD_CHANGED), ("c", PIN), ("d", PIN_WORD_CHANGED)]
    by_seed = {seed: near_groups(items, seed=seed) for seed in (1, 2, 3)}
    assert near_groups(items, seed=1) == by_seed[1]
    assert {tuple(map(frozenset, member_sets(groups))) for groups in by_seed.values()} == {
        (frozenset("ab"), frozenset("cd"))
    }
    assert len({groups[0].similarity for groups in by_seed.values()}) > 1


def test_group_duplicates_merges_exact_groups_into_near_groups():
    items = [
        ("q1", "  Where is my card?"), ("c1", CARD), ("p1", PIN), ("c2", CARD.upper()), ("z", "unrelated text"),
        ("c3", CARD_WORD_CHANGED), ("q2", "where is my card?"), ("c4", "  " + CARD_WORD_CHANGED), ("c5", CARD),
    ]
    groups = group_duplicates(items)
    assert groups == [
        Group("q1", ["q1", "q2"], "exact", 1.0),
        Group("c1", ["c1", "c2", "c3", "c4", "c5"], "near", groups[1].similarity),
    ]
    assert 0.8 <= groups[1].similarity < 1.0
    ids = [member for group in groups for member in group.members]
    assert len(ids) == len(set(ids))


def test_group_duplicates_without_near_returns_exact_groups_only():
    items = [("a", CARD), ("b", CARD_WORD_CHANGED), ("c", "Ｈｅｌｌｏ  World"), ("d", "hello world")]
    assert group_duplicates(items, near=False) == exact_groups(items) == [Group("c", ["c", "d"], "exact", 1.0)]
    assert member_sets(group_duplicates(items)) == [{"a", "b"}, {"c", "d"}]


def test_a_repeated_id_is_an_input_error():
    with pytest.raises(InputError, match="'a' appears more than once"):
        group_duplicates([("a", "one"), ("b", "two"), ("a", "three")])


def test_missing_datasketch_is_a_missing_extra_for_near_duplicates_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketch", None)  # makes `import datasketch` raise ImportError
    items = [("a", "Hello"), ("b", "hello"), ("c", CARD)]
    assert group_duplicates(items, near=False) == [Group("a", ["a", "b"], "exact", 1.0)]
    with pytest.raises(MissingExtra,
                       match=r"finding near duplicates needs the dedup extra: pip install 'labelloop\[dedup\]'"):
        near_groups(items)


def test_banking77_first_3000_texts():
    if not BANKING77.exists():
        pytest.skip(f"{BANKING77} is missing")
    with BANKING77.open(encoding="utf-8") as lines:
        records = [json.loads(line) for _, line in zip(range(3000), lines)]
    items = [(record["id"], record["text"]) for record in records]
    text = dict(items)
    position = {item_id: i for i, (item_id, _) in enumerate(items)}

    started = time.perf_counter()
    groups = group_duplicates(items)
    seconds = time.perf_counter() - started
    exact = [group for group in groups if group.kind == "exact"]
    print(f"banking77 x3000: {len(exact)} exact and {len(groups) - len(exact)} near groups in {seconds:.2f} s")
    assert seconds < 20

    ids = [member for group in groups for member in group.members]
    assert len(ids) == len(set(ids))
    for group in groups:
        assert len(group.members) >= 2 and group.members[0] == group.representative
        assert sorted(group.members, key=position.__getitem__) == group.members
    # only leading/trailing newlines differ in these; inspected by hand
    assert member_sets(exact) == [{"b77-train-1246", "b77-train-1290"}, {"b77-train-1710", "b77-train-1724"}]
    found = {frozenset(group.members): group for group in groups}
    assert found[frozenset({"b77-train-44", "b77-train-88"})].kind == "near"  # "... my new card?" / "... card yet?"
    assert text["b77-train-88"] == "Can you tell me why I haven't received my new card yet?"
    assert frozenset({"b77-train-2702", "b77-train-2703", "b77-train-2764", "b77-train-2844"}) in found
    # every member is really close to another member of its group (exact Jaccard, not the estimate); with
    # 128 permutations an estimate is off by ~0.04, so a few of the many pairs near 0.66 pass 0.8
    closest = sorted(
        max(trigram_jaccard(text[member], text[other]) for other in group.members if other != member)
        for group in groups for member in group.members
    )
    assert closest[0] >= 0.6 and closest[len(closest) // 2] >= 0.8
    assert 60 <= len(groups) <= 110  # 82 with seed 1: the default LSH weights would find about 50
