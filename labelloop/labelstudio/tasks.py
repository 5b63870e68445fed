"""Label Studio's JSON files: exporting every item as a task (its current prediction as the
pre-annotation, the labeling config beside it) and importing the annotations of a Label Studio export, or
of the tasks a sync pulled, as human answers. Every annotation is checked against the task's JSON Schema;
importing the same annotation again adds nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .. import labelers
from .._actor import actor_or_default
from .._files import atomic_output
from ..spec import TaskSpec
from ..store import Store
from .config import Field, LabelStudioError, fields_of, from_result, labeling_config, to_result

ACTION = "import-labelstudio"  # annotation action and audit-log action of an imported answer


@dataclass
class LabelStudioExport:
    """What ``export_tasks`` wrote: the tasks JSON and, beside it, the labeling config XML."""

    tasks_path: str
    config_path: str
    tasks: int
    predictions: int


@dataclass
class ImportResult:
    """Annotations imported, already imported before, cancelled in Label Studio, and one line per bad one."""

    imported: int = 0
    skipped_existing: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)


def export_tasks(
    store: Store, spec: TaskSpec, out: str | Path, labeler: str = labelers.LLM, actor: str | None = None
) -> LabelStudioExport:
    """Write every item as a task to ``out`` (JSON), with the current prediction of ``labeler`` as its
    pre-annotation, and the labeling config beside it (``out`` with the suffix ``.xml``)."""
    out = Path(out)
    if out.suffix == ".xml":
        raise LabelStudioError(f"{out}: the tasks file must not end in .xml (the labeling config goes there)")
    config_path, fields = out.with_suffix(".xml"), fields_of(spec)
    tasks = [as_task(row, fields) for row in store.labelstudio_items(labeler)]
    for path, text in ((config_path, labeling_config(spec)), (out, json.dumps(tasks, ensure_ascii=False, indent=1))):
        with atomic_output(path) as tmp:  # written beside, moved into place when complete
            tmp.write_text(text + "\n", encoding="utf-8")
    result = LabelStudioExport(str(out), str(config_path), len(tasks), sum("predictions" in t for t in tasks))
    store.audit(
        actor_or_default(actor),
        "export",
        detail=json.dumps(
            {"path": result.tasks_path, "format": "labelstudio", "written": result.tasks, "config": result.config_path}
        ),
    )
    return result


def as_task(row: Any, fields: list[Field]) -> dict[str, Any]:
    """An item as a task; an answer of the model becomes its prediction (model@prompt version, confidence)."""
    task: dict[str, Any] = {"data": {"text": row["text"], "labelloop_id": row["id"]}}
    output = None if row["output"] is None else json.loads(row["output"])
    if isinstance(output, dict):
        prediction = {"model_version": f"{row['model']}@{row['prompt_version']}", "result": to_result(fields, output)}
        if row["confidence"] is not None:
            prediction["score"] = row["confidence"]
        task["predictions"] = [prediction]
    return task


def import_export(store: Store, spec: TaskSpec, path: str | Path, labeler: str = labelers.LLM) -> ImportResult:
    """Import the annotations of a Label Studio JSON export as human annotations; importing again adds
    nothing. Each bad annotation is one line of ``errors``; the good ones are imported all the same."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelStudioError(f"{path}: cannot read a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise LabelStudioError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    return import_annotations(store, spec, tasks, labeler, emails={})


def import_annotations(
    store: Store, spec: TaskSpec, tasks: list[dict[str, Any]], labeler: str, emails: dict[int, str]
) -> ImportResult:
    """Check and store the annotations of ``tasks``; ``emails`` names the users given by id only."""
    fields, result = fields_of(spec), ImportResult()
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    known = store.item_texts(i for i in map(item_id_of, tasks) if isinstance(i, str))
    for task in tasks:
        item_id, annotations = item_id_of(task), task.get("annotations") or []
        where = f"task {task.get('id')}" + (f" (item {item_id})" if isinstance(item_id, str) else "")
        if annotations and item_id not in known:
            result.errors.append(
                f"{where}: "
                + (
                    "the item is not in this project"
                    if isinstance(item_id, str)
                    else "no data.labelloop_id (not a task labelloop exported)"
                )
            )
            continue
        if not isinstance(annotations, list) or not all(isinstance(a, dict) and a.get("id") for a in annotations):
            result.errors.append(f"{where}: annotations must be a list of objects with an id")
            continue
        for annotation in annotations:  # in Label Studio's order, oldest first: a user's newest answer wins
            if annotation.get("was_cancelled"):
                result.cancelled += 1
                continue
            try:
                output = from_result(fields, annotation.get("result") or [], known[item_id])
                _check(validator, output)
            except ValueError as exc:
                result.errors.append(f"{where}, annotation {annotation['id']}: {exc}")
                continue
            added = store.add_labelstudio_annotation(
                item_id=item_id,
                annotator=_annotator(annotation.get("completed_by"), emails),
                output=output,
                external_id=str(annotation["id"]),
                labeler=labeler,
                action=ACTION,
            )
            result.imported += added
            result.skipped_existing += not added
    return result


def item_id_of(task: dict[str, Any]) -> Any:
    data = task.get("data")
    return data.get("labelloop_id") if isinstance(data, dict) else None


def _check(validator: jsonschema.Draft202012Validator, output: dict[str, Any]) -> None:
    """ValueError naming every way ``output`` breaks the task's schema, field by field."""
    errors = sorted(validator.iter_errors(output), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ValueError(
            "; ".join(
                f"field '{'.'.join(map(str, e.absolute_path))}': {e.message}" if e.absolute_path else e.message
                for e in errors
            )
        )


def _annotator(completed_by: Any, emails: dict[int, str]) -> str:
    """The Label Studio user as an annotator name: the email where known, else ``ls-user-<id>``."""
    if isinstance(completed_by, dict):
        return completed_by.get("email") or f"ls-user-{completed_by.get('id')}"
    return emails.get(completed_by) or f"ls-user-{completed_by}"
