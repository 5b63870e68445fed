"""The report's plots, one function each, from the gathered facts (:mod:`.facts`); a plot whose data is
missing is not drawn (None), and the page says what would fill it instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .draw import COLOURS, Marks, Plot, figure, time_axis
from .facts import ProjectReport

_SERIES = ("ingested", "labeled", "answered", "adjudicated")


def progress(r: ProjectReport) -> Plot | None:
    t = r.progress
    if not t.starts:
        return None

    def draw(ax: Any, mark: Marks) -> None:
        ends = [s + t.width for s in t.starts]
        order = sorted(t.values, key=lambda name: _SERIES.index(name.split(":")[0]))
        for colour, name in zip(COLOURS, order):
            cumulative = t.cumulative(name)
            if cumulative and cumulative[-1]:
                label = name.replace("labeled:", "labeled by ")
                mark(ax.plot([t.starts[0], *ends], [0, *cumulative], drawstyle="steps-post", marker=".",
                             color=colour, label=label), len(cumulative))  # fmt: skip
        ax.set_ylabel("items (cumulative)")
        ax.legend(fontsize=8)
        time_axis(ax, t)

    return figure("progress", "Progress over time", draw)


def bars(key: str, title: str, counts: Mapping[str, float], xlabel: str, top: int = 12) -> Plot | None:
    shown = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    if not shown or not any(v for _, v in shown):
        return None

    def draw(ax: Any, mark: Marks) -> None:
        names = [name for name, _ in shown][::-1]
        values = [value for _, value in shown][::-1]
        mark(ax.barh(names, values, color=COLOURS[0]), len(values))
        for y, value in enumerate(values):
            ax.annotate(f"{value:g}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel(xlabel)

    return figure(key, title, draw, size=(6.4, 0.5 + 0.28 * len(shown)))


def calls(r: ProjectReport) -> Plot | None:
    t = r.cost.calls
    if not t.starts or not sum(t.values["calls"]):
        return None

    def draw(axes: Any, mark: Marks) -> None:
        left, right = axes
        width = t.width.total_seconds() / 86400 * 0.9
        ok = np.array(t.values["calls"]) - np.array(t.values["errors"])
        mark(left.bar(t.starts, ok, width=width, align="edge", color=COLOURS[0], label="answered"), len(ok))
        if sum(t.values["errors"]):
            failed = left.bar(t.starts, t.values["errors"], bottom=ok, width=width, align="edge", color=COLOURS[3],
                              label="failed")  # fmt: skip
            mark(failed, len(ok))
        left.set_ylabel(f"calls per {t.width_label}")
        left.legend(fontsize=8)
        time_axis(left, t)
        prompt, completion = t.cumulative("prompt"), t.cumulative("completion")
        mark(right.plot(t.starts, prompt, color=COLOURS[1], label="prompt"), len(prompt))
        mark(right.plot(t.starts, completion, color=COLOURS[2], label="completion"), len(completion))
        right.set_ylabel("tokens (cumulative)")
        right.legend(fontsize=8)
        time_axis(right, t)

    return figure("calls", "Calls and tokens", draw, size=(9.6, 3.2), grid=(1, 2))


def latency(r: ProjectReport) -> Plot | None:
    values = r.cost.latencies_ms
    if not values:
        return None

    def draw(ax: Any, mark: Marks) -> None:
        edges = np.histogram_bin_edges(values, bins=min(40, max(5, len(values) // 5)))
        _, _, patches = ax.hist(values, bins=edges, color=COLOURS[0])
        mark(list(patches), len(values))
        for q, style in ((50, "-"), (90, "--"), (99, ":")):
            value = float(np.percentile(values, q))
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"p{q} {value:,.0f} ms")
        ax.set(xlabel="latency of an answered call (ms)", ylabel="calls")
        ax.legend(fontsize=8)

    return figure("latency", "Latency of the model's calls", draw)


def confidence(r: ProjectReport) -> Plot | None:
    c = r.confidence
    if not c.values:
        return None

    def draw(axes: Any, mark: Marks) -> None:
        left, right = axes
        _, _, patches = left.hist(c.values, bins=np.linspace(0, 1, 21), color=COLOURS[0])
        mark(list(patches), len(c.values))
        left.axvline(c.threshold, color=COLOURS[3], linestyle="--", label=f"review threshold {c.threshold:g}")
        left.set(xlabel=f"confidence of {r.labeler}'s current labels", ylabel="items", xlim=(0, 1))
        left.legend(fontsize=8)
        right.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        if c.reliability:
            x = [b["mean_confidence"] for b in c.reliability]
            y = [b["accuracy"] for b in c.reliability]
            sizes = [20 + 180 * b["count"] / c.checked for b in c.reliability]
            mark(right.plot(x, y, color=COLOURS[1]), len(x))
            mark(right.scatter(x, y, s=sizes, color=COLOURS[1], zorder=3), len(x))
            right.set_title(f"{c.checked} items people decided; ECE {c.ece:.3f}", fontsize=9)
        else:
            right.text(0.5, 0.5, "no items decided by people yet", ha="center", va="center", fontsize=9)
        right.set(xlabel="mean confidence (bins of 0.1)", ylabel="agrees with people", xlim=(0, 1), ylim=(0, 1.02))

    return figure("confidence", "Confidence, and how often it is right", draw, size=(9.6, 3.4), grid=(1, 2))


def labeler_parts(r: ProjectReport) -> Plot | None:
    scored = [q for q in r.labelers if q.parts]
    if not scored:
        return None
    parts = sorted({p for q in scored for p in q.parts})[:30]

    def draw(ax: Any, mark: Marks) -> None:
        height = 0.8 / len(scored)
        for i, (colour, q) in enumerate(zip(COLOURS, scored)):
            y = np.arange(len(parts)) + i * height
            values = [q.parts.get(p, np.nan) for p in parts]
            mark(ax.barh(y, values, height=height, color=colour, label=f"{q.name} ({q.checked} items)"), len(parts))
        ax.set_yticks(np.arange(len(parts)) + 0.4 - height / 2, parts)
        ax.invert_yaxis()
        ax.set(xlim=(0, 1.0), xlabel=scored[0].parts_metric)
        ax.legend(fontsize=8, loc="lower right")

    return figure("labelers", "Each labeler against people", draw, size=(6.4, 0.8 + 0.3 * len(parts) * len(scored)))


def confusion(r: ProjectReport) -> Plot | None:
    found = next((q for q in r.labelers if q.name == r.labeler and q.quality is not None), None)
    table = found.quality.details.get("confusion") if found is not None and found.quality else None
    if not table:
        return None
    labels, matrix = table["labels"], np.array(table["matrix"])
    used = matrix.sum(axis=0) + matrix.sum(axis=1)
    keep = sorted(i for i in np.argsort(-used)[:20] if used[i])
    matrix = matrix[np.ix_(keep, keep)]
    names = [labels[i] for i in keep]

    def draw(ax: Any, mark: Marks) -> None:
        mark(ax.imshow(matrix, cmap="Blues"), int(matrix.sum()))
        for (row, col), value in np.ndenumerate(matrix):
            if value:
                colour = "white" if value > matrix.max() / 2 else "black"
                ax.text(col, row, str(value), ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set(xlabel=f"{r.labeler}'s label", ylabel="people's decision")

    side = 2.5 + 0.35 * len(names)
    return figure("confusion", f"Confusion: {r.labeler} against people", draw, size=(side + 1, side))


def throughput(r: ProjectReport) -> Plot | None:
    t = r.people.throughput
    if not t.starts or not r.people.has_answers:
        return None

    def draw(ax: Any, mark: Marks) -> None:
        width = t.width.total_seconds() / 86400 * 0.9
        bottom = np.zeros(len(t.starts))
        for colour, (name, values) in zip(COLOURS * 3, t.values.items()):
            if sum(values):
                mark(ax.bar(t.starts, values, bottom=bottom, width=width, align="edge", color=colour, label=name),
                     len(values))  # fmt: skip
                bottom += np.array(values)
        ax.set_ylabel(f"answers per {t.width_label}")
        ax.legend(fontsize=8, ncol=2)
        time_axis(ax, t)

    return figure("throughput", "Answers per reviewer", draw)


def agreement(r: ProjectReport) -> Plot | None:
    t, rates = r.people.agreement, r.people.match_rates()
    shown = [(s, rate) for s, rate in zip(t.starts, rates) if rate is not None]
    if not shown:
        return None

    def draw(ax: Any, mark: Marks) -> None:
        x = [s + t.width / 2 for s, _ in shown]
        y = [rate for _, rate in shown]
        mark(ax.plot(x, y, marker="o", color=COLOURS[2]), len(y))
        match = r.people.batch_match
        ax.axhline(match, color=COLOURS[3], linestyle="--", label=f"annotation.batch_match {match:g}")
        ax.set(ylim=(0, 1.02), ylabel="items where everyone agreed")
        ax.legend(fontsize=8)
        time_axis(ax, t)

    return figure("agreement", "Agreement between people over time", draw)


def settled(r: ProjectReport) -> Plot | None:
    t = r.people.settled
    if not t.starts or not sum(t.values["adjudicated"]):
        return None

    def draw(ax: Any, mark: Marks) -> None:
        values = t.cumulative("adjudicated")
        ends = [s + t.width for s in t.starts]
        mark(ax.plot([t.starts[0], *ends], [0, *values], drawstyle="steps-post", marker="o", color=COLOURS[4]),
             len(values))  # fmt: skip
        ax.set(ylabel="disputes settled (cumulative)")
        time_axis(ax, t)

    return figure("settled", "Disputes settled by experts", draw)


def effort(r: ProjectReport) -> Plot | None:
    sim = r.simulation
    if not sim or not any(sim.get("methods", {}).values()):
        return None

    def draw(ax: Any, mark: Marks) -> None:
        for colour, marker, (method, points) in zip(COLOURS, "o^sDvPX", sim["methods"].items()):
            if points:
                x = [p["effort"] for p in points]
                y = [p["dataset_accuracy"] for p in points]
                mark(ax.plot(x, y, marker=marker, linestyle="-", color=colour, label=method), len(x))
        for target in sim["targets"]:
            ax.axhline(target, color="grey", linewidth=0.6, linestyle=":")
        ax.set(xlabel="human effort (share of items a person touched)", ylabel="dataset accuracy", xlim=(0, 1.05))
        ax.legend(fontsize=7)

    return figure("effort", f"Flywheel: effort for each target ({sim['items']} gold items)", draw)


def drift(r: ProjectReport) -> Plot | None:
    tested = [b for b in (r.drift.batches if r.drift else []) if not b.reference]
    names = [s.name for s in tested[0].statistics] if tested else []
    if not names or not any(s.value is not None for b in tested for s in b.statistics):
        return None
    columns = 3
    rows = -(-len(names) // columns)

    def draw(axes: Any, mark: Marks) -> None:
        x = np.arange(len(tested))
        for ax, name in zip(axes.flat, names):
            stats = [next(s for s in b.statistics if s.name == name) for b in tested]
            y = [np.nan if s.value is None else s.value for s in stats]
            threshold = stats[0].threshold
            if sum(v is not None for v in (s.value for s in stats)):
                mark(ax.plot(x, y, marker="o", color=COLOURS[0]), sum(s.value is not None for s in stats))
            alarms = [(i, s.value) for i, s in enumerate(stats) if s.alarm]
            if alarms:
                mark(ax.scatter(*zip(*alarms), color=COLOURS[3], zorder=3, s=40, label="alarm"), len(alarms))
            ax.axhline(threshold, color=COLOURS[3], linestyle="--", linewidth=1)
            if name in _SIGNED:
                ax.axhline(-threshold, color=COLOURS[3], linestyle="--", linewidth=1)
            ax.set_title(name, fontsize=9)
            ax.set_xticks(x, [_short(b.name) for b in tested], rotation=30, ha="right", fontsize=7)
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)

    return figure("drift", "Drift: each batch against the reference (dashed: alarm threshold)", draw,
                   size=(9.6, 2.6 * rows), grid=(rows, columns))  # fmt: skip


_SIGNED = {"review rate", "disagreement with people", "unknown characters"}


def _short(name: str, width: int = 18) -> str:
    name = name.rsplit("/", 1)[-1]
    return name if len(name) <= width else "…" + name[-width + 1 :]


def every_plot(r: ProjectReport) -> dict[str, Plot | None]:
    """Every plot of the report by key (None where there is no data for it)."""
    status = r.status
    return {
        "progress": progress(r),
        "routes": bars("routes", "Where the labels went", status.routes, "current predictions"),
        "reasons": bars("reasons", "Why items went to review", status.reasons, "predictions"),
        "calls": calls(r),
        "latency": latency(r),
        "confidence": confidence(r),
        "labelers": labeler_parts(r),
        "confusion": confusion(r),
        "throughput": throughput(r),
        "agreement": agreement(r),
        "settled": settled(r),
        "effort": effort(r),
        "drift": drift(r),
    }
