"""The flywheel's commands: embed, train, calibrate, simulate, dedup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .._extras import require
from . import _print_learn as out
from ._common import LLM, BackendOpt, BaseUrlOpt, JsonOpt, LabelerOpt, ModelOpt, ProjectOpt, open_project, servers

commands = typer.Typer()


@commands.command()
def embed(project: ProjectOpt = None) -> None:
    """Embed every item once with each embedder (all-MiniLM-L6-v2 unless learn.embeddings says otherwise, and
    learn.small_model.extra_embedders)."""
    with open_project(project) as proj:
        done = proj.embed()
    for name, added in done.items():
        out.console.print(f"{added} items embedded with {name}")


@commands.command()
def train(
    labeler: LabelerOpt = LLM,
    plot: Annotated[
        Optional[Path],
        typer.Option(help="Write the small model's reliability diagram (before/after calibration) to this PNG"),
    ] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Train the small model on people's labels, label every item with it, cross-check the LLM."""
    with open_project(project) as proj:
        result = proj.train(labeler=labeler, plot=plot)
    if as_json:
        out.print_json(result.to_dict())
    else:
        out.print_training(result)


@commands.command()
def calibrate(
    labeler: LabelerOpt = LLM,
    plot: Annotated[Optional[Path], typer.Option(help="Write a reliability diagram (before/after) to this PNG")] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Calibrate a labeler on people's labels: ECE before/after and the threshold with a precision guarantee."""
    with open_project(project) as proj:
        result = proj.calibrate(labeler=labeler, plot=plot)
    if as_json:
        out.print_json(result.__dict__)
    else:
        out.print_calibration(result)


@commands.command()
def simulate(
    gold: Annotated[Path, typer.Option(help="JSONL/CSV/Parquet with text and label (the task's output fields)")],
    target: Annotated[Optional[list[float]], typer.Option(help="Dataset accuracy to reach (repeatable)")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="The small model alone, no LLM")] = False,
    batch: Annotated[int, typer.Option(help="Items people review per round")] = 100,
    kind: Annotated[
        Optional[str], typer.Option(help="Outside a project: 'classify' (labels from the gold file)")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use a random sample of N gold items")] = None,
    workdir: Annotated[
        Optional[Path], typer.Option(help="Keep the work store here (reused: embeddings, LLM cache)")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where to write curves.png, report.html, simulation.json")
    ] = Path("simulation"),
    seed: Annotated[int, typer.Option(help="Seed of the random choices")] = 0,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Replay the loop with gold labels as the reviewer: human effort to reach each target accuracy."""
    replay_module = require("labelloop.learn.replay", "embed", "simulate")
    config = replay_module.SimulationConfig(targets=target or [0.95, 0.98], batch=batch, seed=seed)
    options = dict(
        workdir=workdir,
        out=out_dir,
        config=config,
        use_llm=not no_llm,
        limit=limit,
        progress=out.err_console.print,
        backend=backend,
        model=model,
        **servers(base_url),
    )
    if kind is None:
        with open_project(project) as proj:
            replay = proj.simulate(gold, **options)
    else:
        replay = replay_module.run_simulation(gold, kind=kind, **options)
    if as_json:
        out.print_json(replay.to_dict())
    else:
        out.print_replay(replay)


@commands.command()
def dedup(
    near: Annotated[bool, typer.Option(help="Near duplicates too (MinHash), not only exact ones")] = True,
    threshold: Annotated[Optional[float], typer.Option(help="Jaccard threshold (default: dedup.threshold)")] = None,
    project: ProjectOpt = None,
) -> None:
    """Group exact and near-duplicate items; propose a group's decided label to its other members."""
    with open_project(project) as proj:
        report = proj.find_duplicates(near=near, threshold=threshold)
    out.print_duplicates(report)
