"""Events over time in as many buckets as a plot can show: the bucket width is the smallest round width (a
second up to a week) that spans the project's whole history in at most ``max_buckets`` buckets, so a test
that ran for ten seconds and a project that ran for a year both get a readable axis."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .._time import parse_time

WIDTHS = [timedelta(seconds=s) for s in (1, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 43200, 86400)]
WIDTHS += [timedelta(days=7), timedelta(days=30)]


@dataclass
class Timeline:
    """Counts (or sums) per bucket for each named series; ``starts[i]`` begins bucket ``i``."""

    starts: list[datetime]
    width: timedelta
    values: dict[str, list[float]] = field(default_factory=dict)

    def cumulative(self, name: str) -> list[float]:
        total, out = 0.0, []
        for value in self.values[name]:
            total += value
            out.append(total)
        return out

    @property
    def width_label(self) -> str:
        seconds = int(self.width.total_seconds())
        for unit, size in (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size and seconds % size == 0:
                count = seconds // size
                return f"{count} {unit}s" if count > 1 else unit
        return f"{seconds} s"


def bucket(series: Mapping[str, Iterable[tuple[str, float]]], max_buckets: int = 48) -> Timeline:
    """``series``: name → (ISO time, amount) pairs; the same buckets for every series."""
    parsed = {name: [(parse_time(t), amount) for t, amount in rows] for name, rows in series.items()}
    moments = [t for rows in parsed.values() for t, _ in rows]
    if not moments:
        return Timeline([], WIDTHS[0], {name: [] for name in series})
    first, last = min(moments), max(moments)
    width = next((w for w in WIDTHS if (last - first) / w < max_buckets), WIDTHS[-1])
    origin = datetime.fromtimestamp(first.timestamp() // width.total_seconds() * width.total_seconds(), UTC)
    count = int((last - origin) / width) + 1
    values = {name: [0.0] * count for name in series}
    for name, rows in parsed.items():
        for t, amount in rows:
            values[name][int((t - origin) / width)] += amount
    return Timeline([origin + i * width for i in range(count)], width, values)
