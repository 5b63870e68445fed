"""Terminal output of people's quality: the annotators' table."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from ._print import console, print_json

__all__ = ["console", "print_annotators", "print_json"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def print_annotators(scores: list[Any]) -> None:
    table = Table(title="annotators")
    for column in ("annotator", "role", "answers", "tests", "test accuracy", "95% CI", "κ consensus", "κ experts",
                   "Dawid-Skene", "s/answer", "per day", "qualified", "flag"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("annotator", "role", "flag") else "right")
    for s in scores:
        ci = "–" if s.accuracy_low is None else f"{s.accuracy_low:.0%}–{s.accuracy_high:.0%}"
        qualified = "–" if s.qualified is None else ("yes" if s.qualified else "not yet")
        flag = "[red]retrain: " + escape("; ".join(s.why)) + "[/red]" if s.flagged else ""
        table.add_row(escape(s.name), s.role, str(s.answers), str(s.tested), _pct(s.accuracy), ci,
                      _num(s.consensus_kappa), _num(s.expert_kappa), _num(s.dawid_skene), _num(s.seconds_per_answer,
                      "{:.0f}"), _num(s.answers_per_day, "{:.0f}"), qualified, flag)  # fmt: skip
    console.print(table)
    flagged = [s.name for s in scores if s.flagged]
    if flagged:
        console.print(f"flagged for retraining: {escape(', '.join(flagged))}")
