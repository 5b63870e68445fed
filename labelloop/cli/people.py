"""People's commands: review (terminal, web, Label Studio), reviewers, imported answers, agreement, aggregation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..labelstudio import token_from_env
from . import _print_people as out
from ._common import LLM, ActorOpt, FormatOpt, LabelerOpt, ProjectOpt, open_project

commands = typer.Typer()


@commands.command()
def review(
    reviewer: Annotated[str, typer.Option(help="Your name, recorded with every decision")],
    limit: Annotated[Optional[int], typer.Option(help="Stop after this many decisions")] = None,
    adjudicate: Annotated[
        bool, typer.Option("--adjudicate", help="Decide disputed items with every answer side by side (expert role)")
    ] = False,
    labeler: LabelerOpt = LLM,
    project: ProjectOpt = None,
) -> None:
    """Review doubtful predictions in the terminal, lowest confidence first."""
    with open_project(project) as proj:
        summary = proj.review_in_terminal(
            reviewer, labeler=labeler, limit=limit, console=out.console, adjudicate=adjudicate
        )
    out.print_review(summary, adjudicate)


reviewer_commands = typer.Typer(help="Manage the reviewers of the web app.", no_args_is_help=True)


@reviewer_commands.command("add")
def reviewer_add(
    name: Annotated[str, typer.Argument(help="The reviewer's name")],
    role: Annotated[str, typer.Option(help="annotator or expert")] = "annotator",
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Add a reviewer (or issue a new token) and print their login token."""
    with open_project(project) as proj:
        token = proj.add_reviewer(name, role, actor=actor)
    out.console.print(f"reviewer {name} ({role}); token (shown once): {token}")


@commands.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (keep 127.0.0.1 unless behind a proxy)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8400,
    labeler: LabelerOpt = LLM,
    project: ProjectOpt = None,
) -> None:
    """Run the review web app (reviewers log in with their token) until Ctrl-C."""
    with open_project(project) as proj:
        proj.serve(host, port, labeler=labeler, starting=out.print_serving)


@commands.command("import-annotations")
def import_annotations(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV/TSV or Parquet: one row per item and annotator")],
    item_field: Annotated[str, typer.Option(help="Column holding the item id")] = "item",
    annotator_field: Annotated[str, typer.Option(help="Column holding the annotator's name")] = "annotator",
    value_field: Annotated[
        str,
        typer.Option(
            "--field",
            help=(
                "Column holding the answer (an object, or the value of the task's only field);"
                " '-' reads the output fields from the row itself"
            ),
        ),
    ] = "labels",
    fmt: FormatOpt = None,
    fix_labels: Annotated[
        bool,
        typer.Option(
            "--fix-labels",
            help=("Accept labels that differ from an allowed one only by brackets, quotes, spaces or case"),
        ),
    ] = False,
    labeler: LabelerOpt = LLM,
    project: ProjectOpt = None,
) -> None:
    """Import answers made elsewhere (long format: item, annotator, answer); all of the file or nothing."""
    with open_project(project) as proj:
        result = proj.import_annotations(
            path,
            item_field=item_field,
            annotator_field=annotator_field,
            value_field=None if value_field == "-" else value_field,
            fmt=fmt,
            labeler=labeler,
            fix_labels=fix_labels,
        )
    out.print_annotation_import(result)


@commands.command()
def aggregate(
    force: Annotated[bool, typer.Option("--force", help="Recompute even if no answer changed")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result, annotators' confusion matrices included")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Decide each answered item's gold label (majority or Dawid-Skene, per the task); disputes go to experts."""
    with open_project(project) as proj:
        result = proj.aggregate(force=force)
    if as_json:
        out.print_json(result.to_dict())
    else:
        out.print_aggregate(result)


@commands.command()
def agree(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    heatmap: Annotated[Optional[Path], typer.Option(help="Write pairwise agreement to a .png or .html")] = None,
    gold: Annotated[Optional[Path], typer.Option(help="Reference answers: item (or id) and output fields")] = None,
    models: Annotated[bool, typer.Option(help="Compare model labelers (label --as NAME) beside people")] = True,
    min_pair_items: Annotated[int, typer.Option(help="Leave out pairs sharing fewer items")] = 5,
    apply_rework: Annotated[
        bool, typer.Option("--rework", help=("Send batches under the match threshold back to the queue"))
    ] = False,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Agreement among annotators and models: kappa, alpha, per field and label, per annotator and batch."""
    with open_project(project) as proj:
        report = proj.agree(
            models=models,
            gold=gold,
            min_pair_items=min_pair_items,
            apply_rework=apply_rework,
            heatmap=heatmap,
            actor=actor,
        )
    if as_json:
        out.print_json(report.to_dict())
    else:
        out.print_agreement(report, heatmap)


@commands.command("import-labelstudio")
def import_labelstudio(
    path: Annotated[Path, typer.Argument(metavar="EXPORT.json", help="Label Studio's JSON export (Export > JSON)")],
    labeler: LabelerOpt = LLM,
    project: ProjectOpt = None,
) -> None:
    """Import a Label Studio JSON export as human annotations (importing it again adds nothing)."""
    with open_project(project) as proj:
        result = proj.import_labelstudio(path, labeler=labeler)
    out.print_labelstudio_import(result)
    if result.errors:
        raise SystemExit(1)


sync_commands = typer.Typer(help="Exchange items and answers with a review tool.", no_args_is_help=True)


@sync_commands.command("labelstudio")
def sync_labelstudio(
    url: Annotated[str, typer.Option(help="Label Studio's address, e.g. http://127.0.0.1:8080")],
    token_env: Annotated[str, typer.Option(help="Environment variable holding your Label Studio access token")],
    ls_project: Annotated[str, typer.Option("--project", help="Label Studio project title (created if missing)")],
    labeler: LabelerOpt = LLM,
    project_dir: Annotated[
        Optional[Path],
        typer.Option("--dir", "-p", help="labelloop project directory (default: found from the working directory)"),
    ] = None,
) -> None:
    """Push the items waiting for review to Label Studio and pull its finished annotations."""
    with open_project(project_dir) as proj:
        result = proj.sync_labelstudio(url, token_from_env(token_env), ls_project, labeler=labeler)
    out.print_labelstudio_sync(result)
    if result.errors:
        raise SystemExit(1)


__all__ = ["commands", "reviewer_commands", "sync_commands"]
