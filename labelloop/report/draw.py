"""How the report draws: matplotlib figures saved as SVG to inline in the page (no image files, no network), through
matplotlib's object API rather than pyplot, so drawing changes no global backend or state.

Every artist that carries data gets an SVG id containing ``-data-`` (the browser test counts them: a plot
drawn from no data has none); each figure hashes its SVG ids with its own key, so two inline figures never
share a clip path.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib.figure import Figure

from .timeline import Timeline

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
_HEADER = re.compile(r"^.*?(?=<svg)", re.S)


@dataclass
class Plot:
    key: str
    title: str
    svg: str
    points: int  # data points drawn


class Marks:
    """Gives each data artist of one figure its ``<key>-data-<n>`` id and counts the points drawn."""

    def __init__(self, key: str) -> None:
        self.key, self.count, self.points = key, 0, 0

    def __call__(self, artists: Any, points: int) -> None:
        for artist in artists if isinstance(artists, (list, tuple)) or hasattr(artists, "patches") else [artists]:
            self.count += 1
            artist.set_gid(f"{self.key}-data-{self.count}")
        self.points += points


def figure(key: str, title: str, draw: Callable[[Any, Marks], None], size: tuple[float, float] = (6.4, 3.2),
            grid: tuple[int, int] = (1, 1)) -> Plot:  # fmt: skip
    """A figure of ``grid`` axes drawn by ``draw(axes, marks)``, as SVG (no pyplot: no global state, no GUI)."""
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": 9}):
        drawing = Figure(figsize=size)
        axes = drawing.subplots(*grid)
        marks = Marks(key)
        draw(axes, marks)
        drawing.tight_layout()
        buffer = io.StringIO()
        drawing.savefig(buffer, format="svg")
    return Plot(key, title, _HEADER.sub("", buffer.getvalue(), count=1), marks.points)


def time_axis(ax: Any, timeline: Timeline) -> None:
    """Dates on the x axis (UTC), spanning the timeline's buckets even when there is only one."""
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(timeline.starts[0], timeline.starts[-1] + timeline.width)
