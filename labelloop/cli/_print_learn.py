"""Terminal output of the flywheel's commands: training, calibration, simulation, duplicates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ._print import console, err_console, print_json

if TYPE_CHECKING:
    from ..dedup import DuplicateReport
    from ..learn.loop import Calibration, TrainResult
    from ..learn.simulation_report import Replay

__all__ = ["console", "err_console", "print_json"]


def print_training(result: TrainResult) -> None:
    r = result.report
    console.print(
        f"small model: {r.examples} people-labeled items, {r.labels} labels, {r.folds}-fold cross-validation:"
        f" accuracy {r.accuracy:.3f}, macro F1 {r.macro_f1:.3f}; ECE {r.ece_before:.3f} → {r.ece_after:.3f}"
        f" after calibration; saved {escape(r.path)} (data version {r.data_version})"
    )
    if r.candidates:
        console.print(
            f"chosen by cross-validation among {len(r.candidates)} candidates: {escape(r.model)}"
            f" (accuracy {r.candidates[r.model]['accuracy']:.3f})"
        )
    t = r.threshold
    if t["threshold"] is None:
        console.print(
            f"no threshold guarantees precision ≥ {t['target']} at {t['level']:.0%} yet: every small-model"
            " label goes to review"
        )
    else:
        console.print(
            f"auto-accept at calibrated confidence ≥ {t['threshold']:.3f}: precision {t['precision']:.3f},"
            f" lower bound {t['lower_bound']:.3f} ≥ {t['target']} at {t['level']:.0%} (Clopper-Pearson)"
        )
    total = sum(result.routes.values()) or 1
    console.print(
        f"labeled {total} items: {result.routes.get('accepted', 0)} accepted"
        f" ({result.routes.get('accepted', 0) / total:.1%}), {result.routes.get('needs_review', 0)} to people;"
        f" {result.disagreements} LLM answers sent to review where the small model disagrees"
    )
    combination = result.combination
    if combination is not None and combination.used:
        console.print(
            f"the LLM and the small model combined may accept {combination.auto_accept_share:.1%} with the guarantee,"
            f" more than each alone: {combination.accepted} LLM answers accepted, {combination.sent_to_review}"
            " sent to people"
        )
    for note in r.notes:
        console.print(f"note: {escape(note)}")
    if result.plot:
        console.print(f"reliability diagram: {escape(result.plot)}")
    table = Table(title=f"crossover at {result.crossover.gold_items} people-labeled items")
    for column in ("labeler", "accuracy", "auto-accept share", "calls/item", "tokens/item", "measured on"):
        table.add_column(column)
    for row in result.crossover.rows:
        if "note" in row:
            table.add_row(escape(row["labeler"]), "–", "–", "–", "–", escape(row["note"]))
            continue
        table.add_row(
            escape(row["labeler"]),
            f"{row['accuracy']:.3f}",
            f"{row['auto_accept_share']:.1%}",
            f"{row['calls_per_item']:.2f}",
            f"{row['tokens_per_item']:.0f}",
            escape(row["measured_on"]),
        )
    console.print(table)


def print_calibration(c: Calibration) -> None:
    t = c.threshold
    line = (
        f"{escape(c.labeler)}: {c.items} people-labeled items, accuracy {c.accuracy:.3f}; ECE {c.ece_before:.3f}"
        f" → {c.ece_after:.3f} ({c.calibrator['method']})"
    )
    console.print(line)
    if t["threshold"] is None:
        console.print(f"no threshold guarantees precision ≥ {t['target']} at {t['level']:.0%}: everything to people")
    else:
        console.print(
            f"threshold {t['threshold']:.3f}: precision {t['precision']:.3f} (lower bound"
            f" {t['lower_bound']:.3f}); auto-accepts {c.auto_accept_share:.1%} of its answers,"
            f" {1 - c.auto_accept_share:.1%} go to people"
        )
    if c.plot:
        console.print(f"reliability diagram: {escape(c.plot)}")


def print_replay(replay: Replay) -> None:
    for line in replay.effort_lines():
        console.print(escape(line))
    for line in replay.baseline_lines():
        console.print("  " + escape(line))
    if replay.llm_accuracy is not None:
        console.print(f"LLM accuracy on the gold: {replay.llm_accuracy:.1%} ({replay.llm_calls} calls)")
    console.print("report: " + ", ".join(escape(f) for f in replay.files))


def print_duplicates(report: DuplicateReport) -> None:
    console.print(
        f"{report.items} items: {report.exact_groups} exact and {report.near_groups} near-duplicate groups"
        f" ({report.grouped_items} items); {report.proposed} labels proposed from decided members"
    )
    for texts in report.examples or []:
        console.print(Text("  " + " | ".join(t[:60] for t in texts)))
