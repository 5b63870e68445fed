"""Privacy and accountability commands: audit, pii show, pii reveal."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import _print as out
from ._common import ActorOpt, JsonOpt, ProjectOpt, open_project

commands = typer.Typer()


@commands.command()
def audit(
    action: Annotated[
        Optional[str], typer.Option(help="Only this action (export, ingest, label, pii-reveal, ...)")
    ] = None,
    actor: Annotated[Optional[str], typer.Option(help="Only this actor")] = None,
    item: Annotated[Optional[str], typer.Option(help="Only this item")] = None,
    limit: Annotated[int, typer.Option(help="The newest N rows")] = 50,
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Who did what, when: exports, ingests, reviews, imports, PII reveals (the append-only audit log)."""
    with open_project(project) as proj:
        rows = proj.audit(action=action, actor=actor, item=item, limit=limit)
    if as_json:
        out.print_json(rows)
    else:
        out.print_audit(rows)


pii_commands = typer.Typer(help="PII: where it was found, and the originals for the key holder.", no_args_is_help=True)


@pii_commands.command("show")
def pii_show(item: Annotated[str, typer.Argument(help="Item id")], project: ProjectOpt = None) -> None:
    """Where PII was found in an item (type, offsets, detector, action; never the value)."""
    with open_project(project) as proj:
        out.print_json(proj.pii_findings(item))


@pii_commands.command("reveal")
def pii_reveal(
    item: Annotated[str, typer.Argument(help="Item id")], actor: ActorOpt = None, project: ProjectOpt = None
) -> None:
    """The original text and placeholder values of an item (needs the passphrase; logged)."""
    with open_project(project) as proj:
        out.print_json(proj.reveal_pii(item, actor=actor))
