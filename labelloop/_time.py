"""Times as the store writes them (ISO 8601, UTC) read back as aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: str) -> datetime:
    """An ISO time (with or without its zone, seconds or finer) as an aware UTC datetime."""
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
