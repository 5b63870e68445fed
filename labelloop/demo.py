"""The bundled demo: real projects on bundled data, labeled by the embedded model."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from .engine import ProgressSink, RunResult
from .export import ExportResult
from .project import Project

# (project folder and template, bundled data file)
DEMO_TASKS = (("flight-booking", "flight_booking.jsonl"), ("sentiment", "sentiment.jsonl"))


def demo_data_path(filename: str) -> Path:
    """Path of a bundled demo data file."""
    return Path(str(resources.files("labelloop") / "demo_data" / filename))


def run_demo(directory: str | Path, progress: Callable[[str], ProgressSink | None] = lambda name: None,
             **overrides) -> list[tuple[Project, RunResult, ExportResult]]:
    """The whole loop for each demo task under ``directory``: init, ingest, label (validated and
    routed), export. Reruns resume where they stopped."""
    results = []
    for name, data_file in DEMO_TASKS:
        root = Path(directory) / name
        project = Project(root) if (root / "labelloop.yaml").exists() else Project.init(root, template=name)
        project.ingest(demo_data_path(data_file), id_field="id")
        run = project.label(progress=progress(name), **overrides)
        exported = project.export(root / "labels.jsonl", actor="demo")
        results.append((project, run, exported))
    return results
