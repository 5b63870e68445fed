"""An answer's confidence: a value in [0, 1] per item and per field, and how it was found."""

from __future__ import annotations

from dataclasses import dataclass

UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Confidence:
    """An item's confidence in [0, 1] (None when it cannot be computed), its method, and per field."""

    value: float | None
    method: str
    fields: dict[str, float]


NO_CONFIDENCE = Confidence(None, UNAVAILABLE, {})
