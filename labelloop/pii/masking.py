"""Masking PII: each finding rewritten per type (partial mask, numbered placeholder or kept), and back."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .finders import Finding, detect

MODES = ("mask", "placeholder", "keep")


@dataclass
class Masked:
    """The masked text, with the findings (offsets in the original text) and what replaced each."""

    text: str
    findings: list[Finding]
    replacements: list[tuple[Finding, str]]
    original: str = field(repr=False, kw_only=True)  # the unmasked text, for PseudonymVault.mapping


def mask(text: str, modes: Mapping[str, str], *, region: str = "CN", ner: bool = False) -> Masked:
    """Rewrite the PII of the types in ``modes`` (type -> "mask" | "placeholder" | "keep").

    mask: hide letters/digits with '*' but the last four, keeping separators. Phones keep a +CC/00CC prefix
    and the first three (if the national number has 10+ digits) and last four digits; e-mail hides the local
    part but its first character; IP turns each part but the last into one '*'; person/address keep only
    their first character.
    placeholder: ``<PHONE_1>``-style, numbered per type in order of first appearance, one per distinct value.
    keep: unchanged, still reported.
    """
    bad = {mode for mode in modes.values() if mode not in MODES}
    if bad:
        raise ValueError(f"unknown mask mode(s) {sorted(bad)}; expected one of {MODES}")
    findings = detect(text, modes.keys(), region=region, ner=ner)
    placeholders: dict[tuple[str, str], str] = {}
    numbers: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))
    parts, replacements, position = [], [], 0
    for finding in findings:
        value = text[finding.start : finding.end]
        mode = modes[finding.type]
        if mode == "placeholder":
            new = placeholders.get((finding.type, value)) or _new_placeholder(finding.type, text, numbers)
            placeholders[finding.type, value] = new
        else:
            new = value if mode == "keep" else _MASKERS.get(finding.type, _mask_keep_last4)(value)
        parts += [text[position : finding.start], new]
        replacements.append((finding, new))
        position = finding.end
    parts.append(text[position:])
    return Masked("".join(parts), findings, replacements, original=text)


def unmask(text: str, mapping: Mapping[str, str]) -> str:
    """Put the original values back for the placeholders of ``mapping`` found in ``text`` (in one pass)."""
    if not mapping:
        return text
    pattern = "|".join(re.escape(key) for key in sorted(mapping, key=len, reverse=True))
    return re.sub(pattern, lambda match: mapping[match.group()], text)


def _new_placeholder(kind: str, text: str, numbers: Mapping[str, Iterator[int]]) -> str:
    """The next ``<KIND_n>`` for ``kind``, skipping any that the text already contains."""
    return next(name for n in numbers[kind] if (name := f"<{kind.upper()}_{n}>") not in text)


def _hide(value: str, hidden: Iterable[int]) -> str:
    chars = list(value)
    for i in hidden:
        chars[i] = "*"
    return "".join(chars)


def _mask_keep_last4(value: str) -> str:
    return _hide(value, [i for i, c in enumerate(value) if c.isalnum()][:-4])


def _mask_keep_first(value: str) -> str:
    return _hide(value, [i for i, c in enumerate(value) if c.isalnum()][1:])


def _mask_email(value: str) -> str:
    at = value.rindex("@")
    return value[:1] + "*" * (at - 1) + value[at:]


def _mask_ip(value: str) -> str:
    parts = re.split(r"([.:])", value)
    return "".join("*" if i < len(parts) - 1 and i % 2 == 0 and part else part for i, part in enumerate(parts))


def _mask_phone(value: str) -> str:
    """Keep a leading +CC/00CC, then the first three and the last four digits of the national number."""
    digits = [i for i, c in enumerate(value) if c.isdigit()]
    skip = 0
    if value.startswith(("+", "00")):
        skip = 2 * value.startswith("00")
        skip += _calling_code_length("".join(value[i] for i in digits[skip : skip + 3]))
    national = digits[skip:]
    head = 3 if len(national) >= 10 else 0
    return _hide(value, national[head:-4])


def _calling_code_length(digits: str) -> int:
    """Length of the country calling code that ``digits`` starts with (the codes are prefix-free), else 0."""
    try:
        from phonenumbers import COUNTRY_CODE_TO_REGION_CODE as codes
    except ImportError:  # then every phone found with a prefix is a Chinese mobile
        codes = {86: ("CN",)}
    return next((n for n in (1, 2, 3) if digits[:n].isdigit() and int(digits[:n]) in codes), 0)


_MASKERS: dict[str, Callable[[str], str]] = {
    "email": _mask_email,
    "phone": _mask_phone,
    "ip": _mask_ip,
    "person": _mask_keep_first,
    "address": _mask_keep_first,
}
