"""``labelloop compare`` (variants of the task on gold items, with paired tests), ``labelloop monitor``
(the drift alarm) and ``labelloop report`` (the project as one HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _print_compare as out
from ._common import BackendOpt, BaseUrlOpt, JsonOpt, ModelOpt, ProjectOpt, QuietOpt, open_project, servers

commands = typer.Typer()


@commands.command()
def compare(
    variants: Annotated[
        list[str],
        typer.Argument(help="Two or more: current, a spec file (.yaml), or NAME:key=value,… (dotted spec keys)"),
    ],
    gold: Annotated[Path, typer.Option(help="JSONL/CSV/Parquet: id, text and the right answer's fields")],
    html: Annotated[Optional[Path], typer.Option(help="Also write the comparison as an HTML page")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap")] = 0,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Label the gold items with each variant (cached answers cost nothing; a new rule or threshold only
    re-judges), score them, and say for each pair whether the difference is real."""
    with open_project(project) as proj:
        comparison = proj.compare(
            gold, variants, html=html, seed=seed, progress=None if quiet or as_json else out.progress(),
            backend=backend, model=model, **servers(base_url),
        )  # fmt: skip
    if as_json:
        out.print_json(comparison.to_dict())
    else:
        out.print_comparison(comparison, html)


@commands.command()
def monitor(
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when the latest batch raises an alarm (cron, CI)")
    ] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """The drift alarm: each batch of items (an ingested file, or a monitor.window of time) against the first."""
    with open_project(project) as proj:
        report = proj.monitor()
    if as_json:
        out.print_json(report.to_dict())
    else:
        out.print_drift(report)
    if fail_on_drift and report.latest_alarms:
        raise typer.Exit(1)


@commands.command()
def report(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the HTML page")] = Path("report.html"),
    labeler: Annotated[str, typer.Option("--labeler", help="Whose confidence, states and drift to show")] = "llm",
    project: ProjectOpt = None,
) -> None:
    """The project as one self-contained HTML page (plots inline, no network): progress, states, cost, the
    model against people, people, prompt versions and comparisons, the flywheel and drift."""
    with open_project(project) as proj:
        found = proj.report(out_path, labeler=labeler)
    out.print_report(found, out_path)
