"""``labelloop simulate``: load a gold file, label it like a project would, replay the loop, write the report.

The gold items go into a work store (``labelloop.db`` in ``workdir``, kept so that a rerun reuses its
embeddings and the LLM's cached answers; a temporary directory otherwise) through the same stages as a
project's (:func:`~labelloop.ingest.ingest_file`, :func:`~labelloop.engine.label`): they are embedded by
every embedder of the project, labeled by the task's model unless ``use_llm`` is off, and handed to
:func:`~labelloop.learn.simulate.simulate` with their gold labels — the flywheel, and on the same items the
baselines that price the guarantee: random batches (stopped by an oracle) and LLM-only routing.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import labelers
from ..engine import label
from ..errors import InputError, ProjectError
from ..ingest import ingest_file
from ..readers import read_records
from ..spec import ClassifySpec, TaskSpec, parse_spec
from ..store import Store
from .embed import create_embedder, embedder_settings, ensure_embeddings, load_embeddings
from .simulate import Labels, SimulationConfig, simulate
from .simulation_report import Replay, write_simulation_report


def read_labeled_texts(path: Path, spec: TaskSpec | None, limit: int | None, seed: int) -> list[dict[str, Any]]:
    """Rows of ``text`` and ``label`` (or the task's ``label`` output field) from a JSONL/CSV/Parquet file."""
    rows = []
    for record in read_records(path):
        if record.error is not None:
            raise record.error
        data = record.data or {}
        label = data.get(
            "label", (data.get("output") or {}).get("label") if isinstance(data.get("output"), dict) else None
        )
        for name, value in (("text", data.get("text")), ("label", label)):
            if not isinstance(value, str) or not value:
                raise InputError(str(path), record.line, "missing or not text", field=name)
        if spec is not None and isinstance(spec, ClassifySpec) and label not in spec.label_names:
            raise InputError(str(path), record.line, f"{label!r} is not one of the task's labels", field="label")
        rows.append({"id": str(data.get("id") or f"g{record.line:06d}"), "text": data["text"], "label": label})
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def throwaway_spec(labels: list[str]) -> str:
    """A classify task whose labels are the gold file's label set (``--kind classify`` outside a project)."""
    return yaml.safe_dump(
        {
            "name": "simulated",
            "kind": "classify",
            "instruction": "Choose the label that fits the text.",
            "labels": labels,
        },
        allow_unicode=True,
        sort_keys=False,
    )


def run_simulation(
    gold: str | Path,
    *,
    spec: TaskSpec | None = None,
    kind: str | None = None,
    workdir: str | Path | None = None,
    out: str | Path = "simulation",
    config: SimulationConfig | None = None,
    use_llm: bool = True,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    **model_overrides: Any,
) -> Replay:
    """Replay the loop on a gold file (see the module docstring); writes the PNG and HTML report to ``out``.

    ``spec`` is the task (a project's); without one, ``kind`` (``classify``, the default) builds a task
    whose labels are the gold file's. ``model_overrides`` change the task's model settings.
    """
    config = config or SimulationConfig()
    data, calls = prepare_gold(
        gold,
        spec=spec,
        kind=kind,
        workdir=workdir,
        use_llm=use_llm,
        limit=limit,
        seed=config.seed,
        progress=progress,
        **model_overrides,
    )
    return replay(data, config, out, llm_calls=calls, progress=progress)


def prepare_gold(
    gold: str | Path,
    *,
    spec: TaskSpec | None = None,
    kind: str | None = None,
    workdir: str | Path | None = None,
    use_llm: bool = True,
    limit: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    **model_overrides: Any,
) -> tuple[Labels, int]:
    """The gold file as a project would see it: every item embedded by each of the task's embedders and,
    unless ``use_llm`` is off, labeled by its model; (the data, the LLM calls made)."""
    if spec is not None and not isinstance(spec, ClassifySpec):
        raise ProjectError(f"simulate needs a classify task; this project's task is {spec.kind}")
    if spec is None and kind not in (None, "classify"):
        raise ProjectError(f"--kind {kind}: simulate knows classify tasks")
    rows = read_labeled_texts(Path(gold), spec, limit, seed)
    labels = sorted({r["label"] for r in rows})
    if len(labels) < 2:
        raise InputError(str(gold), None, "the gold labels need at least two classes")
    spec = spec or parse_spec(throwaway_spec(labels))
    say = progress or (lambda message: None)
    with _work_store(workdir) as store:
        _ingest(store, spec, rows)
        ids = [r["id"] for r in rows]
        vectors = {}
        for settings in embedder_settings(spec):
            embedder = create_embedder(settings)
            say(f"embedding {len(rows)} items with {embedder.name}")
            ensure_embeddings(store, embedder)
            vectors[embedder.name] = load_embeddings(store, embedder.name).rows(ids)
        data = Labels(np.array([r["label"] for r in rows]), vectors)
        calls = 0
        if use_llm:
            say(f"labeling {len(rows)} items with the task's model")
            result = label(store, spec, spec.model.with_overrides(model_overrides), actor="simulate")
            calls = result.counts.calls
            data.llm_label, data.llm_confidence = _llm_answers(store, ids)
    return data, calls


def replay(
    data: Labels,
    config: SimulationConfig,
    out: str | Path = "simulation",
    *,
    llm_calls: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Replay:
    """The flywheel and its baselines on the same items — random batches (oracle-stopped) and, when ``data``
    has the LLM's answers, LLM-only routing — with the report written to ``out``."""
    say = progress or (lambda message: None)
    say("replaying the loop")
    flywheel = simulate(data, config, "flywheel")
    say("replaying the baselines: random batches" + (", LLM-only routing" if data.has_llm else ""))
    random_batches = simulate(data, config, "random")
    llm_only = simulate(data, config, "llm_only") if data.has_llm else None
    result = Replay(
        flywheel, llm_only, list(config.targets), len(data.gold), llm_calls, random=random_batches, level=config.level
    )
    if data.has_llm:
        result.llm_accuracy = float(np.mean(data.llm()[0] == data.gold))
    result.files = write_simulation_report(result, Path(out))
    return result


@contextmanager
def _work_store(workdir: str | Path | None) -> Iterator[Store]:
    """The work store: ``labelloop.db`` in ``workdir`` (created or reused) or in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="labelloop-simulate-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        store = Store.open(root / "labelloop.db")
        try:
            yield store
        finally:
            store.close()


def _ingest(store: Store, spec: TaskSpec, rows: list[dict[str, Any]]) -> None:
    path = Path(store.path).parent / "gold-items.jsonl"
    path.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    ingest_file(store, spec, path, id_field="id", actor="simulate")


def _llm_answers(store: Store, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The LLM's current label and confidence per item ("" and 0 where it gave none)."""
    found = {row["item_id"]: row for row in store.current_predictions(labelers.LLM)}
    labels, confidence = [], []
    for item_id in ids:
        row = found.get(item_id)
        output = json.loads(row["output"]) if row is not None and row["output"] else {}
        labels.append(str(output.get("label") or ""))
        confidence.append(float(row["confidence"]) if row is not None and row["confidence"] is not None else 0.0)
    return np.array(labels), np.array(confidence)
