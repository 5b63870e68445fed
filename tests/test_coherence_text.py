"""Coherence texts: the pre-screen flags exactly a planted off-topic sentence, windows cover a long text at
sentence ends, problems quoted per window map back to the full text (NFKC-tolerant) and appear once after
merging, and ratings merge by length-weighted mean rounded to an allowed level."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.coherence import Break, Window, combine, content_units, ground_problems, screen, windows
from labelloop.documents import split_sentences

ZH_ON_TOPIC = [
    "本市今年开通了三条新的公交线路。",
    "新线路连接了城东的住宅区和市中心的商业区。",
    "开通以来，城东居民到市中心的通勤时间平均缩短了二十分钟。",
    "通勤时间缩短后，市中心商业区的客流也明显增加。",
    "公交公司计划明年再为城东增开两条线路。",
]
ZH_ASIDE = "企鹅生活在南极洲寒冷的冰原上。"
EN_ON_TOPIC = [
    "The city opened three new bus routes this year.",
    "The new routes link the eastern suburbs with the downtown shopping district.",
    "Since the opening, commuters from the eastern suburbs save twenty minutes a day.",
    "Shops downtown report more customers from the eastern suburbs.",
    "Next year the city plans two more bus routes for the eastern suburbs.",
]
EN_ASIDE = "Penguins cannot fly."

TEMPLATES = [
    "第{i}号监测站的数据显示，本周的平均气温比上周高了{a}度。",
    "气温升高以后，城区的用电量在第{i}天达到了{b}万千瓦时。",
    "电力公司表示，第{i}批新增的变压器可以再承担{a}成的负荷。",
    "专家建议居民在{b}点以后错峰用电，以减轻第{i}片电网的压力。",
]
PLANTED = {  # sentence index it follows -> (problem type, planted sentence)
    40: ("contradiction", "这一结论与第3段给出的数据互相矛盾。"),
    127: ("logic_jump", "由此可见，所有城市都应该立即停止使用空调。"),  # falls in the overlap of windows 1 and 2
    520: ("off_topic", "顺便一提，熊猫最喜欢吃的食物是竹子。"),
    880: ("unclear_reference", "它的影响因此变得难以估计。"),
}
SIZE, OVERLAP = 4000, 400


def _with_aside(sentences: list[str], aside: str, after: int, sep: str) -> tuple[str, int]:
    """The text with ``aside`` inserted after sentence ``after``, and where the aside starts."""
    before = sep.join(sentences[: after + 1]) + sep
    return before + aside + sep + sep.join(sentences[after + 1 :]), len(before)


def _long_text() -> tuple[str, dict[str, tuple[int, int]]]:
    """About 30,000 characters of distinct Chinese sentences, with the PLANTED ones and their offsets."""
    parts: list[str] = []
    where: dict[str, tuple[int, int]] = {}
    length = 0
    for i in range(1000):
        sentences = [TEMPLATES[i % 4].format(i=i, a=i % 9 + 1, b=i % 17 + 3)]
        if i in PLANTED:
            sentences.append(PLANTED[i][1])
        for sentence in sentences:
            where[sentence] = (length, length + len(sentence))
            parts.append(sentence)
            length += len(sentence)
    return "".join(parts), {s: where[s] for _, s in PLANTED.values()}


LONG, PLACES = _long_text()


def test_content_units_drop_function_characters_and_stop_words_after_nfkc():
    assert content_units("这是我们的城市。") == {"城", "市"}
    assert content_units("The Ｂus and THE route of 2024") == {"bus", "route", "2024"}
    assert content_units("第３段 data") == {"第", "3", "段", "data"}, "CJK characters one by one, other words whole"
    assert content_units("的了是。") == set()


@pytest.mark.parametrize(
    ("sentences", "aside", "sep"), [(ZH_ON_TOPIC, ZH_ASIDE, ""), (EN_ON_TOPIC, EN_ASIDE, " ")], ids=["zh", "en"]
)
def test_screen_flags_exactly_the_inserted_off_topic_sentence(sentences, aside, sep):
    coherent = sep.join(sentences)
    assert screen(coherent) == []
    text, start = _with_aside(sentences, aside, 2, sep)
    breaks = screen(text)
    assert [(b.start, b.end) for b in breaks] == [(start, start + len(aside))]
    assert text[breaks[0].start : breaks[0].end] == aside
    assert breaks[0].as_dict() == {"start": start, "end": start + len(aside), "overlap": 0.0}


def test_screen_compares_with_two_sentences_back_and_skips_empty_sentences():
    text, start = _with_aside(ZH_ON_TOPIC, ZH_ASIDE, 2, "")
    after = ZH_ON_TOPIC[3]
    assert content_units(after) & content_units(ZH_ASIDE) == set(), "alone, the aside would flag the next one too"
    assert [(b.start, b.end) for b in screen(text)] == [(start, start + len(ZH_ASIDE))]
    assert screen(text, threshold=0.0) == [], "nothing is below a zero threshold"
    text = "本市开通了公交线路。的了是。企鹅生活在冰原上。"
    aside = text.index("企鹅")
    assert screen(text) == [Break(aside, len(text), 0.0)], "the empty middle sentence is not flagged"
    sentences = split_sentences(text)
    assert screen(text, sentences=sentences[:2]) == [], "only the sentences given are compared"


def test_windows_cover_a_long_text_at_sentence_ends_with_overlap():
    assert 29_000 < len(LONG) < 31_000
    found = windows(LONG, SIZE, OVERLAP)
    ends = {b for _, b in split_sentences(LONG)}
    starts = {a for a, _ in split_sentences(LONG)}
    assert found[0].start == 0 and found[-1].end == len(LONG)
    assert all(w.end - w.start <= SIZE for w in found)
    for previous, window in zip(found, found[1:]):
        assert previous.start < window.start and previous.end < window.end
        assert OVERLAP <= previous.end - window.start <= OVERLAP * 3 // 2
        assert previous.end in ends and window.start in starts
    assert windows("短文本。", SIZE, OVERLAP) == [Window(0, 4)]
    for size, overlap in [(10, 10), (10, 11), (10, -1), (0, 0)]:
        with pytest.raises(ValueError, match="size > overlap"):
            windows(LONG, size, overlap)


def test_windows_cut_hard_when_no_sentence_ends_in_the_last_third():
    text = "x" * 25
    assert windows(text, 10, 2) == [Window(0, 10), Window(8, 18), Window(16, 25)]


def _model_answer(window: Window, ratings: dict) -> dict:
    """What a model reading the window would say: each planted sentence whole in it, quoted (the
    contradiction with a full-width digit, as models sometimes write it)."""
    problems = []
    for kind, sentence in PLANTED.values():
        start, end = PLACES[sentence]
        if window.start <= start and end <= window.end:
            quote = sentence.replace("3", "３") if kind == "contradiction" else sentence
            problems.append({"type": kind, "quote": quote, "suggestion": "改写这一句。"})
    return {"ratings": ratings, "problems": problems}


def test_problems_quoted_per_window_map_back_and_appear_once_after_combining():
    found = windows(LONG, SIZE, OVERLAP)
    start, end = PLACES[PLANTED[127][1]]
    assert sum(w.start <= start and end <= w.end for w in found) == 2, "the logic jump lies in an overlap"
    parts = []
    for window in found:
        answer = _model_answer(window, {"logic": 4})
        grounded, ungrounded = ground_problems(LONG[window.start : window.end], answer["problems"], window.start)
        assert ungrounded == []
        for problem in grounded:
            assert LONG[problem["start"] : problem["end"]] == problem["quote"]
            assert (problem["start"], problem["end"]) == PLACES[problem["quote"]]
        parts.append((window, {"ratings": answer["ratings"], "problems": grounded}))
    merged = combine(parts, [1, 2, 3, 4, 5])
    assert merged["ratings"] == {"logic": 4}
    assert [(p["type"], p["quote"]) for p in merged["problems"]] == [(t, s) for t, s in PLANTED.values()]
    assert [(p["start"], p["end"]) for p in merged["problems"]] == [PLACES[s] for _, s in PLANTED.values()]


def test_ground_problems_keeps_the_exact_text_and_explains_failures():
    text = "甲方于２０２４年签约。乙方随后退出。"
    problems = [
        {"type": "logic_jump", "quote": "于2024年签约", "suggestion": "s"},
        {"type": "off_topic", "quote": "丙方加入", "suggestion": "s"},
        {"type": "contradiction", "suggestion": "s"},
        {"type": "contradiction", "quote": 7, "suggestion": "s"},
        "not a problem",
    ]
    grounded, ungrounded = ground_problems(text, problems, offset=100)
    assert grounded == [
        {"type": "logic_jump", "quote": "于２０２４年签约", "suggestion": "s", "start": 102, "end": 110}
    ]
    assert [u["reason"] for u in ungrounded] == ["no quote", "no quote", "not an object", "not in the text"]
    assert ungrounded[3]["quote"] == "丙方加入"


def test_ratings_combine_by_length_weighted_mean_to_the_nearest_level():
    short, long = Window(0, 100), Window(50, 350)
    parts = [(short, {"ratings": {"logic": 1, "flow": 2, "focus": 5}, "problems": []}),
             (long, {"ratings": {"logic": 5, "flow": 3}, "problems": []})]  # fmt: skip
    # logic: (1*100 + 5*300) / 400 = 4; flow: 2.75 -> 3; focus only in the short window: 5
    assert combine(parts, [1, 2, 3, 4, 5])["ratings"] == {"logic": 4, "flow": 3, "focus": 5}
    assert combine(parts, [1, 3, 5])["ratings"] == {"logic": 3, "flow": 3, "focus": 5}, "4 ties 3 and 5: lower"
    even = [(Window(0, 10), {"ratings": {"logic": 2}}), (Window(10, 20), {"ratings": {"logic": 3}})]
    assert combine(even, [1, 2, 3, 4, 5])["ratings"] == {"logic": 2}, "2.5 ties 2 and 3: lower"
    with pytest.raises(ValueError, match="grounded"):
        combine([(short, {"ratings": {}, "problems": [{"type": "off_topic", "quote": "x"}]})], [1, 2])


def test_combine_drops_only_same_type_overlapping_duplicates():
    first = {"type": "off_topic", "quote": "ab", "start": 10, "end": 20}
    again = {"type": "off_topic", "quote": "ab", "start": 15, "end": 25}
    other = {"type": "logic_jump", "quote": "ab", "start": 10, "end": 20}
    later = {"type": "off_topic", "quote": "cd", "start": 20, "end": 30}
    parts = [(Window(0, 30), {"problems": [later, first]}), (Window(5, 40), {"problems": [again, other]})]
    assert combine(parts, [1])["problems"] == [first, other, later]


@st.composite
def _text_size_overlap(draw):
    text = draw(st.text(alphabet=st.sampled_from(list("ab 中文。.！?\n")), max_size=400))
    size = draw(st.integers(1, 80))
    return text, size, draw(st.integers(0, size - 1))


@settings(max_examples=300, deadline=None)
@given(_text_size_overlap())
def test_windows_always_cover_the_text_within_size(case):
    text, size, overlap = case
    found = windows(text, size, overlap)
    assert found[0].start == 0 and found[-1].end == len(text)
    assert all(w.end - w.start <= size for w in found)
    for previous, window in zip(found, found[1:]):
        assert previous.start < window.start <= previous.end < window.end
