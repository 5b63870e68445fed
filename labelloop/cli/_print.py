"""Terminal output of the CLI: progress bars and tables (presentation only)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..aggregate import AggregateResult
from ..annotations import AnnotationImport
from ..demo import DemoResult
from ..engine import RunResult
from ..export import ExportResult
from ..ingest import IngestResult
from ..labelstudio import ImportResult, SyncResult
from ..plan import Plan
from ..review.terminal import ReviewSummary
from ..status import StatusSummary

if TYPE_CHECKING:
    from ..agree import AgreementReport
    from ..dedup import DuplicateReport
    from ..learn.loop import Calibration, TrainResult
    from ..learn.replay import Replay

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class RichProgress:
    """A progress bar with items/s, ETA, tokens and error count."""

    def __init__(self, description: str = "labeling"):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("tokens {task.fields[tokens]:,}  calls {task.fields[calls]:,}  errors {task.fields[errors]}"),
            console=err_console, transient=False)
        self._description = description
        self._task = None
        self._errors = self._calls = 0

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total, tokens=0, calls=0, errors=0,
                                             rate="")

    def advance(self, items: int, *, errors: int, tokens: int, calls: int) -> None:
        self._errors += errors
        self._calls += calls
        self._progress.update(self._task, advance=items, tokens=tokens, calls=self._calls, errors=self._errors)
        speed = self._progress.tasks[0].speed
        self._progress.update(self._task, rate=f"{speed:.1f} items/s" if speed else "")

    def stop(self) -> None:
        self._progress.stop()


def print_ingest(result: IngestResult) -> None:
    line = f"{result.path}: {result.added} items added, {result.duplicates} already present"
    if result.rejects_path:
        line += f", {result.rejected} rejected (see {result.rejects_path})"
    if result.filtered:
        line += ", filtered out: " + ", ".join(f"{n} {reason}" for reason, n in sorted(result.filtered.items()))
    console.print(escape(line))
    hygiene = result.hygiene or {}
    changed = (hygiene.get("cleaning") or {}).get("changed") or {}
    if changed:
        console.print("cleaning changed: " + ", ".join(f"{step} {n}" for step, n in changed.items()))
        for step, examples in ((hygiene.get("cleaning") or {}).get("examples") or {}).items():
            for before, after in examples[:1]:
                console.print(Text(f"  {step}: {before!r} → {after!r}"))
    if hygiene.get("pii"):
        console.print("PII found and handled: " + ", ".join(f"{kind} {n}" for kind, n in sorted(hygiene["pii"].items())))


def print_run(result: RunResult) -> None:
    c = result.counts
    console.print(
        f"run {result.run_id} {result.status}: {c.items_done} labeled ({result.unparsable} unparsable), "
        f"{c.items_failed} failed, {c.calls} calls, {c.cache_hits} from cache, "
        f"{c.prompt_tokens + c.completion_tokens:,} tokens, {result.items_per_s:.1f} items/s"
        + (f" — stopped: {result.stop_reason}" if result.stop_reason else ""))
    if result.settled_by_small:
        console.print(f"{result.settled_by_small} items settled by the small model: no LLM call for them")
    if result.inherited:
        console.print(f"{result.inherited} duplicates took their group representative's answer: no LLM call for them")


def print_plan(plan: Plan) -> None:
    table = Table(title="labeling plan", show_header=False)
    rows = [("backend / model", f"{plan.backend} / {plan.model}"), ("prompt version", plan.prompt_version),
            ("items in project", f"{plan.items_total:,}"), ("items to label", f"{plan.to_label:,}"),
            ("served from cache", f"{plan.cached:,}"), ("model calls (at least)", f"{plan.calls:,}"),
            ("prompt tokens (estimate)", f"{plan.prompt_tokens_estimate:,}"),
            ("completion tokens (at most)", f"{plan.completion_tokens_max:,}")]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if plan.first_prompt:
        console.print("[bold]first prompt[/bold]")
        for message in plan.first_prompt:
            console.print(f"[cyan]{message['role']}:[/cyan]", message["content"], markup=False, highlight=False)


def print_status(summary: StatusSummary) -> None:
    table = Table(title=f"{summary.items:,} items")
    table.add_column("prediction status")
    table.add_column("count", justify="right")
    for status in ("ok", "unparsable", "failed", "unlabeled"):
        table.add_row(status, f"{summary.predictions.get(status, 0):,}")
    console.print(table)
    print_routes(summary)
    calls = summary.calls
    latency = f"{calls['latency']:.0f} ms" if calls["latency"] is not None else "-"
    console.print(f"model calls: {calls['calls']:,} ({calls['errors'] or 0:,} errors), tokens: "
                  f"{calls['prompt']:,} prompt + {calls['completion']:,} completion, mean latency {latency}")
    if summary.top_errors:
        errors = Table(title="most frequent errors")
        errors.add_column("error")
        errors.add_column("items", justify="right")
        for message, count in summary.top_errors:
            errors.add_row(message, str(count))
        console.print(errors)
    if summary.runs:
        runs = Table(title="recent runs")
        for column in ("run", "status", "model", "done", "failed", "calls", "cached", "items/s", "started"):
            runs.add_column(column)
        for run in summary.runs:
            rate = f"{run['items_per_s']:.1f}" if run["items_per_s"] else "-"
            runs.add_row(str(run["id"]), run["status"], run["model"], str(run["items_done"]),
                         str(run["items_failed"]), str(run["calls"]), str(run["cache_hits"]), rate,
                         run["started_at"][:19])
        console.print(runs)


def print_routes(summary: StatusSummary) -> None:
    routes = Table(title="routing")
    routes.add_column("state")
    routes.add_column("count", justify="right")
    for state in ("accepted", "needs_review", "failed"):
        routes.add_row(state, f"{summary.routes.get(state, 0):,}")
    for reason, count in summary.reasons.items():
        routes.add_row(f"  {reason}", f"{count:,}")
    console.print(routes)
    histogram = summary.confidence_histogram
    if any(histogram):
        console.print("confidence")
        peak = max(histogram)
        for index, count in enumerate(histogram):
            bar = "█" * round(30 * count / peak) if peak else ""
            console.print(f"  {index / len(histogram):.1f}–{(index + 1) / len(histogram):.1f} {bar} {count}",
                          highlight=False)


def print_demo(results: list[DemoResult]) -> None:
    for result in results:
        console.print(f"[bold]{result.root}[/bold]")
        print_run(result.run)
        print_status(result.status)
        print_export(result.exported)
    if results:
        console.print(f"next: cd {results[0].root} && labelloop review --reviewer YOU"
                      "   (then: labelloop export labels.jsonl)")


def print_export(result: ExportResult) -> None:
    sources = ", ".join(f"{count} {source}" for source, count in result.by_source.items())
    left_out = ", ".join(f"{count} {reason}" for reason, count in result.excluded.items() if count)
    console.print(f"wrote {result.written} records to {result.path} ({result.format}; {sources})"
                  + (f"; left out: {left_out}" if left_out else "")
                  + "".join(f"; and {escape(path)}" for path in result.files))


def print_review(summary: ReviewSummary, adjudicating: bool) -> None:
    console.print(f"{summary.reviewed} {'decided' if adjudicating else 'reviewed'}, {summary.skipped} skipped,"
                  f" {summary.left} left in the queue")


def print_annotation_import(result: AnnotationImport) -> None:
    fixed = f"; {result.fixed_labels} labels fixed" if result.fixed_labels else ""
    console.print(f"{result.path}: {result.added} answers added ({result.records - result.added} already there)"
                  f" from {result.annotators} annotators on {result.items} items{fixed}")


def print_serving(url: str) -> None:
    console.print(f"review app on {url} — add reviewers with: labelloop reviewer add NAME")


def print_json(value: object) -> None:
    console.print_json(json.dumps(value, ensure_ascii=False, default=str))


def print_labelstudio_import(result: ImportResult) -> None:
    """The counts on stdout; one line per bad annotation on stderr."""
    for line in result.errors:
        err_console.print(f"error: {line}", markup=False, highlight=False)
    console.print(f"{result.imported} annotations imported, {result.skipped_existing} already present,"
                  f" {result.cancelled} cancelled, {len(result.errors)} bad")


def print_labelstudio_sync(result: SyncResult) -> None:
    for line in result.errors:
        err_console.print(f"error: {line}", markup=False, highlight=False)
    console.print(f"pushed {result.pushed} tasks ({result.already_pushed} already in the project);"
                  f" pulled {result.pulled} annotations, {len(result.errors)} bad")


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def print_aggregate(result: AggregateResult) -> None:
    if result.skipped:
        console.print("gold is up to date (no answer changed since the last aggregation)")
        return
    methods = ", ".join(f"{method} {count}" for method, count in sorted(result.by_method.items()))
    console.print(f"{result.items} items decided by {result.method} ({methods or 'none'});"
                  f" {result.disputed} disputed, waiting for an expert")
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
        facets.add_row(escape(f.facet), f.level, str(f.items), _num(f.percent_agreement), _num(f.fleiss_kappa),
                       _num(f.krippendorff_alpha), _num(f.span_f1))
    console.print(facets)
    people = Table(title=f"Annotators (κ under {report.thresholds['min_kappa']} flagged)")
    for column in ("annotator", "kind", "items", "vs consensus", "κ vs consensus", "vs gold", "flag"):
        people.add_column(column, justify="left" if column in ("annotator", "kind", "flag") else "right")
    for a in report.annotators[:40]:
        people.add_row(escape(a.name), a.kind, str(a.items), f"{_num(a.consensus_agreement)} ({a.consensus_items})",
                       _num(a.consensus_kappa), f"{_num(a.gold_agreement)} ({a.gold_items})",
                       "[red]low κ[/red]" if a.flagged else "")
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
        batches.add_row(escape(b.batch), str(b.items), str(b.matching), _num(b.match_rate),
                        "[red]rework[/red]" if b.action == "rework" else "ok")
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


def print_training(result: TrainResult) -> None:
    r = result.report
    console.print(f"small model: {r.examples} people-labeled items, {r.labels} labels, {r.folds}-fold cross-validation:"
                  f" accuracy {r.accuracy:.3f}, macro F1 {r.macro_f1:.3f}; ECE {r.ece_before:.3f} → {r.ece_after:.3f}"
                  f" after calibration; saved {escape(r.path)} (data version {r.data_version})")
    t = r.threshold
    if t["threshold"] is None:
        console.print(f"no threshold guarantees precision ≥ {t['target']} at {t['level']:.0%} yet: every small-model"
                      " label goes to review")
    else:
        console.print(f"auto-accept at calibrated confidence ≥ {t['threshold']:.3f}: precision {t['precision']:.3f},"
                      f" lower bound {t['lower_bound']:.3f} ≥ {t['target']} at {t['level']:.0%} (Clopper-Pearson)")
    total = sum(result.routes.values()) or 1
    console.print(f"labeled {total} items: {result.routes.get('accepted', 0)} accepted"
                  f" ({result.routes.get('accepted', 0) / total:.1%}), {result.routes.get('needs_review', 0)} to people;"
                  f" {result.disagreements} LLM answers sent to review where the small model disagrees")
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
        table.add_row(escape(row["labeler"]), f"{row['accuracy']:.3f}", f"{row['auto_accept_share']:.1%}",
                      f"{row['calls_per_item']:.2f}", f"{row['tokens_per_item']:.0f}", escape(row["measured_on"]))
    console.print(table)


def print_calibration(c: Calibration) -> None:
    t = c.threshold
    line = (f"{escape(c.labeler)}: {c.items} people-labeled items, accuracy {c.accuracy:.3f}; ECE {c.ece_before:.3f}"
            f" → {c.ece_after:.3f} ({c.calibrator['method']})")
    console.print(line)
    if t["threshold"] is None:
        console.print(f"no threshold guarantees precision ≥ {t['target']} at {t['level']:.0%}: everything to people")
    else:
        console.print(f"threshold {t['threshold']:.3f}: precision {t['precision']:.3f} (lower bound"
                      f" {t['lower_bound']:.3f}); auto-accepts {c.auto_accept_share:.1%} of its answers,"
                      f" {1 - c.auto_accept_share:.1%} go to people")
    if c.plot:
        console.print(f"reliability diagram: {escape(c.plot)}")


def print_replay(replay: Replay) -> None:
    for line in replay.effort_lines():
        console.print(line)
    baseline = replay.llm_only
    for target in replay.targets:
        parts = ["by hand 100%"]
        if baseline is not None:
            best = baseline.best(target)
            parts.append(f"LLM-only routing {best.effort:.1%}" if best else "LLM-only routing 100% (no guarantee)")
        console.print(f"  baselines for {target:.0%}: " + ", ".join(parts))
    if replay.llm_accuracy is not None:
        console.print(f"LLM accuracy on the gold: {replay.llm_accuracy:.1%} ({replay.llm_calls} calls)")
    console.print("report: " + ", ".join(escape(f) for f in replay.files))


def print_duplicates(report: DuplicateReport) -> None:
    console.print(f"{report.items} items: {report.exact_groups} exact and {report.near_groups} near-duplicate groups"
                  f" ({report.grouped_items} items); {report.proposed} labels proposed from decided members")
    for texts in report.examples or []:
        console.print(Text("  " + " | ".join(t[:60] for t in texts)))


def print_audit(rows: list[dict]) -> None:
    table = Table(title="audit log (newest first)")
    for column in ("at", "actor", "action", "item", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["at"][:19], Text(row["actor"]), Text(row["action"]), Text(row["item_id"] or ""),
                      Text((row["detail"] or "")[:120]))
    console.print(table)
