"""The bundled demo: real projects on bundled data, labeled by the embedded model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .engine import ProgressSink, RunResult
from .export import ExportResult
from .job import LabelOptions
from .project import Project
from .status import StatusSummary

# (project folder and template, bundled data file)
DEMO_TASKS = (("flight-booking", "flight_booking.jsonl"), ("sentiment", "sentiment.jsonl"))


@dataclass
class DemoResult:
    """One demo task: where its project is, its labeling run, where it stands, and its export."""

    root: Path
    run: RunResult
    status: StatusSummary
    exported: ExportResult


def demo_data_path(filename: str) -> Path:
    """Path of a bundled demo data file."""
    return Path(str(resources.files("labelloop") / "demo_data" / filename))


def run_demo(
    directory: str | Path,
    progress: Callable[[str], ProgressSink | None] = lambda name: None,
    *,
    limit: int | None = None,
    **overrides: Any,
) -> list[DemoResult]:
    """The whole loop for each demo task under ``directory``: init, ingest, label (validated and routed,
    at most ``limit`` items each), export. Reruns resume where they stopped."""
    results = []
    for name, data_file in DEMO_TASKS:
        root = Path(directory) / name
        with Project(root) if (root / "labelloop.yaml").exists() else Project.init(root, template=name) as project:
            project.ingest(demo_data_path(data_file), id_field="id", actor="demo")
            run = project.label(LabelOptions(limit=limit), progress=progress(name), actor="demo", **overrides)
            exported = project.export(root / "labels.jsonl", actor="demo")
            results.append(DemoResult(root, run, project.status(), exported))
    return results
