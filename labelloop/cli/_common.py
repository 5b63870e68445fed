"""What every command shares: the error handling, the common options and finding the project."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from .. import labelers
from ..errors import LabelloopError
from ..project import Project
from . import _print as out

if TYPE_CHECKING:
    from typer._click import Context  # what TyperGroup.invoke takes: typer's copy of click's Context


class Group(TyperGroup):
    """Turns every LabelloopError into one line on stderr and exit status 1."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabelloopError as exc:
            out.err_console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            out.err_console.print("interrupted: finished work is saved; rerun the command to resume")
            raise SystemExit(130) from None


def servers(base_url: list[str] | None) -> dict[str, Any]:
    """The model settings ``--base-url`` gives: one server, or several (``model.base_urls``)."""
    if not base_url:
        return {}
    return {"base_url": base_url[0]} if len(base_url) == 1 else {"base_urls": base_url}


def open_project(directory: Path | None) -> Project:
    """The project at ``--project``, or the nearest one at or above the working directory."""
    return Project.find(directory)


ProjectOpt = Annotated[
    Optional[Path],
    typer.Option("--project", "-p", help="Project directory (default: found from the working directory)"),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")]
ActorOpt = Annotated[
    Optional[str],
    typer.Option("--actor", help="Who you are, for the audit log (default: your operating-system user name)"),
]
BackendOpt = Annotated[Optional[str], typer.Option(help="llamacpp (embedded) or openai (any OpenAI-compatible server)")]
BaseUrlOpt = Annotated[
    Optional[list[str]],
    typer.Option(help="Server URL, e.g. http://127.0.0.1:8000/v1; repeat it for several servers of the model"),
]
ModelOpt = Annotated[Optional[str], typer.Option(help="Model name (openai) or GGUF path (llamacpp)")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Label at most N pending items")]
SampleOpt = Annotated[Optional[int], typer.Option(help="Label a random sample of N pending items")]
SeedOpt = Annotated[int, typer.Option(help="Seed for --sample")]
MaxCallsOpt = Annotated[Optional[int], typer.Option(help="Stop after this many model calls")]
MaxTokensOpt = Annotated[Optional[int], typer.Option(help="Stop dispatching once this many tokens are used")]
NoCacheOpt = Annotated[bool, typer.Option(help="Call the model even where a cached answer exists")]
LabelerOpt = Annotated[str, typer.Option("--as", help="Name this labeler (several models can label the same items)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
FormatOpt = Annotated[
    Optional[str], typer.Option("--format", help="jsonl, csv, tsv or parquet (default: from the suffix)")
]

LLM = labelers.LLM
