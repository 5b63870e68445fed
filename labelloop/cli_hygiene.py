"""Privacy and accountability commands (audit, pii), registered on the main CLI app."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import _console as out
from .cli import JsonOpt, ProjectOpt, _project, app


@app.command()
def audit(
    action: Annotated[Optional[str], typer.Option(help="Only this action (export, ingest, label, pii-reveal, ...)")] = None,
    actor: Annotated[Optional[str], typer.Option(help="Only this actor")] = None,
    item: Annotated[Optional[str], typer.Option(help="Only this item")] = None,
    limit: Annotated[int, typer.Option(help="The newest N rows")] = 50,
    as_json: JsonOpt = False, project: ProjectOpt = None,
) -> None:
    """Who did what, when: exports, ingests, reviews, imports, PII reveals (the append-only audit log)."""
    with _project(project) as proj:
        rows = proj.audit(action=action, actor=actor, item=item, limit=limit)
    if as_json:
        out.print_json(rows)
    else:
        out.print_audit(rows)


pii_app = typer.Typer(help="PII: where it was found, and the originals for the key holder.", no_args_is_help=True)
app.add_typer(pii_app, name="pii")


@pii_app.command("show")
def pii_show(item: Annotated[str, typer.Argument(help="Item id")], project: ProjectOpt = None) -> None:
    """Where PII was found in an item (type, offsets, detector, action; never the value)."""
    with _project(project) as proj:
        out.print_json(proj.pii_findings(item))


@pii_app.command("reveal")
def pii_reveal(
    item: Annotated[str, typer.Argument(help="Item id")],
    actor: Annotated[str, typer.Option(help="Your name, for the audit log")] = "cli", project: ProjectOpt = None,
) -> None:
    """The original text and placeholder values of an item (needs the passphrase; logged)."""
    with _project(project) as proj:
        out.print_json(proj.reveal_pii(item, actor=actor))
