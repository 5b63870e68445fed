"""How ``labelloop compare``, ``monitor`` and ``report`` show their results in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from ._print import RichProgress, console, print_json

__all__ = ["print_comparison", "print_drift", "print_json", "print_report", "progress"]


def progress() -> RichProgress:
    return RichProgress()


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def print_comparison(comparison: Any, html: Path | None) -> None:
    table = Table(title=f"compare on {comparison.items:,} gold items")
    for column in ("variant", "prompt", "metric", "value", "right", "auto-accepted", "precision there",
                   "guaranteed threshold", "ECE", "tokens/item", "p50 ms", "calls now"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("variant", "prompt", "metric") else "right")
    for v in comparison.variants:
        q, r, c = v.quality, v.routing, v.cost
        table.add_row(
            escape(v.name), v.prompt_version, q.metric, f"{q.value:.3f}", f"{sum(q.correct)}",
            _num(r["accepted_share"], "{:.1%}"), _num(r["accepted_precision"], "{:.1%}"),
            _num(r["guaranteed_threshold"]), _num(r["ece"]),
            f"{c['prompt_tokens_per_item'] + c['completion_tokens_per_item']:.0f}", _num(c["latency_p50_ms"], "{:.0f}"),
            str(c["calls_now"]),
        )  # fmt: skip
    console.print(table)
    for verdict in comparison.verdicts:
        style = "bold green" if verdict.significant else "dim"
        console.print(f"[{style}]{escape(verdict.sentence())}[/{style}]")
    if html is not None:
        console.print(f"page: {html}")


def print_drift(report: Any) -> None:
    from ..monitor.batches import describe

    table = Table(title="drift: each batch against the reference")
    for column in ("batch", "items", "labels", "confidence", "review rate", "disagreement", "length", "unknown"):
        table.add_column(column, justify="left" if column == "batch" else "right")
    for batch in report.batches:
        cells = [("[red]" if s.alarm else "") + _num(s.value, "{:+.3f}") for s in batch.statistics]
        table.add_row(escape(batch.name), f"{batch.items:,}", *(cells or ["reference"] + [""] * 5))
    console.print(table)
    for alarm in report.latest_alarms:
        console.print(f"[bold red]drift:[/bold red] {escape(alarm)}")
    for batch in report.batches[:-1]:
        for statistic in batch.alarms:
            console.print(f"[dim]earlier: {escape(batch.name)}: {escape(describe(statistic))}[/dim]")


def print_report(report: Any, path: Path) -> None:
    """One line: where the page went and what it holds."""
    people = sum(r.answers for r in report.people.reviewers)
    alarms = len(report.drift.latest_alarms) if report.drift else 0
    console.print(
        f"report: {escape(str(path))} ({report.status.items:,} items, {report.status.calls['calls']:,} calls,"
        f" {people:,} answers from people, {len(report.comparisons)} comparisons, {alarms} drift alarms)"
    )
