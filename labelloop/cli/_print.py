"""Terminal output of the CLI (presentation only): the consoles, the progress bar, and the pipeline's results.

People's results print from :mod:`._print_people`, the flywheel's from :mod:`._print_learn`.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..demo import DemoResult
from ..engine import RunResult
from ..export import ExportResult
from ..ingest import IngestResult
from ..lake import RayRunResult
from ..plan import Plan
from ..status import StatusSummary

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class RichProgress:
    """A progress bar with items/s, ETA, tokens and error count."""

    def __init__(self, description: str = "labeling"):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("tokens {task.fields[tokens]:,}  calls {task.fields[calls]:,}  errors {task.fields[errors]}"),
            console=err_console,
            transient=False,
        )
        self._description = description
        self._task: TaskID | None = None  # set by start()
        self._errors = self._calls = 0

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total, tokens=0, calls=0, errors=0, rate="")

    def advance(self, items: int, *, errors: int, tokens: int, calls: int) -> None:
        assert self._task is not None, "advance() after start()"
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
        console.print(
            "PII found and handled: " + ", ".join(f"{kind} {n}" for kind, n in sorted(hygiene["pii"].items()))
        )


def print_run(result: RunResult) -> None:
    c = result.counts
    console.print(
        f"run {result.run_id} {result.status}: {c.items_done} labeled ({result.unparsable} unparsable), "
        f"{c.items_failed} failed, {c.calls} calls, {c.cache_hits} from cache, "
        f"{c.prompt_tokens + c.completion_tokens:,} tokens, {result.items_per_s:.1f} items/s"
        + (f" — stopped: {result.stop_reason}" if result.stop_reason else "")
    )
    if result.settled_by_small:
        console.print(f"{result.settled_by_small} items settled by the small model: no LLM call for them")
    if result.inherited:
        console.print(f"{result.inherited} duplicates took their group representative's answer: no LLM call for them")


def print_ray_run(result: RayRunResult) -> None:
    c = result.counts
    routes = ", ".join(f"{count:,} {route}" for route, count in sorted(result.routes.items())) or "nothing labeled"
    console.print(
        f"run {result.run_id} {result.status} on Ray ({result.mode} mode): {c.items_done + c.items_failed:,} items"
        f" ({routes}), {c.calls:,} calls, {c.cache_hits:,} from cache, {result.items_per_s:.1f} items/s;"
        f" {result.units - result.units_skipped} of {result.units} units labeled"
        + (f", {result.units_skipped} already written" if result.units_skipped else "")
        + (f" — stopped: {result.stop_reason}" if result.stop_reason else "")
    )
    if result.mode == "lake":
        console.print(f"shards in {result.output}; {result.imported:,} items to review imported into the project")
    if result.filtered:
        console.print("left out by cleaning: " + ", ".join(f"{n:,} {why}" for why, n in result.filtered.items()))


def print_plan(plan: Plan) -> None:
    table = Table(title="labeling plan", show_header=False)
    rows = [
        ("backend / model", f"{plan.backend} / {plan.model}"),
        ("prompt version", plan.prompt_version),
        ("items in project", f"{plan.items_total:,}"),
        ("items to label", f"{plan.to_label:,}"),
        ("served from cache", f"{plan.cached:,}"),
        ("model calls (at least)", f"{plan.calls:,}"),
        ("prompt tokens (estimate)", f"{plan.prompt_tokens_estimate:,}"),
        ("completion tokens (at most)", f"{plan.completion_tokens_max:,}"),
    ]
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
    console.print(
        f"model calls: {calls['calls']:,} ({calls['errors'] or 0:,} errors), tokens: "
        f"{calls['prompt']:,} prompt + {calls['completion']:,} completion, mean latency {latency}"
    )
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
            runs.add_row(
                str(run["id"]),
                run["status"],
                run["model"],
                str(run["items_done"]),
                str(run["items_failed"]),
                str(run["calls"]),
                str(run["cache_hits"]),
                rate,
                run["started_at"][:19],
            )
        console.print(runs)
    if summary.workers:
        workers = Table(title=f"workers labeling now ({summary.database})")
        for column in ("run", "labeler", "host", "pid", "done", "calls", "items/s", "leases"):
            workers.add_column(column)
        for worker in summary.workers:
            rate = f"{worker['items_per_s']:.1f}" if worker["items_per_s"] else "-"
            workers.add_row(
                str(worker["id"]), worker["labeler"], worker["host"] or "-", str(worker["pid"]),
                f"{worker['items_done']:,}", f"{worker['calls']:,}", rate, f"{worker['leases']:,}",
            )  # fmt: skip
        console.print(workers)
    for alarm in summary.drift:
        console.print(f"[bold red]drift:[/bold red] {escape(alarm)}")


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
            console.print(
                f"  {index / len(histogram):.1f}–{(index + 1) / len(histogram):.1f} {bar} {count}", highlight=False
            )


def print_demo(results: list[DemoResult]) -> None:
    for result in results:
        console.print(f"[bold]{result.root}[/bold]")
        print_run(result.run)
        print_status(result.status)
        print_export(result.exported)
    if results:
        console.print(
            f"next: cd {results[0].root} && labelloop review --reviewer YOU   (then: labelloop export labels.jsonl)"
        )


def print_export(result: ExportResult) -> None:
    sources = ", ".join(f"{count} {source}" for source, count in result.by_source.items())
    left_out = ", ".join(f"{count} {reason}" for reason, count in result.excluded.items() if count)
    console.print(
        f"wrote {result.written} records to {result.path} ({result.format}; {sources})"
        + (f"; left out: {left_out}" if left_out else "")
        + "".join(f"; and {escape(path)}" for path in result.files)
    )


def print_json(value: object) -> None:
    console.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def print_audit(rows: list[dict]) -> None:
    table = Table(title="audit log (newest first)")
    for column in ("at", "actor", "action", "item", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["at"][:19],
            Text(row["actor"]),
            Text(row["action"]),
            Text(row["item_id"] or ""),
            Text((row["detail"] or "")[:120]),
        )
    console.print(table)
