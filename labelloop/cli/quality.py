"""People's quality: ``test-questions add``, ``annotators`` (scores and retraining flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _print_quality as out
from ._common import ActorOpt, JsonOpt, ProjectOpt, open_project

commands = typer.Typer()
test_question_commands = typer.Typer(help="Items with known answers mixed into annotators' queues.",
                                     no_args_is_help=True)  # fmt: skip


@test_question_commands.command("add")
def test_questions_add(
    path: Annotated[
        Optional[Path], typer.Argument(metavar="[FILE]", help="JSONL/CSV/Parquet: id, text (input fields), the answer")
    ] = None,
    from_experts: Annotated[
        bool, typer.Option("--from-experts", help="Every item an expert decided, with the expert's answer")
    ] = False,
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Add test questions: they look like any other item to annotators and never count as data."""
    with open_project(project) as proj:
        added = proj.add_test_questions(path, from_experts=from_experts, actor=actor)
        total = len(proj.store.test_questions())
    out.console.print(f"{added} test questions added ({total} in all); label them like other items for pre-labels")


@commands.command()
def annotators(as_json: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Each annotator's accuracy on test questions, kappa against consensus and experts, speed, and flags."""
    with open_project(project) as proj:
        scores = proj.annotators()
    if as_json:
        out.print_json([s.to_dict() for s in scores])
    else:
        out.print_annotators(scores)


__all__ = ["commands", "test_question_commands"]
