"""Text cleaning: optional steps that edit a text, and filters (length, language) that reject one.

Each step is on or off in a :class:`CleanConfig`; :func:`clean` applies the steps that are on in the
order of :data:`STEPS` and records which ones changed the text. The steps are run again until the text
stops changing (an entity that decodes to a tag or a zero-width space, or a removal that joins a letter
to a combining accent, is cleaned too), so cleaning a cleaned text changes nothing. Then the filters
run. :class:`CleaningReport` sums up many results.

Language detection is a small script-based heuristic (no dependency, deterministic): Han characters
mean ``zh`` (``ja`` when a fifth or more of the CJK characters are kana), Hangul ``ko``, ASCII-letter
words ``en`` unless two or more common French/German/Spanish/Italian/Dutch/Portuguese function words
and accented words outnumber common English ones (then ``other``), other letters ``other``; a text without letters
is ``und``. It tells zh, en and other apart reliably, not one Latin-script language from another.
"""

from __future__ import annotations

import functools
import html
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

__all__ = [
    "STEPS",
    "PROFILES",
    "WEB_BOILERPLATE",
    "CleanConfig",
    "Cleaned",
    "CleaningReport",
    "clean",
    "config_from_profile",
    "detect_language",
]

STEPS = (
    "nfkc",
    "fullwidth",
    "traditional_to_simplified",
    "control_chars",
    "html",
    "urls",
    "emails",
    "boilerplate",
    "whitespace",
)
_MAX_ROUNDS = 8  # passes over the steps; real text is stable after the second
_EXAMPLES, _EXAMPLE_CHARS, _EXAMPLE_LEAD = 3, 80, 20


@dataclass(frozen=True)
class CleanConfig:
    """Which steps run (see :data:`STEPS`) and which texts the filters reject."""

    nfkc: bool = True  # Unicode NFKC, keeping full-width CJK punctuation (，！？：；（）)
    fullwidth: bool = True  # full-width ASCII to half-width, keeping that CJK punctuation
    traditional_to_simplified: bool = False  # OpenCC t2s (pip install opencc-python-reimplemented)
    control_chars: bool = True  # controls but \t/\n, zero-width, bidi, lone surrogates; CR(LF) to LF
    html: bool = True  # tags and comments removed, entities decoded
    urls: bool = True  # http(s):// and www. addresses removed
    emails: bool = False  # e-mail addresses removed (PII masking is a separate module)
    boilerplate: tuple[str, ...] = ()  # regexes whose matches are removed; case-insensitive, ^/$ at each line
    whitespace: bool = True  # space/tab runs to one space, lines stripped, 3+ line breaks to 2, ends stripped
    min_length: int = 1  # in characters, after cleaning
    max_length: int | None = None
    languages: tuple[str, ...] = ()  # codes from detect_language; empty: any language

    def __post_init__(self) -> None:
        if self.min_length < 0 or (self.max_length is not None and self.max_length < self.min_length):
            raise InputError(
                "clean",
                None,
                f"need 0 <= min_length <= max_length, got {self.min_length} and {self.max_length}",
                field="min_length",
            )
        for pattern in self.boilerplate:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError("clean", None, f"invalid pattern {pattern!r} ({exc})", field="boilerplate") from None


@dataclass
class Cleaned:
    """A cleaned text, the steps that changed it (in :data:`STEPS` order) and why it was rejected, if it was."""

    text: str
    changed: list[str]
    rejected: str | None  # None, "too_short", "too_long" or "language:<code>"


def clean(text: str, config: CleanConfig) -> Cleaned:
    """Apply the steps that ``config`` turns on until the text is stable, then the filters."""
    steps = _active_steps(config)
    changed: set[str] = set()
    for _ in range(_MAX_ROUNDS):
        before = text
        for name, step in steps:
            edited = step(text)
            if edited != text:
                changed.add(name)
                text = edited
        if text == before:
            break
    return Cleaned(text, [name for name in STEPS if name in changed], _rejection(text, config))


@functools.lru_cache(maxsize=64)
def _active_steps(config: CleanConfig) -> list[tuple[str, Callable[[str], str]]]:
    table: dict[str, Callable[[str], str]] = {
        "nfkc": _nfkc,
        "fullwidth": _fullwidth,
        "traditional_to_simplified": _to_simplified,
        "control_chars": _control_chars,
        "html": _html,
        "urls": _urls,
        "emails": _emails,
        "boilerplate": functools.partial(_boilerplate, config.boilerplate),
        "whitespace": _whitespace,
    }
    return [(name, table[name]) for name in STEPS if getattr(config, name)]


def _rejection(text: str, config: CleanConfig) -> str | None:
    if len(text) < config.min_length:
        return "too_short"
    if config.max_length is not None and len(text) > config.max_length:
        return "too_long"
    if config.languages:
        language = detect_language(text)
        if language not in config.languages:
            return f"language:{language}"
    return None


# -- steps -----------------------------------------------------------------------------------

_CJK_PUNCTUATION = "，！？：；（）"  # full-width forms kept as they are (NFKC would make them ASCII)
_KEEP_CJK = re.compile(f"([{_CJK_PUNCTUATION}])")
_FULLWIDTH = str.maketrans(
    {0x3000: 0x20} | {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F) if chr(code) not in _CJK_PUNCTUATION}
)
_NEWLINE = re.compile(r"\r\n?")
# C0/C1 controls but \t and \n, zero-width and BOM, bidi controls, and lone surrogates (not encodable)
_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2060\ufeff\u061c\u202a-\u202e\u2066-\u2069"
    r"\ud800-\udfff]"
)
_COMMENT = re.compile(r"<!--(?:(?!<!--)[\s\S])*?-->")
_BLOCK_TAG = re.compile(
    r"</?(?:br|p|div|li|tr|h[1-6]|ul|ol|table|blockquote|pre|hr|section|article|header"
    r"|footer)\b[^<>]*>",
    re.IGNORECASE,
)
_TAG = re.compile(r"<(?:/?[A-Za-z]|[!?])[^<>]*>")
_URL = re.compile(r"(?<![@.\w])(?:https?://|www\.)[\w\-.~:/?#\[\]@!$&'()*+,;=%]*[\w/#=&~+%-]", re.IGNORECASE | re.ASCII)
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?![\w-])", re.IGNORECASE | re.ASCII)
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _nfkc(text: str) -> str:
    """Unicode NFKC, except full-width CJK punctuation."""
    parts = _KEEP_CJK.split(text)
    return "".join(part if i % 2 else unicodedata.normalize("NFKC", part) for i, part in enumerate(parts))


def _fullwidth(text: str) -> str:
    """Full-width ASCII and the ideographic space to half-width, except full-width CJK punctuation."""
    return text.translate(_FULLWIDTH)


def _to_simplified(text: str) -> str:
    return _opencc_t2s()(text)


@functools.cache
def _opencc_t2s() -> Callable[[str], str]:
    try:
        from opencc import OpenCC
    except ImportError:
        raise InputError(
            "clean",
            None,
            "traditional_to_simplified needs OpenCC: pip install opencc-python-reimplemented",
            field="traditional_to_simplified",
        ) from None
    return OpenCC("t2s").convert


def _control_chars(text: str) -> str:
    """CR and CRLF to LF; control, zero-width and bidi characters and lone surrogates removed."""
    return _CONTROL.sub("", _NEWLINE.sub("\n", text))


def _html(text: str) -> str:
    """Tags and comments removed (block tags become a line break), entities decoded, until none is left."""
    while True:
        stripped = html.unescape(_TAG.sub("", _BLOCK_TAG.sub("\n", _COMMENT.sub("", text))))
        if stripped == text:
            return text
        text = stripped


def _urls(text: str) -> str:
    return _URL.sub("", text)


def _emails(text: str) -> str:
    return _EMAIL.sub("", text)


def _boilerplate(patterns: tuple[str, ...], text: str) -> str:
    for pattern in patterns:
        text = re.sub(pattern, "", text, flags=re.IGNORECASE | re.MULTILINE)
    return text


def _whitespace(text: str) -> str:
    """Runs of spaces and tabs to one space, each line stripped, 3+ line breaks to 2, ends stripped."""
    lines = _SPACES.sub(" ", text).split("\n")
    return _BLANK_LINES.sub("\n\n", "\n".join(line.strip(" ") for line in lines)).strip()


# -- language --------------------------------------------------------------------------------

_HAN = "\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_TOKEN = re.compile(
    f"(?P<han>[{_HAN}])|(?P<kana>[{_KANA}])|(?P<hangul>[{_HANGUL}]+)"
    f"|(?P<word>(?:(?![{_HAN}{_KANA}{_HANGUL}])[^\\W\\d_])+)"
)
_ENGLISH = frozenset(
    "i the of and to is are was were be been it its you your that this these for with at by from"
    " or but not no what which who my we our they their he she his her have has had do does"
    " will would can could there if so than".split()
)
_FOREIGN = frozenset(
    "le les des du une est je nous vous pas dans avec sont mais qui que der das und ist nicht"
    " ein eine ich wir auch sie el los las una del por pero muy il di che della sono gli het"
    " een niet zijn ook uma muito".split()
)


def detect_language(text: str) -> str:
    """``zh``, ``ja``, ``ko``, ``en``, ``other`` or ``und`` (no letters), from the scripts of the text."""
    scripts: Counter[str] = Counter()
    english = foreign = 0
    for match in _TOKEN.finditer(text):
        word = match.group().lower()
        script = str(match.lastgroup)
        if script == "word":
            script = "ascii" if word.isascii() else "accented"
            english += word in _ENGLISH
            foreign += word in _FOREIGN or script == "accented"
        scripts[script] += 1
    cjk = scripts["han"] + scripts["kana"]
    scores = {
        "en": scripts["ascii"],
        "ja" if scripts["kana"] * 5 >= cjk > 0 else "zh": cjk,
        "ko": scripts["hangul"],
        "other": scripts["accented"],
    }
    best = max(scores, key=lambda code: scores[code])
    if not scores[best]:
        return "und"
    return "other" if best == "en" and foreign > max(english, 1) else best


# -- report ----------------------------------------------------------------------------------


@dataclass
class CleaningReport:
    """Counts of rejections (by reason) and changes (by step), with a few examples of each change."""

    items: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, original: str, result: Cleaned) -> None:
        """Count one result; keep (before, after) around the first change as an example of its steps."""
        self.items += 1
        if result.rejected:
            self.rejected[result.rejected] += 1
        for step in result.changed:
            self.changed[step] += 1
            examples = self.examples.setdefault(step, [])
            if len(examples) < _EXAMPLES:
                examples.append(_around_first_change(original, result.text))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary; steps in :data:`STEPS` order, reasons most frequent first."""
        return {
            "items": self.items,
            "kept": self.items - sum(self.rejected.values()),
            "rejected": dict(self.rejected.most_common()),
            "changed": {step: self.changed[step] for step in STEPS if self.changed[step]},
            "examples": {step: [list(pair) for pair in self.examples[step]] for step in STEPS if step in self.examples},
        }


def _around_first_change(before: str, after: str) -> tuple[str, str]:
    start = max(0, len(os.path.commonprefix([before, after])) - _EXAMPLE_LEAD)
    return _excerpt(before[start:]), _excerpt(after[start:])


def _excerpt(text: str) -> str:
    """The first characters of ``text``, lone surrogates replaced so that it can be written as UTF-8."""
    return text[:_EXAMPLE_CHARS].encode("utf-8", "replace").decode("utf-8")


# -- profiles --------------------------------------------------------------------------------

WEB_BOILERPLATE = (
    r"\b(?:click|tap) here\b.*",
    r"\b(?:to unsubscribe|unsubscribe (?:here|now|from))\b.*",
    r"^[ \t]*(?:advertisement|sponsored(?: content)?)[ \t]*$",
    r"^sent from my \w+.*$",
    r"^.*\ball rights reserved\b.*$",
    r"点击(?:链接|这里|此处|下方链接).*",
    r"(?:扫码|扫描二维码|长按(?:识别)?二维码|关注(?:我们的)?(?:微信)?公众号).*",
    r"(?:回复?\s?[a-z]{1,2}\s?退订|退订请?回复?\s?[a-z]{1,2}|拒收请回复?\s?[a-z]{1,2})",
    r"^[ \t]*(?:广告|推广)[ \t]*$",
)

PROFILES: dict[str, CleanConfig] = {
    "none": CleanConfig(nfkc=False, fullwidth=False, control_chars=False, html=False, urls=False, whitespace=False),
    "basic": CleanConfig(),
    "web": CleanConfig(emails=True, boilerplate=WEB_BOILERPLATE),
    "zh": CleanConfig(traditional_to_simplified=True),
}


def config_from_profile(name: str) -> CleanConfig:
    """A built-in profile: ``none`` (no step), ``basic`` (the defaults), ``web`` (basic + e-mails +
    English and Chinese ad/unsubscribe/"click here" boilerplate) or ``zh`` (basic + traditional to
    simplified Chinese)."""
    if name not in PROFILES:
        raise InputError("clean", None, f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]
