"""Finding personal data (PII) in text: validated patterns, plus Presidio for people and addresses.

E-mail addresses, phone numbers, Chinese resident IDs, bank cards and IP addresses are found with
validated patterns (checksums, dates, ``ipaddress``); people and addresses through Presidio when it is
installed and asked for. ``phonenumbers`` (international numbers) and ``presidio_analyzer`` are imported
only when used.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

TYPES = ("email", "phone", "cn_id", "bank_card", "ip", "person", "address")
_NER_ENTITIES = {"person": "PERSON", "address": "LOCATION"}  # our type -> Presidio entity

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)
_CN_MOBILE = re.compile(r"(?<![0-9+])(?:(?:\+|00)86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])")
_CN_MOBILE_DIGITS = re.compile(r"(?:0086|86)?1[3-9][0-9]{9}")
_CN_ID = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")
_CN_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_CARD = re.compile(r"(?<![0-9])(?:[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,4})?|[0-9]{13,19})(?![0-9])")
_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z_:.])(?:[0-9A-Fa-f]{0,4}:){2,8}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![0-9A-Za-z_:]|\.[0-9])"
)
_ANY_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Finding:
    """One piece of PII: its type, its span in the scanned text and what found it."""

    type: str  # one of TYPES
    start: int  # Python str offsets into the text scanned
    end: int
    detector: str  # e.g. "regex:email", "phonenumbers", "cn_id:checksum", "luhn", "ipaddress", "presidio:PERSON"


def detect(
    text: str,
    types: Iterable[str] = ("email", "phone", "cn_id", "bank_card", "ip"),
    *,
    region: str = "CN",
    ner: bool = False,
) -> list[Finding]:
    """Non-overlapping findings of ``types``, sorted by start; on overlap the longer wins, ties go by TYPES order.

    ``region`` is the default region for numbers without a country code; ``person`` and ``address`` are found
    only with ``ner=True`` and Presidio installed.
    """
    wanted = _check_types(types)
    candidates = [f for kind in TYPES if kind in wanted and kind in _DETECTORS for f in _DETECTORS[kind](text, region)]
    if ner and wanted & _NER_ENTITIES.keys():
        candidates += _presidio(text, wanted)
    return _resolve(candidates)


# --- detectors: each yields candidate findings, possibly overlapping -------------------------------------


def _detect_email(text: str, region: str) -> Iterator[Finding]:
    for match in _EMAIL.finditer(text):
        yield Finding("email", match.start(), match.end(), "regex:email")


def _detect_phone(text: str, region: str) -> Iterator[Finding]:
    for match in _CN_MOBILE.finditer(text):
        yield Finding("phone", match.start(), match.end(), "regex:phone")
    if not _ANY_DIGIT.search(text):
        return
    try:
        import phonenumbers
    except ImportError:  # optional: without it only Chinese mobiles are found
        return
    for number in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        yield Finding("phone", number.start, number.end, "phonenumbers")


def _detect_cn_id(text: str, region: str) -> Iterator[Finding]:
    for match in _CN_ID.finditer(text):
        if _is_cn_id(match.group()):
            yield Finding("cn_id", match.start(), match.end(), "cn_id:checksum")


def _detect_bank_card(text: str, region: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if _is_card(digits):
            yield Finding("bank_card", match.start(), match.end(), "luhn")


def _detect_ip(text: str, region: str) -> Iterator[Finding]:
    for pattern, parse in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for match in pattern.finditer(text):
            if _parses(parse, match.group()) and match.group() != "::":
                yield Finding("ip", match.start(), match.end(), "ipaddress")


_DETECTORS: dict[str, Callable[[str, str], Iterable[Finding]]] = {
    "email": _detect_email,
    "phone": _detect_phone,
    "cn_id": _detect_cn_id,
    "bank_card": _detect_bank_card,
    "ip": _detect_ip,
}


def _presidio(text: str, wanted: set[str]) -> list[Finding]:
    """People and addresses from Presidio's analyzer (English models); none if it is not installed."""
    engine = _analyzer()
    if engine is None:
        return []
    by_entity = {_NER_ENTITIES[kind]: kind for kind in wanted & _NER_ENTITIES.keys()}
    results = engine.analyze(text=text, language="en", entities=list(by_entity))
    return [
        Finding(by_entity[r.entity_type], r.start, r.end, f"presidio:{r.entity_type}")
        for r in results
        if r.entity_type in by_entity and 0 <= r.start < r.end <= len(text)
    ]


@functools.cache
def _analyzer() -> Any:
    """One Presidio AnalyzerEngine per process (it loads a spaCy model), or None when Presidio is missing."""
    try:
        from presidio_analyzer import AnalyzerEngine
    except ImportError:
        return None
    return AnalyzerEngine()


# --- validators ------------------------------------------------------------------------------------------


def _is_cn_id(value: str) -> bool:
    """ISO 7064 MOD 11-2 check character and a real birth date (YYYYMMDD at 7-14) from 1900 to today."""
    total = sum(int(digit) * weight for digit, weight in zip(value, _CN_ID_WEIGHTS))
    if "10X98765432"[total % 11] != value[17].upper():
        return False
    try:
        born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= born <= datetime.date.today()


def _is_card(digits: str) -> bool:
    """13-19 digits, not starting with 0, passing Luhn, and not a Chinese ID or mobile number."""
    if not 13 <= len(digits) <= 19 or digits[0] == "0":
        return False
    if (len(digits) == 18 and _is_cn_id(digits)) or _CN_MOBILE_DIGITS.fullmatch(digits):
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        n = int(digit) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _parses(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _check_types(types: Iterable[str]) -> set[str]:
    wanted = set(types)
    unknown = wanted - set(TYPES)
    if unknown:
        raise ValueError(f"unknown PII type(s) {sorted(unknown)}; expected some of {TYPES}")
    return wanted


def _resolve(candidates: list[Finding]) -> list[Finding]:
    """Keep non-overlapping findings: longest first, then by TYPES order, then earliest; sorted by start."""
    starts: list[int] = []
    kept: list[Finding] = []
    for finding in sorted(candidates, key=lambda f: (f.start - f.end, TYPES.index(f.type), f.start)):
        i = bisect.bisect(starts, finding.start)
        if (i and kept[i - 1].end > finding.start) or (i < len(kept) and kept[i].start < finding.end):
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept


# --- maskers ---------------------------------------------------------------------------------------------
