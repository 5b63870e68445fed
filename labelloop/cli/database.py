"""Where a project's data lives: ``migrate-store``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from . import _print as out
from ._common import ActorOpt, JsonOpt, ProjectOpt, open_project

commands = typer.Typer()


@commands.command("migrate-store")
def migrate_store(
    to: Annotated[str, typer.Option("--to", help="The empty target: postgresql://user@host/db (or a SQLite file)")],
    as_json: JsonOpt = False,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Copy the project's data to another database, verified per table by row count and content hash."""
    with open_project(project) as proj:
        moved = proj.migrate_store(to, actor=actor)
    if as_json:
        out.print_json(
            {"source": moved.source, "target": moved.target, "tables": [vars(table) for table in moved.tables]}
        )
        return
    table = Table(title=f"{moved.source} → {moved.target}")
    for column in ("table", "rows", "content hash (both sides)"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for copy in moved.tables:
        table.add_row(copy.table, f"{copy.target_rows:,}", copy.target_hash[:16])
    out.console.print(table)
    out.console.print(
        f"{moved.rows:,} rows copied and verified. Point the project at it: 'store: {moved.target}' in"
        " labelloop.yaml (or LABELLOOP_DATABASE_URL)."
    )
