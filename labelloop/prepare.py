"""Ingest-time hygiene: clean the text, then find and mask PII, before anything else sees the item.

The stored ``items.text`` is what gets labeled: cleaned, and with PII masked when ``pii`` is on, so the
model, the review app and every export only ever see the masked text. The original is kept: in
``items.original`` when only cleaning changed it, or sealed in ``pii_vault`` (with the placeholder
mapping) under a passphrase the user gives in an environment variable when PII is on. The audit trail
records which cleaning steps changed each item and where each PII detector fired (type, offsets in the
stored text, detector, action), never the value.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._actor import actor_or_default
from .errors import InputError, ProjectError, SpecError
from .spec import CleanSettings, PiiSettings, TaskSpec
from .store import Store


@dataclass
class Prepared:
    """One item's text after hygiene, with what happened to it."""

    text: str
    original: str | None = None  # the raw text, when it changed and PII is off
    cleaning: list[str] = field(default_factory=list)  # cleaning steps that changed it
    findings: list[tuple[Any, str]] = field(default_factory=list)  # (pii.Finding in ``text``, action)
    sealed: bytes | None = None  # original and placeholder mapping, encrypted (PII on)


@dataclass
class HygieneReport:
    """What cleaning and PII masking did to a file: counts by step, reason and type, with examples."""

    cleaning: dict[str, Any] = field(default_factory=dict)
    filtered: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"cleaning": self.cleaning, "filtered": dict(self.filtered), "pii": dict(self.pii)}


class Preparer:
    """Applies a task's ``clean`` and ``pii`` settings (``profile`` overrides the spec's cleaning profile)."""

    def __init__(
        self, spec: TaskSpec, store: Store, profile: str | None = None, environ: Mapping[str, str] | None = None
    ):
        from . import clean

        settings = spec.clean or (CleanSettings(profile=profile) if profile else None)
        self.config = _clean_config(settings, profile) if settings else None
        self.pii = spec.pii if spec.pii and spec.pii.types else None
        self.key = vault_key(store, self.pii, os.environ if environ is None else environ) if self.pii else None
        self.cleaning = clean.CleaningReport() if self.config else None
        self.report = HygieneReport()

    @property
    def active(self) -> bool:
        return self.config is not None or self.pii is not None

    def __call__(self, text: str) -> Prepared | str:
        """The prepared text, or the reason it is filtered out (too short, too long, another language)."""
        from . import clean

        result = Prepared(text)
        if self.config is not None:
            cleaned = clean.clean(text, self.config)
            assert self.cleaning is not None, "made with the config"
            self.cleaning.add(text, cleaned)
            if cleaned.rejected:
                self.report.filtered[cleaned.rejected] += 1
                return cleaned.rejected
            result = Prepared(cleaned.text, text if cleaned.changed else None, cleaned.changed)
        if self.pii is not None:
            result = self._mask(text, result, self.pii)
        return result

    def _mask(self, raw: str, result: Prepared, settings: PiiSettings) -> Prepared:
        from . import pii

        assert self.key is not None, "made with the pii settings"
        modes: dict[str, str] = dict(settings.types.items())  # type -> mask, placeholder or keep
        masked = pii.mask(result.text, modes, region=settings.region, ner=settings.ner)
        self.report.pii.update(f.type for f in masked.findings)
        sealed = self.key.seal({"original": raw, **pii.PseudonymVault.mapping(masked)}) if masked.findings else None
        return Prepared(
            masked.text, None, result.cleaning + (["pii"] if masked.findings else []), _shifted(masked, modes), sealed
        )

    def finish(self) -> HygieneReport:
        if self.cleaning is not None:
            self.report.cleaning = self.cleaning.to_dict()
        return self.report


def _clean_config(settings: CleanSettings, profile: str | None) -> Any:
    from . import clean

    base = clean.config_from_profile(profile or settings.profile)
    overrides: dict[str, Any] = {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in settings.model_dump(exclude={"profile"}).items()
        if v is not None
    }
    return dataclasses.replace(base, **overrides)


def vault_key(store: Store, settings: PiiSettings, environ: Mapping[str, str] | None = None) -> Any:
    """The project's PII key from the passphrase in ``settings.key_env``: made (with a new salt) on first use,
    then checked against the project's sealed check value, so one project never mixes two keys."""
    from .pii import VaultKey

    environ = os.environ if environ is None else environ
    passphrase = environ.get(settings.key_env, "")
    if not passphrase:
        raise SpecError(
            "labelloop.yaml",
            None,
            "pii.key_env",
            f"set {settings.key_env} to a passphrase: with PII on, the original text and the placeholders"
            " are stored encrypted with it",
        )
    stored = store.pii_key()
    if stored is None:
        salt = os.urandom(16)
        key = VaultKey(passphrase, salt)
        store.save_pii_key(salt, key.check_token())
        return key
    key = VaultKey(passphrase, stored["salt"])
    if not key.verify(stored["check_token"]):
        raise SpecError("labelloop.yaml", None, "pii.key_env", f"{settings.key_env} is not this project's passphrase")
    return key


def _shifted(masked: Any, modes: Mapping[str, str]) -> list[tuple[Any, str]]:
    """Each finding with its offsets moved into the masked text, and what was done to it."""
    from .pii import Finding

    out, delta = [], 0
    for finding, replacement in masked.replacements:
        start = finding.start + delta
        out.append((Finding(finding.type, start, start + len(replacement), finding.detector), modes[finding.type]))
        delta += len(replacement) - (finding.end - finding.start)
    return out


def reveal(store: Store, spec: TaskSpec, item_id: str, actor: str | None = None) -> dict[str, Any]:
    """The original text and placeholder values of one item, for the key holder (the passphrase in the
    variable ``pii.key_env`` names); recorded in the audit log as ``actor`` (default: the OS user)."""
    settings = spec.pii
    if settings is None:
        raise ProjectError("this project has no pii block: nothing was masked")
    sealed, findings = store.pii_entry(item_id)
    if sealed is None:
        raise InputError("pii", None, f"no sealed original for item {item_id!r}")
    try:
        opened = vault_key(store, settings).open(sealed)
    except ValueError:
        raise InputError("pii", None, f"item {item_id!r}: damaged vault entry") from None
    store.audit(actor_or_default(actor), "pii-reveal", item_id, detail=json.dumps([dict(f) for f in findings]))
    return {"original": opened.pop("original"), "placeholders": opened, "findings": [dict(f) for f in findings]}
