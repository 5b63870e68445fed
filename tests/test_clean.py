"""Text cleaning: each step's exact output, the filters, the report, the profiles, and properties."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop import clean as cleaning
from labelloop.clean import STEPS, CleanConfig, Cleaned, CleaningReport, clean, config_from_profile, detect_language
from labelloop.errors import InputError

OFF = config_from_profile("none")
HAS_OPENCC = importlib.util.find_spec("opencc") is not None


def only(step: str) -> CleanConfig:
    """A config with every step off but ``step``."""
    return replace(OFF, **{step: True})


# -- steps -------------------------------------------------------------------------------------


def test_nfkc_keeps_cjk_punctuation() -> None:
    assert clean("Ｈｅｌｌｏ，世界！", CleanConfig()) == Cleaned("Hello，世界！", ["nfkc"], None)
    assert clean("①ｶ™ﬁ", only("nfkc")).text == "1カTMfi"


def test_fullwidth_alone_keeps_cjk_punctuation() -> None:
    assert clean("Ｈｅｌｌｏ，世界！", only("fullwidth")) == Cleaned("Hello，世界！", ["fullwidth"], None)
    assert clean("ｘ＝１２３？\u3000ｏｋ", only("fullwidth")).text == "x=123？ ok"


def test_cjk_punctuation_is_left_alone() -> None:
    text = "你好，世界。好！吗？注：如下；“引”‘号’（括）【书】、《名》"
    assert clean(text, CleanConfig()) == Cleaned(text, [], None)


def test_control_zero_width_and_bidi_characters_are_removed() -> None:
    text = "a\u200bb\u200cc\u200dd\u2060e\ufefff\x00g\x07h\x1bi\x7fj\x85k\u202el\u2066m\u200fn"
    assert clean(text, only("control_chars")) == Cleaned("abcdefghijklmn", ["control_chars"], None)


def test_control_chars_keep_tab_and_newline_and_turn_cr_into_newline() -> None:
    assert clean("a\tb\nc", only("control_chars")).changed == []
    assert clean("a\r\nb\rc", only("control_chars")).text == "a\nb\nc"


def test_lone_surrogates_are_removed_as_control_chars() -> None:
    assert clean("x\ud800y\udfff", only("control_chars")).text == "xy"


def test_html_tags_and_entities() -> None:
    assert clean("<p>Tom &amp; Jerry</p>", CleanConfig()) == Cleaned("Tom & Jerry", ["html", "whitespace"], None)
    assert clean("<p>a</p><p>b<br/>c</p>", only("html")).text == "\na\n\nb\nc\n"
    text = 'He<b class="x">ll</b>o<!-- a <i>hidden</i> note --> &lt;3 &#x4E2D;'
    assert clean(text, only("html")).text == "Hello <3 中"


def test_html_decodes_double_escaped_text_completely() -> None:
    assert clean("&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt; &amp;amp;", only("html")).text == "bold &"


def test_html_leaves_text_that_only_looks_like_markup() -> None:
    text = "x < y, y > z, I <3 you, a & b"
    assert clean(text, only("html")).changed == []


def test_urls_are_removed_but_not_surrounding_punctuation() -> None:
    config = CleanConfig(urls=True)
    assert clean("see https://example.com/a?b=1. and www.x.org, ok", config).text == "see . and , ok"
    assert clean("访问https://example.com/abc获取", config).text == "访问获取"
    assert clean("HTTP://EXAMPLE.COM/X", config).text == ""
    assert clean("mail me@www.example.com", only("urls")).changed == []


def test_emails_are_off_by_default() -> None:
    text = "write to a.b+c@example.co.uk!"
    assert clean(text, CleanConfig()).text == text
    assert clean(text, CleanConfig(emails=True)) == Cleaned("write to !", ["emails"], None)


def test_whitespace_rules() -> None:
    assert clean("  a \t b\u3000c  \n\n\n\n  d  \n", only("whitespace")).text == "a b c\n\nd"
    assert clean("a\n\nb", only("whitespace")).changed == []


def test_boilerplate_patterns_are_case_insensitive_and_per_line() -> None:
    config = CleanConfig(boilerplate=("点击链接.*领取", "unsubscribe.*$"))
    text = "好消息！点击链接 xyz 领取红包\nTo stop, UNSUBSCRIBE here\nBye"
    assert clean(text, config) == Cleaned("好消息！红包\nTo stop,\nBye", ["boilerplate", "whitespace"], None)


def test_invalid_boilerplate_pattern_is_an_input_error() -> None:
    with pytest.raises(InputError, match="boilerplate.*invalid pattern"):
        CleanConfig(boilerplate=("(",))


@pytest.mark.skipif(not HAS_OPENCC, reason="OpenCC not installed: pip install opencc-python-reimplemented")
def test_traditional_to_simplified() -> None:
    result = clean("繁體中文", config_from_profile("zh"))
    assert result == Cleaned("繁体中文", ["traditional_to_simplified"], None)


def test_traditional_to_simplified_without_opencc_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opencc", None)
    cleaning._opencc_t2s.cache_clear()
    try:
        with pytest.raises(InputError, match="pip install opencc-python-reimplemented"):
            clean("繁體中文", only("traditional_to_simplified"))
    finally:
        cleaning._opencc_t2s.cache_clear()


def test_steps_are_recorded_in_order_and_only_when_they_change_something() -> None:
    result = clean("<b>Ｈｉ</b>  there https://x.y", CleanConfig())
    assert result == Cleaned("Hi there", ["nfkc", "html", "urls", "whitespace"], None)
    assert clean("plain", CleanConfig()).changed == []


def test_a_removal_that_joins_a_letter_to_an_accent_is_normalised_too() -> None:
    assert clean("e\u200b\u0301", CleanConfig()) == Cleaned("\u00e9", ["nfkc", "control_chars"], None)
    assert clean("&#x200b;ok&#xFF21;", CleanConfig()).text == "okA"


# -- filters -----------------------------------------------------------------------------------


def test_length_filters_apply_after_cleaning() -> None:
    assert clean("<b></b>  ", CleanConfig()).rejected == "too_short"
    assert clean("abc", CleanConfig(min_length=4)) == Cleaned("abc", [], "too_short")
    assert clean("  abcd  ", CleanConfig(max_length=3)) == Cleaned("abcd", ["whitespace"], "too_long")
    assert clean("abc", CleanConfig(min_length=3, max_length=3)).rejected is None


def test_bad_lengths_are_an_input_error() -> None:
    with pytest.raises(InputError, match="min_length"):
        CleanConfig(min_length=5, max_length=4)


@pytest.mark.parametrize("text, language", [
    ("今天天气很好", "zh"),
    ("这个API很好用，我们用Python开发", "zh"),
    ("Great product, fast shipping", "en"),
    ("The weather is nice today", "en"),
    ("I live in Las Vegas", "en"),
    ("C'est très bien, merci", "other"),
    ("Das ist nicht gut", "other"),
    ("Hola, ¿cómo estás?", "other"),
    ("Привет, как дела?", "other"),
    ("今日はいい天気ですね", "ja"),
    ("안녕하세요", "ko"),
    ("12345 !!! 🙂", "und"),
    ("", "und"),
])
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_language_filter() -> None:
    config = CleanConfig(languages=("zh", "en"))
    assert clean("今天天气很好", config).rejected is None
    assert clean("Great product", config).rejected is None
    assert clean("Das ist nicht gut", config).rejected == "language:other"
    assert clean("今日はいい天気ですね", config).rejected == "language:ja"
    assert clean("12345", config).rejected == "language:und"


# -- report ------------------------------------------------------------------------------------


def test_report_counts_and_examples() -> None:
    report = CleaningReport()
    texts = ["<b>a</b>", "<i>b</i>", "<u>c</u>", "<s>d</s>", "  ", "ok", "x" * 50 + "<b>" + "y" * 100]
    for text in texts:
        report.add(text, clean(text, CleanConfig()))
    assert report.items == 7
    assert report.rejected == {"too_short": 1}
    assert report.changed == {"html": 5, "whitespace": 1}
    assert report.examples["html"] == [("<b>a</b>", "a"), ("<i>b</i>", "b"), ("<u>c</u>", "c")]
    summary = report.to_dict()
    assert summary == json.loads(json.dumps(summary))
    assert summary["items"] == 7 and summary["kept"] == 6
    assert summary["changed"] == {"html": 5, "whitespace": 1}
    assert summary["examples"]["whitespace"] == [["  ", ""]]


def test_report_examples_start_near_the_first_change_and_are_truncated() -> None:
    report = CleaningReport()
    text = "x" * 50 + "<b>" + "y" * 100
    report.add(text, clean(text, only("html")))
    before, after = report.examples["html"][0]
    assert before == "x" * 20 + "<b>" + "y" * 57 and after == "x" * 20 + "y" * 60


def test_report_examples_can_be_written_as_utf8() -> None:
    report = CleaningReport()
    report.add("a\ud800b", clean("a\ud800b", CleanConfig()))
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")
    assert report.examples["control_chars"] == [("a?b", "ab")]


# -- profiles ----------------------------------------------------------------------------------


def test_profile_none_changes_nothing() -> None:
    assert all(not getattr(OFF, name) for name in STEPS) and OFF.min_length == 1
    text = " <b>Ｈｉ</b>\u200b https://x.y "
    assert clean(text, OFF) == Cleaned(text, [], None)


def test_profiles() -> None:
    assert config_from_profile("basic") == CleanConfig()
    assert config_from_profile("zh") == CleanConfig(traditional_to_simplified=True)
    web = config_from_profile("web")
    assert web.emails and web.boilerplate and web.urls
    with pytest.raises(InputError, match="unknown profile 'nope'"):
        config_from_profile("nope")


def test_web_profile_removes_common_boilerplate() -> None:
    text = ("Great deal on shoes!\nClick here to claim your prize\nTo unsubscribe, reply STOP\n"
            "Advertisement\n© 2024 Shop Inc. All rights reserved.\nSent from my iPhone\n"
            "好消息！点击链接领取优惠券\n扫码关注公众号\n退订回T\n广告\n联系 a@b.com")
    assert clean(text, config_from_profile("web")).text == "Great deal on shoes!\n\n好消息！\n\n联系"


# -- properties --------------------------------------------------------------------------------

WEB = config_from_profile("web")
TRICKY = st.sampled_from(["<p>", "</b>", "<!--", "-->", "&amp;", "&lt;", "&#x200b;", "&#xff21;", "http://", "www.",
                          "a@b.cd", "\ud800", "\x00", "\r", "\u200b", "\u0301", "\u3000", "，", "Ａ", "点击链接",
                          "\n"])


def _assert_idempotent(text: str, config: CleanConfig) -> None:
    result = clean(text, config)
    assert isinstance(result.text, str)
    again = clean(result.text, config)
    assert (again.text, again.changed) == (result.text, [])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_web_profile_never_raises_and_is_idempotent(text: str) -> None:
    _assert_idempotent(text, WEB)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.characters(exclude_categories=()) | TRICKY).map("".join))
def test_web_profile_is_idempotent_on_markup_surrogates_and_controls(text: str) -> None:
    _assert_idempotent(text, WEB)
