"""The pipeline's commands, in order: init, ingest, plan, label, status, logs, export, and the demo."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..demo import run_demo
from ..job import LabelOptions
from ..lake import RayOptions
from ..project import Project
from ..spec import template_names
from . import _print as out
from ._common import (
    LLM,
    ActorOpt,
    BackendOpt,
    BaseUrlOpt,
    FormatOpt,
    JsonOpt,
    LabelerOpt,
    LimitOpt,
    MaxCallsOpt,
    MaxTokensOpt,
    ModelOpt,
    NoCacheOpt,
    ProjectOpt,
    QuietOpt,
    SampleOpt,
    SeedOpt,
    open_project,
    servers,
)

commands = typer.Typer()


@commands.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the project in")],
    template: Annotated[str, typer.Option(help=f"Task template: {', '.join(template_names())}")] = "sentiment",
) -> None:
    """Create a project: DIRECTORY/labelloop.yaml from a template, and its store."""
    project = Project.init(directory, template)
    out.console.print(f"created {project.spec_path} ({template}); edit it, then: labelloop ingest FILE")


@commands.command()
def ingest(
    path: Annotated[Optional[Path], typer.Argument(help="JSONL, CSV, TSV or Parquet file")] = None,
    from_sql: Annotated[
        Optional[str],
        typer.Option(help="Read a database instead: a SQLAlchemy URL (postgresql://, mysql://, sqlite:///)"),
    ] = None,
    query: Annotated[Optional[str], typer.Option(help="With --from-sql: the SELECT whose rows become items")] = None,
    since_column: Annotated[
        Optional[str], typer.Option(help="With --from-sql: take only rows from the last run's value of this column on")
    ] = None,
    every: Annotated[
        Optional[str], typer.Option(help="With --from-sql: read again every interval (30s, 5m, 1h) until Ctrl-C")
    ] = None,
    text_field: Annotated[
        Optional[str], typer.Option(help="Field holding the text (default: spec's input.text_field)")
    ] = None,
    id_field: Annotated[
        Optional[str], typer.Option(help="Field holding a stable id (default: hash of the content)")
    ] = None,
    format: FormatOpt = None,
    skip_bad: Annotated[Optional[Path], typer.Option(help="Write bad records to this JSONL file and go on")] = None,
    clean: Annotated[
        Optional[str], typer.Option(help="Cleaning profile: none, basic, web or zh (or a clean: block)")
    ] = None,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Add the records of a file to the project (all or nothing; rerunning adds nothing new), or the rows of a
    database query (incrementally: changed rows are labeled and reviewed again)."""
    if (path is None) == (from_sql is None) or (from_sql is not None and not query):
        raise typer.BadParameter("give a file, or --from-sql URL with --query")
    if from_sql is not None:
        assert query is not None
        _ingest_sql(from_sql, query, since_column, text_field, id_field, every, actor, project)
        return
    assert path is not None
    with open_project(project) as proj:
        out.print_ingest(
            proj.ingest(
                path, text_field=text_field, id_field=id_field, fmt=format, skip_bad=skip_bad, clean=clean, actor=actor
            )
        )


@commands.command("ingest-docs")
def ingest_docs(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Text, Markdown or JSONL (id, text, title, updated_at) files, or directories of them"),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="The collection they belong to (default: the qa spec's, else 'default')")
    ] = None,
    from_sql: Annotated[
        Optional[str], typer.Option("--from-sql", help="A database URL whose --query rows are documents too")
    ] = None,
    query: Annotated[Optional[str], typer.Option(help="With --from-sql: SELECT id, text[, title, updated_at]")] = None,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Add documents, split into paragraphs (offsets, sentences); a changed document becomes a new version."""
    if (from_sql is None) != (query is None):
        raise typer.BadParameter("--from-sql and --query go together")
    if not paths and from_sql is None:
        raise typer.BadParameter("give files or directories of documents, or --from-sql URL with --query")
    with open_project(project) as proj:
        sql = (from_sql, query) if from_sql and query else None
        result = proj.ingest_docs(list(paths or []), collection=collection, from_sql=sql, actor=actor)
        documents, paragraphs = proj.store.count_documents()
    items = f"; {result.items} paragraphs added as items" if proj.spec.kind == "qa_generate" else ""
    out.console.print(
        f"{result.documents} documents read from {len(result.files)} files: {result.added} added, {result.updated}"
        f" changed (a new version each), {result.unchanged} unchanged; {result.paragraphs} paragraphs stored"
        f" ({documents} documents, {paragraphs} paragraphs in the project){items}"
    )


def _ingest_sql(
    url: str,
    query: str,
    since_column: str | None,
    text_field: str | None,
    id_field: str | None,
    every: str | None,
    actor: str | None,
    project: Path | None,
) -> None:
    pause = parse_interval(every) if every else None
    with open_project(project) as proj:
        while True:
            result = proj.ingest_sql(
                url, query, since_column=since_column, text_field=text_field, id_field=id_field, actor=actor
            )
            out.console.print(
                f"{result.added:,} added, {result.changed:,} changed (to label and review again),"
                f" {result.unchanged:,} unchanged" + (f"; watermark {result.watermark}" if result.watermark else "")
            )
            if pause is None:
                return
            time.sleep(pause)


def parse_interval(text: str) -> float:
    """Seconds in ``30s``, ``5m``, ``1h`` (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not an interval like 30s, 5m or 1h", param_hint="--every")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@commands.command()
def plan(
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    seed: SeedOpt = 0,
    max_calls: MaxCallsOpt = None,
    no_cache: NoCacheOpt = False,
    labeler: LabelerOpt = LLM,
    project: ProjectOpt = None,
) -> None:
    """Show what 'label' would do: items, calls, token estimate and the first prompt."""
    options = LabelOptions(
        labeler=labeler, limit=limit, sample=sample, seed=seed, max_calls=max_calls, use_cache=not no_cache
    )
    with open_project(project) as proj:
        out.print_plan(proj.plan(options, backend=backend, model=model, **servers(base_url)))


@commands.command()
def label(
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature")] = None,
    max_output_tokens: Annotated[Optional[int], typer.Option(help="max_tokens of each call")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds per call")] = None,
    retries: Annotated[Optional[int], typer.Option(help="Retries of a failed call")] = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    seed: SeedOpt = 0,
    max_calls: MaxCallsOpt = None,
    max_tokens: MaxTokensOpt = None,
    no_cache: NoCacheOpt = False,
    labeler: LabelerOpt = LLM,
    lease_seconds: Annotated[
        float, typer.Option(help="Seconds a claimed item stays this worker's without a renewal (several workers)")
    ] = 60.0,
    runner: Annotated[str, typer.Option(help="local (this process), or ray (a Ray cluster; [ray] extra)")] = "local",
    ray_address: Annotated[
        Optional[str], typer.Option(help="With --runner ray: auto or HOST:PORT of a cluster, or none for a local Ray")
    ] = None,
    input: Annotated[
        Optional[list[str]],
        typer.Option(help="With --runner ray: Parquet/JSONL files, globs or URLs to label without ingesting them"),
    ] = None,
    output: Annotated[
        Optional[str], typer.Option(help="With --input: the directory of prediction and call shards")
    ] = None,
    ray_workers: Annotated[Optional[int], typer.Option(help="With --runner ray: actors (default: the CPUs)")] = None,
    shard_rows: Annotated[int, typer.Option(help="With --runner ray: items per unit of work and shard")] = 5000,
    quiet: QuietOpt = False,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Label the pending items with the model (resumes after a crash; cached answers cost nothing). Start it in
    several processes, here or on other machines sharing the database, and they share the items. With
    --runner ray the work runs on a Ray cluster; with --input, files are labeled there without entering the
    store, and only the items routed to review are imported."""
    if runner not in ("local", "ray"):
        raise typer.BadParameter("local or ray", param_hint="--runner")
    if runner == "local" and (input or output or ray_address or ray_workers):
        raise typer.BadParameter("--input, --output, --ray-address and --ray-workers need --runner ray")
    ray = (
        RayOptions(ray_address, list(input or []), output, ray_workers, shard_rows=shard_rows)
        if runner == "ray"
        else None
    )
    options = LabelOptions(
        lease_seconds=lease_seconds,
        labeler=labeler,
        limit=limit,
        sample=sample,
        seed=seed,
        max_calls=max_calls,
        max_tokens=max_tokens,
        use_cache=not no_cache,
    )
    with open_project(project) as proj:
        overrides = dict(
            backend=backend,
            **servers(base_url),
            model=model,
            concurrency=concurrency,
            temperature=temperature,
            max_tokens=max_output_tokens,
            timeout=timeout,
            retries=retries,
        )
        bar = None if quiet else out.RichProgress()
        if ray is not None:
            out.print_ray_run(proj.label_on_ray(ray, options, progress=bar, actor=actor, **overrides))
        else:
            out.print_run(proj.label(options, progress=bar, actor=actor, **overrides))


@commands.command()
def status(as_json: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Routing states and reasons, a confidence histogram, errors, tokens and recent runs."""
    with open_project(project) as proj:
        summary = proj.status()
    if as_json:
        out.print_json(summary.__dict__)
    else:
        out.print_status(summary)


@commands.command()
def logs(
    count: Annotated[int, typer.Option("-n", help="How many calls")] = 10,
    full: Annotated[bool, typer.Option(help="Include the full request and raw response")] = False,
    project: ProjectOpt = None,
) -> None:
    """Show the most recent model calls (latency, tokens, error, output) as JSON."""
    with open_project(project) as proj:
        out.print_json(proj.logs(count, full=full))


@commands.command("export")
def export_(
    path: Annotated[Path, typer.Argument(metavar="OUT", help="Output file (a folder for --format hf)")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help=(
                "jsonl, csv, parquet, hf, alpaca, chat; conll and spacy (spans, intent_slots); atis (intent_slots);"
                " or labelstudio (tasks JSON + OUT.xml config)"
            ),
        ),
    ] = "jsonl",
    tokenizer: Annotated[
        str,
        typer.Option(
            help=(
                "Tokens for conll, atis and spacy: auto (characters for CJK text, words otherwise), char or whitespace"
            )
        ),
    ] = "auto",
    keep_fields: Annotated[Optional[str], typer.Option(help="Comma-separated original fields to carry")] = None,
    include_unreviewed: Annotated[
        bool, typer.Option(help="Also export schema-valid predictions not yet reviewed")
    ] = False,
    labeler: LabelerOpt = LLM,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Export the final labels: human answer if any, else the accepted prediction."""
    keep = [name.strip() for name in keep_fields.split(",") if name.strip()] if keep_fields else None
    with open_project(project) as proj:
        out.print_export(
            proj.export(
                path,
                format,
                labeler=labeler,
                keep_fields=keep,
                include_unreviewed=include_unreviewed,
                tokenizer=tokenizer,
                actor=actor,
            )
        )


@commands.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to create the demo projects")] = Path("labelloop-demo"),
    limit: Annotated[Optional[int], typer.Option(help="Label at most N items of each demo task")] = None,
    quiet: QuietOpt = False,
) -> None:
    """The whole loop on bundled demo data with the embedded model (no server, no network)."""
    results = run_demo(directory, progress=lambda name: None if quiet else out.RichProgress(name), limit=limit)
    out.print_demo(results)
