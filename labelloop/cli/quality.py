"""People's quality: ``test-questions add``, ``annotators`` (scores and retraining flags), ``guidelines digest``
and ``guidelines accept``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _print_quality as out
from ._common import ActorOpt, BackendOpt, BaseUrlOpt, JsonOpt, ModelOpt, ProjectOpt, open_project, servers

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


guideline_commands = typer.Typer(help="Guidelines from people's evidence: the digest, and accepting a sentence.",
                                 no_args_is_help=True)  # fmt: skip


@guideline_commands.command("digest")
def guidelines_digest(
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write the Markdown draft here")] = None,
    propose: Annotated[bool, typer.Option("--propose", help="The task's model drafts a sentence per group")] = False,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Settled disputes, corrections of the model and missed test questions, grouped by label pair or field."""
    overrides = {k: v for k, v in {"backend": backend, "model": model, **servers(base_url)}.items() if v}
    with open_project(project) as proj:
        found = proj.guideline_digest(propose=propose, out=out_path, **overrides)
        text = found.markdown(proj.spec)
    if as_json:
        out.print_json(found.to_dict())
    elif out_path is None:
        out.console.print(text, markup=False, highlight=False)
    else:
        out.console.print(f"digest: {len(found.groups)} groups written to {out_path}")


@guideline_commands.command("accept")
def guidelines_accept(
    sentence: Annotated[str, typer.Argument(help="The guideline sentence to add")],
    actor: ActorOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Add a sentence to the task's guidelines; the prompt version changes, so compare can measure it."""
    with open_project(project) as proj:
        before, after = proj.accept_guideline(sentence, actor=actor)
    out.console.print(f"guidelines: one sentence added; prompt version {before} → {after}")


__all__ = ["commands", "guideline_commands", "test_question_commands"]
