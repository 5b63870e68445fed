"""Find personal data (PII) in text, mask it, and keep a reversible, encrypted pseudonym map.

``detect`` finds e-mail addresses, phone numbers, Chinese resident IDs, bank cards and IP addresses with
validated patterns (checksums, dates, ``ipaddress``), plus people and addresses through Presidio when it is
installed and asked for. ``mask`` rewrites the findings per type (partial mask, numbered placeholder or
keep); ``unmask`` puts placeholders back from a mapping, which ``PseudonymVault`` seals with a passphrase.
``phonenumbers`` (international numbers), ``cryptography`` (the vault) and ``presidio_analyzer`` (names,
addresses) are imported only when used.
"""

from __future__ import annotations

import base64
import bisect
import datetime
import functools
import ipaddress
import itertools
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

TYPES = ("email", "phone", "cn_id", "bank_card", "ip", "person", "address")
MODES = ("mask", "placeholder", "keep")
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
_VAULT_MAGIC = b"labelloop-pii-v1"
_KDF_ITERATIONS = 390_000
_DAMAGED = "wrong key or damaged data"


@dataclass(frozen=True)
class Finding:
    """One piece of PII: its type, its span in the scanned text and what found it."""

    type: str  # one of TYPES
    start: int  # Python str offsets into the text scanned
    end: int
    detector: str  # e.g. "regex:email", "phonenumbers", "cn_id:checksum", "luhn", "ipaddress", "presidio:PERSON"


@dataclass
class Masked:
    """The masked text, with the findings (offsets in the original text) and what replaced each."""

    text: str
    findings: list[Finding]
    replacements: list[tuple[Finding, str]]
    original: str = field(repr=False, kw_only=True)  # the unmasked text, for PseudonymVault.mapping


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


class PseudonymVault:
    """Reversible placeholder -> original value maps, encrypted (Fernet) with a key derived from a passphrase.

    The key comes from PBKDF2-HMAC-SHA256 over the passphrase with a random 16-byte salt and 390,000
    iterations; the blob is ``labelloop-pii-v1:<salt, base64>:<Fernet token>``. Plain values are never stored.
    """

    @staticmethod
    def seal(mapping: dict[str, str], passphrase: str) -> bytes:
        """Encrypt ``mapping`` under ``passphrase``; each call uses a fresh salt."""
        if not passphrase:
            raise ValueError("the passphrase must not be empty")
        salt = os.urandom(16)
        token = _cipher(passphrase, salt)[0].encrypt(json.dumps(mapping, ensure_ascii=False).encode())
        return b":".join([_VAULT_MAGIC, base64.urlsafe_b64encode(salt), token])

    @staticmethod
    def open(blob: bytes, passphrase: str) -> dict[str, str]:
        """Decrypt a blob from ``seal``; ValueError("wrong key or damaged data") if it cannot be."""
        magic, salt, token = (blob.split(b":") + [b"", b""])[:3]
        if magic != _VAULT_MAGIC or not re.fullmatch(rb"[A-Za-z0-9_-]{22}==", salt):
            raise ValueError(_DAMAGED)
        fernet, invalid_token = _cipher(passphrase, base64.urlsafe_b64decode(salt))
        try:
            mapping = json.loads(fernet.decrypt(token))
        except (invalid_token, ValueError) as err:
            raise ValueError(_DAMAGED) from err
        if not (isinstance(mapping, dict) and all(isinstance(value, str) for value in mapping.values())):
            raise ValueError(_DAMAGED)
        return mapping

    @staticmethod
    def mapping(masked: Masked) -> dict[str, str]:
        """Placeholder -> original value, for the placeholder replacements of ``masked``."""
        return {
            new: masked.original[finding.start : finding.end]
            for finding, new in masked.replacements
            if re.fullmatch(rf"<{finding.type.upper()}_\d+>", new)
        }


class VaultKey:
    """One key derived from a passphrase and a project's salt, for sealing many entries: deriving costs about
    a third of a second, so a project derives it once and checks it against a sealed known value."""

    CHECK = "labelloop-pii-key-check"

    def __init__(self, passphrase: str, salt: bytes):
        if not passphrase:
            raise ValueError("the passphrase must not be empty")
        self._fernet, self._invalid = _cipher(passphrase, salt)

    def seal(self, mapping: dict[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(mapping, ensure_ascii=False).encode())

    def open(self, token: bytes) -> dict[str, str]:
        """ValueError("wrong key or damaged data") if ``token`` was not sealed with this key."""
        try:
            mapping = json.loads(self._fernet.decrypt(token))
        except (self._invalid, ValueError) as err:
            raise ValueError(_DAMAGED) from err
        if not isinstance(mapping, dict):
            raise ValueError(_DAMAGED)
        return mapping

    def check_token(self) -> bytes:
        return self.seal({"check": self.CHECK})

    def verify(self, token: bytes) -> bool:
        """Whether ``token`` (from :meth:`check_token`) was made with this key."""
        try:
            return self.open(token).get("check") == self.CHECK
        except ValueError:
            return False


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
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        yield Finding("phone", match.start, match.end, "phonenumbers")


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


def _cipher(passphrase: str, salt: bytes) -> tuple[Any, type[Exception]]:
    """A Fernet cipher keyed by PBKDF2-HMAC-SHA256(passphrase, salt), and the error a bad token raises."""
    try:
        from cryptography.fernet import Fernet, InvalidToken
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    except ImportError as err:
        raise InputError("pii", None, "the pseudonym vault needs cryptography: pip install 'labelloop[pii]'") from err
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=_KDF_ITERATIONS)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))), InvalidToken
