"""Terminal output of people's commands: review, imports, Label Studio, aggregation and agreement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from ..aggregate import AggregateResult
from ..annotations import AnnotationImport
from ..labelstudio import ImportResult, SyncResult
from ..review.terminal import ReviewSummary
from ._print import _num, console, err_console, print_json

if TYPE_CHECKING:
    from ..agree import AgreementReport

__all__ = ["console", "err_console", "print_json"]


def print_review(summary: ReviewSummary, adjudicating: bool) -> None:
    console.print(
        f"{summary.reviewed} {'decided' if adjudicating else 'reviewed'}, {summary.skipped} skipped,"
        f" {summary.left} left in the queue"
    )


def print_annotation_import(result: AnnotationImport) -> None:
    fixed = f"; {result.fixed_labels} labels fixed" if result.fixed_labels else ""
    console.print(
        f"{result.path}: {result.added} answers added ({result.records - result.added} already there)"
        f" from {result.annotators} annotators on {result.items} items{fixed}"
    )


def print_serving(url: str) -> None:
    console.print(f"review app on {url} — add reviewers with: labelloop reviewer add NAME")


def print_labelstudio_import(result: ImportResult) -> None:
    """The counts on stdout; one line per bad annotation on stderr."""
    for line in result.errors:
        err_console.print(f"error: {line}", markup=False, highlight=False)
    console.print(
        f"{result.imported} annotations imported, {result.skipped_existing} already present,"
        f" {result.cancelled} cancelled, {len(result.errors)} bad"
    )


def print_labelstudio_sync(result: SyncResult) -> None:
    for line in result.errors:
        err_console.print(f"error: {line}", markup=False, highlight=False)
    console.print(
        f"pushed {result.pushed} tasks ({result.already_pushed} already in the project);"
        f" pulled {result.pulled} annotations, {len(result.errors)} bad"
    )


def print_aggregate(result: AggregateResult) -> None:
    if result.skipped:
        console.print("gold is up to date (no answer changed since the last aggregation)")
        return
    methods = ", ".join(f"{method} {count}" for method, count in sorted(result.by_method.items()))
    console.print(
        f"{result.items} items decided by {result.method} ({methods or 'none'});"
        f" {result.disputed} disputed, waiting for an expert"
    )
    for chosen in result.chosen[:20] if result.method == "auto" else []:
        console.print(f"  {escape(chosen['family'])}: {chosen['method']} — {escape(chosen['criterion'])}")
    reliability = sorted(result.reliability().items(), key=lambda kv: kv[1])
    if reliability:
        shown = ", ".join(f"{escape(name)} {value:.2f}" for name, value in reliability[:10])
        console.print(f"least reliable annotators (Dawid-Skene, mean of the confusion diagonal): {shown}")


def print_agreement(report: AgreementReport, heatmap: object = None) -> None:
    """The agreement report as tables: facets, annotators, batches, confusions and actions."""
    facets = Table(title="Agreement among people, per facet")
    for column in ("facet", "level", "items", "% agree", "Fleiss κ", "Krippendorff α", "span F1"):
        facets.add_column(column, justify="left" if column in ("facet", "level") else "right", overflow="fold")
    for f in report.facets:
        facets.add_row(
            escape(f.facet),
            f.level,
            str(f.items),
            _num(f.percent_agreement),
            _num(f.fleiss_kappa),
            _num(f.krippendorff_alpha),
            _num(f.span_f1),
        )
    console.print(facets)
    people = Table(title=f"Annotators (κ under {report.thresholds['min_kappa']} flagged)")
    for column in ("annotator", "kind", "items", "vs consensus", "κ vs consensus", "vs gold", "flag"):
        people.add_column(column, justify="left" if column in ("annotator", "kind", "flag") else "right")
    for a in report.annotators[:40]:
        people.add_row(
            escape(a.name),
            a.kind,
            str(a.items),
            f"{_num(a.consensus_agreement)} ({a.consensus_items})",
            _num(a.consensus_kappa),
            f"{_num(a.gold_agreement)} ({a.gold_items})",
            "[red]low κ[/red]" if a.flagged else "",
        )
    console.print(people)
    if len(report.annotators) > 40:
        console.print(f"... and {len(report.annotators) - 40} more (--json lists all)")
    if report.confusions:
        confused = Table(title="Most frequent disagreements")
        for column in ("facet", "one says", "other says", "times"):
            confused.add_column(column)
        for c in report.confusions:
            confused.add_row(escape(c["facet"]), escape(c["a"]), escape(c["b"]), str(c["count"]))
        console.print(confused)
    batches = Table(title=f"Batches (match under {report.thresholds['batch_match']:.0%} → rework)")
    for column in ("batch", "items", "matching", "match", "action"):
        batches.add_column(column)
    for b in report.batches:
        batches.add_row(
            escape(b.batch),
            str(b.items),
            str(b.matching),
            _num(b.match_rate),
            "[red]rework[/red]" if b.action == "rework" else "ok",
        )
    console.print(batches)
    flagged = [a.name for a in report.annotators if a.flagged]
    if flagged:
        more = f" and {len(flagged) - 20} more" if len(flagged) > 20 else ""
        console.print(f"flagged annotators ({len(flagged)}): {escape(', '.join(flagged[:20]))}{more}")
    if report.reworked:
        console.print(f"rework: {report.reworked} answers withdrawn; those items are back in the queue")
    for note in report.notes:
        console.print(f"note: {note}")
    if heatmap:
        console.print(f"heatmap: {heatmap}")
