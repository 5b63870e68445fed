"""Personal data (PII): find it in text, mask it, and keep a reversible, encrypted pseudonym map.

- :mod:`.finders`: ``detect`` finds e-mail addresses, phone numbers, Chinese resident IDs, bank cards and
  IP addresses with validated patterns, plus people and addresses through Presidio when asked for;
- :mod:`.masking`: ``mask`` rewrites the findings per type (partial mask, numbered placeholder or keep),
  ``unmask`` puts placeholders back from a mapping;
- :mod:`.vault`: ``PseudonymVault`` and ``VaultKey`` seal those mappings with a passphrase.
"""

from __future__ import annotations

from .finders import TYPES, Finding, detect
from .masking import MODES, Masked, mask, unmask
from .vault import PseudonymVault, VaultKey

__all__ = ["MODES", "TYPES", "Finding", "Masked", "PseudonymVault", "VaultKey", "detect", "mask", "unmask"]
