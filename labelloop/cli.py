"""The ``labelloop`` command: a thin shell over the library (each command calls one function)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from . import _console as out
from .demo import run_demo
from .engine import LabelOptions
from .errors import LabelloopError
from .labelstudio import LabelStudioError, token_from_env
from .project import Project
from .spec import template_names


class _Group(TyperGroup):
    """Turns every LabelloopError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LabelloopError as exc:
            out.err_console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            out.err_console.print("interrupted: finished work is saved; rerun the command to resume")
            raise SystemExit(130) from None


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False,
                  help="Pre-label text with an LLM, check it, route the doubtful to people, export.")

ProjectOpt = Annotated[Optional[Path], typer.Option("--project", "-p", help="Project directory (default: found from the working directory)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")]


def _project(directory: Path | None) -> Project:
    return Project.find(directory)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the project in")],
    template: Annotated[str, typer.Option(help=f"Task template: {', '.join(template_names())}")] = "sentiment",
) -> None:
    """Create a project: DIRECTORY/labelloop.yaml from a template, and its store."""
    project = Project.init(directory, template)
    out.console.print(f"created {project.spec_path} ({template}); edit it, then: labelloop ingest FILE")


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV, TSV or Parquet file")],
    text_field: Annotated[Optional[str], typer.Option(help="Field holding the text (default: spec's input.text_field)")] = None,
    id_field: Annotated[Optional[str], typer.Option(help="Field holding a stable id (default: hash of the content)")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="jsonl, csv, tsv or parquet (default: from the suffix)")] = None,
    skip_bad: Annotated[Optional[Path], typer.Option(help="Write bad records to this JSONL file and go on")] = None,
    clean: Annotated[Optional[str], typer.Option(help="Cleaning profile: none, basic, web or zh (or a clean: block)")] = None,
    project: ProjectOpt = None,
) -> None:
    """Add the records of a file to the project (all or nothing; rerunning adds nothing new)."""
    with _project(project) as proj:
        out.print_ingest(proj.ingest(path, text_field=text_field, id_field=id_field, fmt=format, skip_bad=skip_bad,
                                     clean=clean))


def _label_options(labeler: str, limit: int | None, sample: int | None, seed: int, max_calls: int | None,
                   max_tokens: int | None, no_cache: bool) -> LabelOptions:
    return LabelOptions(labeler=labeler, limit=limit, sample=sample, seed=seed, max_calls=max_calls,
                        max_tokens=max_tokens, use_cache=not no_cache)


BackendOpt = Annotated[Optional[str], typer.Option(help="llamacpp (embedded) or openai (any OpenAI-compatible server)")]
BaseUrlOpt = Annotated[Optional[str], typer.Option(help="Server URL, e.g. http://127.0.0.1:8000/v1")]
ModelOpt = Annotated[Optional[str], typer.Option(help="Model name (openai) or GGUF path (llamacpp)")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Label at most N pending items")]
SampleOpt = Annotated[Optional[int], typer.Option(help="Label a random sample of N pending items")]
SeedOpt = Annotated[int, typer.Option(help="Seed for --sample")]
MaxCallsOpt = Annotated[Optional[int], typer.Option(help="Stop after this many model calls")]
MaxTokensOpt = Annotated[Optional[int], typer.Option(help="Stop dispatching once this many tokens are used")]
NoCacheOpt = Annotated[bool, typer.Option(help="Call the model even where a cached answer exists")]
LabelerOpt = Annotated[str, typer.Option("--as", help="Name this labeler (several models can label the same items)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


@app.command()
def plan(
    backend: BackendOpt = None, base_url: BaseUrlOpt = None, model: ModelOpt = None,
    limit: LimitOpt = None, sample: SampleOpt = None, seed: SeedOpt = 0, max_calls: MaxCallsOpt = None,
    no_cache: NoCacheOpt = False, labeler: LabelerOpt = "llm", project: ProjectOpt = None,
) -> None:
    """Show what 'label' would do: items, calls, token estimate and the first prompt."""
    options = _label_options(labeler, limit, sample, seed, max_calls, None, no_cache)
    with _project(project) as proj:
        out.print_plan(proj.plan(options, backend=backend, base_url=base_url, model=model))


@app.command()
def label(
    backend: BackendOpt = None, base_url: BaseUrlOpt = None, model: ModelOpt = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature")] = None,
    max_output_tokens: Annotated[Optional[int], typer.Option(help="max_tokens of each call")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds per call")] = None,
    retries: Annotated[Optional[int], typer.Option(help="Retries of a failed call")] = None,
    limit: LimitOpt = None, sample: SampleOpt = None, seed: SeedOpt = 0,
    max_calls: MaxCallsOpt = None, max_tokens: MaxTokensOpt = None, no_cache: NoCacheOpt = False,
    labeler: LabelerOpt = "llm", quiet: QuietOpt = False, project: ProjectOpt = None,
) -> None:
    """Label the pending items with the model (resumes after a crash; cached answers cost nothing)."""
    options = _label_options(labeler, limit, sample, seed, max_calls, max_tokens, no_cache)
    with _project(project) as proj:
        result = proj.label(options, progress=None if quiet else out.RichProgress(), backend=backend,
                            base_url=base_url, model=model, concurrency=concurrency, temperature=temperature,
                            max_tokens=max_output_tokens, timeout=timeout, retries=retries)
        out.print_run(result)


@app.command()
def status(
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Routing states and reasons, a confidence histogram, errors, tokens and recent runs."""
    with _project(project) as proj:
        summary = proj.status()
        if as_json:
            out.print_json(summary.__dict__)
        else:
            out.print_status(summary)


@app.command()
def logs(
    count: Annotated[int, typer.Option("-n", help="How many calls")] = 10,
    full: Annotated[bool, typer.Option(help="Include the full request and raw response")] = False,
    project: ProjectOpt = None,
) -> None:
    """Show the most recent model calls (latency, tokens, error, output) as JSON."""
    with _project(project) as proj:
        out.print_json(proj.logs(count, full=full))


@app.command("export")
def export_(
    path: Annotated[Path, typer.Argument(metavar="OUT", help="Output file (a folder for --format hf)")],
    format: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet, hf, alpaca, chat; conll and spacy (spans, intent_slots); atis (intent_slots); or labelstudio (tasks JSON + OUT.xml config)")] = "jsonl",
    tokenizer: Annotated[str, typer.Option(help="Tokens for conll, atis and spacy: auto (characters for CJK text, words otherwise), char or whitespace")] = "auto",
    keep_fields: Annotated[Optional[str], typer.Option(help="Comma-separated original fields to carry")] = None,
    include_unreviewed: Annotated[bool, typer.Option(help="Also export schema-valid predictions not yet reviewed")] = False,
    labeler: LabelerOpt = "llm", project: ProjectOpt = None,
) -> None:
    """Export the final labels: human answer if any, else the accepted prediction."""
    keep = [name.strip() for name in keep_fields.split(",") if name.strip()] if keep_fields else None
    with _project(project) as proj:
        if format == "labelstudio":
            if keep or include_unreviewed or tokenizer != "auto":
                raise LabelStudioError("--keep-fields, --include-unreviewed and --tokenizer do not apply to"
                                       " --format labelstudio")
            out.print_labelstudio_export(proj.export_labelstudio(path, labeler=labeler))
        else:
            out.print_export(proj.export(path, format, labeler=labeler, keep_fields=keep,
                                          include_unreviewed=include_unreviewed, tokenizer=tokenizer))


@app.command("import-labelstudio")
def import_labelstudio(
    path: Annotated[Path, typer.Argument(metavar="EXPORT.json", help="Label Studio's JSON export (Export > JSON)")],
    labeler: LabelerOpt = "llm", project: ProjectOpt = None,
) -> None:
    """Import a Label Studio JSON export as human annotations (importing it again adds nothing)."""
    with _project(project) as proj:
        result = proj.import_labelstudio(path, labeler=labeler)
    out.print_labelstudio_import(result)
    if result.errors:
        raise SystemExit(1)


sync_app = typer.Typer(help="Exchange items and answers with a review tool.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


@sync_app.command("labelstudio")
def sync_labelstudio(
    url: Annotated[str, typer.Option(help="Label Studio's address, e.g. http://127.0.0.1:8080")],
    token_env: Annotated[str, typer.Option(help="Environment variable holding your Label Studio access token")],
    ls_project: Annotated[str, typer.Option("--project", help="Label Studio project title (created if missing)")],
    labeler: LabelerOpt = "llm",
    project_dir: Annotated[Optional[Path], typer.Option("--dir", "-p", help="labelloop project directory (default: found from the working directory)")] = None,
) -> None:
    """Push the items waiting for review to Label Studio and pull its finished annotations."""
    with _project(project_dir) as proj:
        result = proj.sync_labelstudio(url, token_from_env(token_env), ls_project, labeler=labeler)
    out.print_labelstudio_sync(result)
    if result.errors:
        raise SystemExit(1)


@app.command()
def review(
    reviewer: Annotated[str, typer.Option(help="Your name, recorded with every decision")],
    limit: Annotated[Optional[int], typer.Option(help="Stop after this many decisions")] = None,
    adjudicate: Annotated[bool, typer.Option(
        "--adjudicate", help="Decide disputed items with every answer side by side (expert role)")] = False,
    labeler: LabelerOpt = "llm", project: ProjectOpt = None,
) -> None:
    """Review doubtful predictions in the terminal, lowest confidence first."""
    with _project(project) as proj:
        summary = proj.review_in_terminal(reviewer, labeler=labeler, limit=limit, console=out.console,
                                          adjudicate=adjudicate)
        out.console.print(f"{summary.reviewed} {'decided' if adjudicate else 'reviewed'}, {summary.skipped} skipped,"
                          f" {summary.left} left in the queue")


@app.command("import-annotations")
def import_annotations(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV/TSV or Parquet: one row per item and annotator")],
    item_field: Annotated[str, typer.Option(help="Column holding the item id")] = "item",
    annotator_field: Annotated[str, typer.Option(help="Column holding the annotator's name")] = "annotator",
    value_field: Annotated[str, typer.Option("--field", help=(
        "Column holding the answer (an object, or the value of the task's only field);"
        " '-' reads the output fields from the row itself"))] = "labels",
    fmt: Annotated[Optional[str], typer.Option("--format", help="jsonl, csv, tsv or parquet (default: from the suffix)")] = None,
    fix_labels: Annotated[bool, typer.Option("--fix-labels", help=(
        "Accept labels that differ from an allowed one only by brackets, quotes, spaces or case"))] = False,
    labeler: LabelerOpt = "llm", project: ProjectOpt = None,
) -> None:
    """Import answers made elsewhere (long format: item, annotator, answer); all of the file or nothing."""
    with _project(project) as proj:
        result = proj.import_annotations(path, item_field=item_field, annotator_field=annotator_field,
                                         value_field=None if value_field == "-" else value_field, fmt=fmt,
                                         labeler=labeler, fix_labels=fix_labels)
    fixed = f"; {result.fixed_labels} labels fixed" if result.fixed_labels else ""
    out.console.print(f"{result.path}: {result.added} answers added ({result.records - result.added} already there)"
                      f" from {result.annotators} annotators on {result.items} items{fixed}")


@app.command()
def aggregate(
    force: Annotated[bool, typer.Option("--force", help="Recompute even if no answer changed")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result, annotators' confusion matrices included")] = False,
    project: ProjectOpt = None,
) -> None:
    """Decide each answered item's gold label (majority or Dawid-Skene, per the task); disputes go to experts."""
    with _project(project) as proj:
        result = proj.aggregate(force=force)
    if as_json:
        out.print_json(result.to_dict())
    else:
        out.print_aggregate(result)


@app.command()
def agree(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    heatmap: Annotated[Optional[Path], typer.Option(help="Write pairwise agreement to a .png or .html")] = None,
    gold: Annotated[Optional[Path], typer.Option(help="Reference answers: item (or id) and output fields")] = None,
    models: Annotated[bool, typer.Option(help="Compare model labelers (label --as NAME) beside people")] = True,
    min_pair_items: Annotated[int, typer.Option(help="Leave out pairs sharing fewer items")] = 5,
    apply_rework: Annotated[bool, typer.Option("--rework", help=(
        "Send batches under the match threshold back to the queue"))] = False,
    project: ProjectOpt = None,
) -> None:
    """Agreement among annotators and models: kappa, alpha, per field and label, per annotator and batch."""
    with _project(project) as proj:
        report = proj.agree(models=models, gold=gold, min_pair_items=min_pair_items, apply_rework=apply_rework,
                            heatmap=heatmap)
    if as_json:
        out.print_json(report.to_dict())
    else:
        out.print_agreement(report, heatmap)


reviewer_app = typer.Typer(help="Manage the reviewers of the web app.", no_args_is_help=True)
app.add_typer(reviewer_app, name="reviewer")


@reviewer_app.command("add")
def reviewer_add(
    name: Annotated[str, typer.Argument(help="The reviewer's name")],
    role: Annotated[str, typer.Option(help="annotator or expert")] = "annotator",
    project: ProjectOpt = None,
) -> None:
    """Add a reviewer (or issue a new token) and print their login token."""
    with _project(project) as proj:
        token = proj.add_reviewer(name, role)
    out.console.print(f"reviewer {name} ({role}); token (shown once): {token}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (keep 127.0.0.1 unless behind a proxy)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8400,
    labeler: LabelerOpt = "llm", project: ProjectOpt = None,
) -> None:
    """Run the review web app (reviewers log in with their token)."""
    import uvicorn

    with _project(project) as proj:
        out.console.print(f"review app on http://{host}:{port}/ — add reviewers with: labelloop reviewer add NAME")
        uvicorn.run(proj.web_app(labeler), host=host, port=port, log_level="warning")


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to create the demo projects")] = Path("labelloop-demo"),
    quiet: QuietOpt = False,
) -> None:
    """The whole loop on bundled demo data with the embedded model (no server, no network)."""
    results = run_demo(directory, progress=lambda name: None if quiet else out.RichProgress(name))
    for project, run, exported in results:
        out.console.print(f"[bold]{project.root}[/bold]")
        out.print_run(run)
        out.print_status(project.status())
        out.print_export(exported)
        project.close()
    first = results[0][0].root
    out.console.print(f"next: cd {first} && labelloop review --reviewer YOU   (then: labelloop export labels.jsonl)")


from . import cli_hygiene, cli_learn  # noqa: E402  (register their commands on app)

__all__ = ["app", "cli_hygiene", "cli_learn", "main"]


def main() -> None:
    app(prog_name="labelloop")


if __name__ == "__main__":
    sys.exit(main())
