"""The ``labelloop`` command: a thin shell over the library.

Each command parses its arguments, calls one library function (a :class:`~labelloop.Project` method)
and prints the result (:mod:`._print`); the commands live by topic in :mod:`.pipeline`,
:mod:`.people`, :mod:`.quality`, :mod:`.learn`, :mod:`.compare`, :mod:`.hygiene` and :mod:`.database`, and are added
to one app here.
"""

from __future__ import annotations

import typer

from . import compare, database, hygiene, learn, people, pipeline, quality
from ._common import Group

app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    help="Pre-label text with an LLM, check it, route the doubtful to people, export.",
)
app.add_typer(pipeline.commands)
app.add_typer(people.commands)
app.add_typer(people.reviewer_commands, name="reviewer")
app.add_typer(people.sync_commands, name="sync")
app.add_typer(quality.commands)
app.add_typer(quality.test_question_commands, name="test-questions")
app.add_typer(quality.guideline_commands, name="guidelines")
app.add_typer(learn.commands)
app.add_typer(compare.commands)
app.add_typer(hygiene.commands)
app.add_typer(database.commands)
app.add_typer(hygiene.pii_commands, name="pii")

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="labelloop")
