"""PII detection, masking, placeholders and the encrypted pseudonym vault (labelloop.pii)."""

from __future__ import annotations

import random
import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelloop.errors import MissingExtra
from labelloop.pii import TYPES, Finding, PseudonymVault, detect, finders, mask, unmask

ID = "11010519491231002X"  # the standard valid example of a Chinese resident ID
SENTENCE = f"请联系张三，电话13812345678，邮箱zhang.san@example.com，身份证号{ID}"


def iso7064_valid(value: str) -> bool:
    """ISO 7064 MOD 11-2 straight from its definition: sum of a_i * 2^(17-i) over all 18 chars is 1 mod 11."""
    numbers = [10 if c in "Xx" else int(c) for c in value]
    return sum(n * 2 ** (17 - i) for i, n in enumerate(numbers)) % 11 == 1


def with_check(first17: str) -> str:
    return next(first17 + c for c in "0123456789X" if iso7064_valid(first17 + c))


def luhn_valid(digits: str) -> bool:
    doubled = [int(c) * (1 + i % 2) for i, c in enumerate(reversed(digits))]
    return sum(sum(map(int, str(n))) for n in doubled) % 10 == 0


def found(text: str, kind: str, **kwargs) -> list[str]:
    return [text[f.start : f.end] for f in detect(text, (kind,), **kwargs)]


@pytest.fixture
def no_phonenumbers(monkeypatch):
    monkeypatch.setitem(sys.modules, "phonenumbers", None)


# --- detectors -------------------------------------------------------------------------------------------


def test_the_example_id_is_valid_by_an_independent_checksum():
    assert iso7064_valid(ID) and with_check(ID[:17]) == ID
    assert not iso7064_valid(ID[:17] + "1")


def test_chinese_sentence_with_several_types():
    findings = detect(SENTENCE)
    assert [(f.type, SENTENCE[f.start : f.end], f.detector) for f in findings] == [
        ("phone", "13812345678", "regex:phone"),
        ("email", "zhang.san@example.com", "regex:email"),
        ("cn_id", ID, "cn_id:checksum"),
    ]


def test_mixed_english_sentence():
    text = "Mail a.b+tag@mail.example.co.uk or call +1 650-253-0000; card 4111-1111-1111-1111 from 10.0.0.1."
    assert [(f.type, text[f.start : f.end]) for f in detect(text)] == [
        ("email", "a.b+tag@mail.example.co.uk"),
        ("phone", "+1 650-253-0000"),
        ("bank_card", "4111-1111-1111-1111"),
        ("ip", "10.0.0.1"),
    ]


@pytest.mark.parametrize("text", ["x@y.c", "user@localhost", "@example.com", "a..b@example.com", "name@-bad.com"])
def test_email_negatives(text):
    assert found(text, "email") == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("电话13812345678。", "13812345678"),
        ("手机 138 1234 5678", "138 1234 5678"),
        ("手机：138-1234-5678", "138-1234-5678"),
        ("+86 138 1234 5678", "+86 138 1234 5678"),
        ("008613912345678", "008613912345678"),
        ("座机010-12345678", "010-12345678"),
        ("call +44 20 7946 0958 today", "+44 20 7946 0958"),
    ],
)
def test_phone_positives(text, value):
    assert found(text, "phone") == [value]


@pytest.mark.parametrize("text", ["2024-01-02", "日期2024-01-02 12:30", "12812345678", "138123456789",
                                  "订单号 20240102"])
def test_phone_negatives(text):
    assert found(text, "phone") == []


def test_without_phonenumbers_chinese_mobiles_are_still_found(no_phonenumbers):
    text = "call +1 650-253-0000 or +86 138 1234 5678"
    assert found(text, "phone") == ["+86 138 1234 5678"]
    assert [f.detector for f in detect(text)] == ["regex:phone"]
    assert mask(text, {"phone": "mask"}).text == "call +1 650-253-0000 or +86 138 **** 5678"


def test_cn_id_checksum_and_date():
    wrong_check = ID[:17] + "1"
    impossible_date = with_check("110105" + "19491331" + "002")  # month 13
    future = with_check("110105" + "29991231" + "002")
    assert iso7064_valid(impossible_date) and iso7064_valid(future)
    assert found(f"身份证{ID}号", "cn_id") == [ID]
    assert found(ID.lower(), "cn_id") == [ID.lower()]
    for text in (wrong_check, impossible_date, future, "9" + ID, ID[:17] + "05"):
        assert found(text, "cn_id") == []


def test_bank_cards():
    for card in ("4111 1111 1111 1111", "4111111111111111", "4111-1111-1111-1111", "6011 0009 9013 9424"):
        assert found(f"卡号{card}，", "bank_card") == [card]
    assert not luhn_valid("4111111111111112")
    numbers = [str(random.Random(seed).randrange(10**15, 10**16)) for seed in range(300)]
    assert [n for n in numbers if found(n, "bank_card")] == [n for n in numbers if luhn_valid(n)]
    assert found("4111111111111112", "bank_card") == []
    assert found("9" + "4111111111111111" + "999", "bank_card") == []  # inside a longer digit run
    assert found("0000000000000000", "bank_card") == []
    unionpay19 = next(d for d in ("622202123456789012" + str(c) for c in range(10)) if luhn_valid(d))
    assert found(unionpay19, "bank_card") == [unionpay19]


def test_a_cn_id_or_mobile_passing_luhn_is_not_a_card():
    ids = (with_check(ID[:14] + f"{n:03d}") for n in range(1000))
    luhn_id = next(i for i in ids if i[-1] != "X" and luhn_valid(i))
    luhn_phone = next(p for p in (f"86138{n:08d}" for n in range(100)) if luhn_valid(p))
    assert found(luhn_id, "bank_card") == [] and detect(luhn_id, TYPES)[0].type == "cn_id"
    assert found(luhn_phone, "bank_card") == []


@pytest.mark.parametrize(
    "text, value",
    [("IP是192.168.1.23。", "192.168.1.23"), ("::1", "::1"), ("到 2001:db8::1 的连接", "2001:db8::1"),
     ("mapped ::ffff:192.0.2.1 here", "::ffff:192.0.2.1"), ("host 10.0.0.1.", "10.0.0.1"),
     ("fe80::1ff:fe23:4567:890a", "fe80::1ff:fe23:4567:890a")],
)
def test_ip_positives(text, value):
    assert found(text, "ip") == [value]


@pytest.mark.parametrize(
    "text", ["version 1.2.3.4.5", "999.1.1.1", "192.168.01.1", "v1.2.3.4", "at 12:30:45", "std::vector", "a :: b",
             "00:1a:2b:3c:4d:5e"],
)
def test_ip_negatives(text):
    assert found(text, "ip") == []


def test_unknown_type_or_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown PII type"):
        detect("x", ("passport",))
    with pytest.raises(ValueError, match="unknown mask mode"):
        mask("x", {"email": "hash"})


# --- person/address through Presidio ---------------------------------------------------------------------


@pytest.fixture
def fresh_analyzer():
    finders._analyzer.cache_clear()
    yield
    finders._analyzer.cache_clear()


def test_ner_without_presidio_finds_nothing(monkeypatch, fresh_analyzer):
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    assert detect("Zhang San lives in Beijing", ("person", "address", "email"), ner=True) == []


def test_ner_with_presidio(monkeypatch, fresh_analyzer):
    class Result:
        def __init__(self, entity_type, start, end):
            self.entity_type, self.start, self.end = entity_type, start, end

    class AnalyzerEngine:
        def analyze(self, text, language, entities):
            assert language == "en" and sorted(entities) == ["LOCATION", "PERSON"]
            return [Result("PERSON", 0, 9), Result("LOCATION", 19, 26), Result("PERSON", 50, 60)]

    monkeypatch.setitem(sys.modules, "presidio_analyzer", types.SimpleNamespace(AnalyzerEngine=AnalyzerEngine))
    text = "Zhang San lives in Beijing, a@b.cn"
    assert detect(text, ("person", "address"), ner=False) == []
    assert [(f.type, f.detector) for f in detect(text, ("person", "address", "email"), ner=True)] == [
        ("person", "presidio:PERSON"), ("address", "presidio:LOCATION"), ("email", "regex:email")]
    assert mask(text, {"person": "mask", "address": "placeholder"}, ner=True).text == (
        "Z**** *** lives in <ADDRESS_1>, a@b.cn")


# --- mask ------------------------------------------------------------------------------------------------


def test_mask_mode_exact_outputs():
    text = f"{SENTENCE}，卡4111 1111 1111 1111，IP 192.168.1.23，v6 2001:db8::1，+86 138 1234 5678"
    assert mask(text, dict.fromkeys(TYPES, "mask")).text == (
        "请联系张三，电话138****5678，邮箱z********@example.com，身份证号**************002X，"
        "卡**** **** **** 1111，IP *.*.*.23，v6 *:*::1，+86 138 **** 5678"
    )


def test_mask_international_phone_keeps_country_code():
    assert mask("call +1 650-253-0000", {"phone": "mask"}).text == "call +1 650-***-0000"
    assert mask("0086 139 1234 5678", {"phone": "mask"}).text == "0086 139 **** 5678"


def test_only_listed_types_are_touched_and_keep_is_reported():
    result = mask(SENTENCE, {"phone": "placeholder", "email": "keep"})
    assert result.text == "请联系张三，电话<PHONE_1>，邮箱zhang.san@example.com，身份证号" + ID
    assert [f.type for f in result.findings] == ["phone", "email"]
    assert [new for _, new in result.replacements] == ["<PHONE_1>", "zhang.san@example.com"]


def test_placeholders_are_consistent_within_a_text():
    text = "A 13812345678, B 13912345678, A again 13812345678, mail a@x.com, a@x.com; 138 1234 5678"
    result = mask(text, {"phone": "placeholder", "email": "placeholder"})
    assert result.text == (
        "A <PHONE_1>, B <PHONE_2>, A again <PHONE_1>, mail <EMAIL_1>, <EMAIL_1>; <PHONE_3>")
    assert PseudonymVault.mapping(result) == {
        "<PHONE_1>": "13812345678", "<PHONE_2>": "13912345678", "<PHONE_3>": "138 1234 5678", "<EMAIL_1>": "a@x.com"}


def test_offsets_refer_to_the_original_text():
    result = mask(SENTENCE, {"phone": "placeholder", "email": "mask", "cn_id": "placeholder"})
    assert result.findings == [finding for finding, _ in result.replacements]
    assert [SENTENCE[f.start : f.end] for f in result.findings] == ["13812345678", "zhang.san@example.com", ID]


def test_unmask_round_trip_and_placeholders_already_in_the_text():
    text = SENTENCE + "，literal <PHONE_1> stays; 13912345678"
    result = mask(text, dict.fromkeys(TYPES, "placeholder"))
    assert "<PHONE_2>" in result.text and "<PHONE_3>" in result.text
    assert unmask(result.text, PseudonymVault.mapping(result)) == text
    assert unmask("nothing", {}) == "nothing"


def test_mapping_holds_only_placeholder_replacements():
    result = mask(SENTENCE, {"phone": "placeholder", "email": "mask", "cn_id": "keep"})
    assert PseudonymVault.mapping(result) == {"<PHONE_1>": "13812345678"}
    assert "13812345678" not in repr(mask(SENTENCE, {"phone": "placeholder"}))  # nor is the original text


# --- vault -----------------------------------------------------------------------------------------------


def test_vault_round_trip_and_wrong_passphrase():
    mapping = PseudonymVault.mapping(mask(SENTENCE, dict.fromkeys(TYPES, "placeholder")))
    blob = PseudonymVault.seal(mapping, "correct horse")
    assert isinstance(blob, bytes) and blob != PseudonymVault.seal(mapping, "correct horse")  # fresh salt
    for value in ("13812345678", "zhang.san", ID, "张三"):
        assert value.encode() not in blob
    assert PseudonymVault.open(blob, "correct horse") == mapping
    with pytest.raises(ValueError, match="wrong key or damaged data"):
        PseudonymVault.open(blob, "wrong horse")


@pytest.mark.parametrize("blob", [b"", b"garbage", b"labelloop-pii-v1:AAAA:xyz",
                                  b"labelloop-pii-v1:" + b"A" * 22 + b"==:xyz"])
def test_vault_damaged_blob(blob):
    with pytest.raises(ValueError, match="wrong key or damaged data"):
        PseudonymVault.open(blob, "pw")


def test_vault_without_cryptography(monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography.fernet", None)
    with pytest.raises(MissingExtra, match=r"the pseudonym vault needs the pii extra: pip install 'labelloop\[pii\]'"):
        PseudonymVault.seal({"<PHONE_1>": "13812345678"}, "pw")


# --- properties ------------------------------------------------------------------------------------------

PII_ALPHABET = "0123456789 -.:+@abcdefX中文，"


def check_invariants(text: str) -> None:
    findings = detect(text, TYPES)
    assert all(isinstance(f, Finding) and 0 <= f.start < f.end <= len(text) for f in findings)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:]))
    assert mask(text, dict.fromkeys(TYPES, "keep")).text == text
    assert len(mask(text, dict.fromkeys(TYPES, "mask")).findings) == len(findings)
    result = mask(text, dict.fromkeys(TYPES, "placeholder"))
    assert unmask(result.text, PseudonymVault.mapping(result)) == text


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_any_text(text):
    check_invariants(text)


@settings(deadline=None, max_examples=150)
@given(st.text(alphabet=PII_ALPHABET, max_size=60))
def test_pii_like_text(text):
    check_invariants(text)
