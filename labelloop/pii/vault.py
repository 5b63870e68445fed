"""The sealed originals: placeholder -> value maps encrypted (Fernet) with a key derived from a passphrase.

``cryptography`` (extra ``pii``) is imported only when a vault is used.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

from .._extras import require
from .masking import Masked

_VAULT_MAGIC = b"labelloop-pii-v1"
_KDF_ITERATIONS = 390_000
_DAMAGED = "wrong key or damaged data"


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


def _cipher(passphrase: str, salt: bytes) -> tuple[Any, type[Exception]]:
    """A Fernet cipher keyed by PBKDF2-HMAC-SHA256(passphrase, salt), and the error a bad token raises."""
    fernet = require("cryptography.fernet", "pii", "the pseudonym vault")
    hashes = require("cryptography.hazmat.primitives.hashes", "pii", "the pseudonym vault")
    pbkdf2 = require("cryptography.hazmat.primitives.kdf.pbkdf2", "pii", "the pseudonym vault")
    Fernet, InvalidToken, PBKDF2HMAC = fernet.Fernet, fernet.InvalidToken, pbkdf2.PBKDF2HMAC
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=_KDF_ITERATIONS)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))), InvalidToken
