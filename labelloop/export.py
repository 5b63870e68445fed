"""Export the final labels: a person's answer where one exists, otherwise an accepted model answer.

Every exported output is checked against the task's JSON Schema first; whatever is left out is
counted by reason. The format is an :class:`~labelloop.exporters.Exporter` found by name (built-ins and
plugins alike, :mod:`labelloop.exporters`); it writes beside the destination and the file is moved into
place only when complete, so a crash never leaves a half-written export. ``labelstudio`` exports the
project as Label Studio tasks instead (:mod:`labelloop.labelstudio`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from . import labelers
from ._actor import actor_or_default
from ._files import atomic_output
from .aggregate import aggregate
from .errors import InputError
from .exporters import Exporter, ExportOptions, available_exporters, exporter_for, formats_for, spec_columns
from .exporters.mentions import place_mentions
from .exporters.tables import BASE_COLUMNS, output_columns
from .labelstudio import export_tasks
from .route import ACCEPTED, FAILED
from .spans import TOKENIZERS
from .spec import TaskSpec
from .store import Item, Store

FORMATS = ("jsonl", "csv", "parquet", "hf", "alpaca", "chat")  # the built-in formats of every kind
LABEL_STUDIO = "labelstudio"  # the project as Label Studio tasks with pre-annotations, and its config
REASONS = ("needs_review", "disputed", "failed", "unlabeled", "invalid")
SOURCES = ("human", "model")


@dataclass
class ExportResult:
    """What an export wrote, and what it left out and why.

    ``excluded`` counts items by reason (:data:`REASONS`); ``by_source`` counts written records by
    where their label came from (:data:`SOURCES`). Every reason and source is present, zero or not.
    ``files`` lists what was written beside ``path`` (the Label Studio labeling config).
    """

    path: str
    format: str
    written: int
    excluded: dict[str, int]
    by_source: dict[str, int]
    files: list[str] = field(default_factory=list)


def export(
    store: Store,
    spec: TaskSpec,
    out: str | Path,
    fmt: str = "jsonl",
    *,
    labeler: str = labelers.LLM,
    keep_fields: list[str] | None = None,
    include_unreviewed: bool = False,
    actor: str | None = None,
    tokenizer: str = "auto",
) -> ExportResult:
    """Write the final label of every item to ``out`` in format ``fmt`` and log it in the audit log.

    ``keep_fields`` carries item fields into the record and table formats; ``include_unreviewed``
    adds model answers still waiting for review (schema-valid ones only, as always); ``tokenizer``
    ("auto", "char" or "whitespace") splits the text for the token formats (conll, atis, spacy).
    The export is recorded in the audit log as ``actor`` (default: the OS user).
    """
    keep = list(keep_fields or [])
    if fmt == LABEL_STUDIO:
        return _label_studio(store, spec, Path(out), labeler, keep, include_unreviewed, tokenizer, actor)
    exporter = _checked(store, spec, fmt, keep, tokenizer)
    aggregate(store, spec)
    out = Path(out)
    excluded: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    records = _final_rows(store, spec, labeler, keep, include_unreviewed, excluded, by_source)
    with atomic_output(out) as tmp:
        exporter.write(records, tmp, spec, ExportOptions(tokenizer=tokenizer, keep_fields=tuple(keep), documents=store))
    result = ExportResult(
        str(out), fmt, sum(by_source.values()), {r: excluded[r] for r in REASONS}, {s: by_source[s] for s in SOURCES}
    )
    store.audit(
        actor_or_default(actor),
        "export",
        detail=json.dumps({"path": result.path, "format": fmt, "written": result.written, "excluded": result.excluded}),
    )
    return result


def _label_studio(
    store: Store,
    spec: TaskSpec,
    out: Path,
    labeler: str,
    keep: list[str],
    include_unreviewed: bool,
    tokenizer: str,
    actor: str | None,
) -> ExportResult:
    """Every item as a Label Studio task with ``labeler``'s answer as its pre-annotation (``by_source``: tasks
    with a model answer, and ``unlabeled`` ones), and the labeling config beside it (in ``files``)."""
    if keep or include_unreviewed or tokenizer != "auto":
        raise InputError(
            "export",
            None,
            "keep_fields, include_unreviewed and tokenizer do not apply to the"
            " labelstudio format (every item is a task)",
        )
    tasks = export_tasks(store, spec, out, labeler=labeler, actor=actor)
    return ExportResult(
        tasks.tasks_path,
        LABEL_STUDIO,
        tasks.tasks,
        dict.fromkeys(REASONS, 0),
        {"model": tasks.predictions, "unlabeled": tasks.tasks - tasks.predictions},
        [tasks.config_path],
    )


def _checked(store: Store, spec: TaskSpec, fmt: str, keep: list[str], tokenizer: str) -> Exporter:
    """The exporter, once the request can work: refused before anything is written otherwise."""
    try:
        exporter = exporter_for(spec, fmt)
    except InputError as exc:
        if fmt not in available_exporters():
            raise InputError("export", None, f"{exc.reason} (or {LABEL_STUDIO}: tasks for Label Studio)") from None
        raise
    if tokenizer not in TOKENIZERS:
        raise InputError("export", None, f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    if tokenizer != "auto" and exporter.layout != "tokens":
        tokenized = [name for name in formats_for(spec) if _layout(spec, name) == "tokens"]
        raise InputError(
            "export",
            None,
            f"the {fmt} format has no tokens: a tokenizer applies to {', '.join(tokenized) or 'token formats'} only",
        )
    if keep and exporter.layout not in ("record", "table"):
        raise InputError("export", None, f"the {fmt} format has a fixed shape: keep_fields are not supported")
    names = [
        *(output_columns(spec) if exporter.layout == "table" else ["output"]),
        *BASE_COLUMNS,
        *spec_columns(spec),
        *keep,
    ]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise InputError(
            "export",
            None,
            "names two columns of the export at once (drop it from keep_fields, or export as jsonl)",
            field=", ".join(clashes),
        )
    present = store.fields_present(keep) if keep else set()
    missing = [name for name in keep if name not in present]
    if missing:
        raise InputError("keep_fields", None, "no item has this field", field=", ".join(missing))
    exporter.check_installed()
    return exporter


def _layout(spec: TaskSpec, name: str) -> str:
    return exporter_for(spec, name).layout


def _final_rows(
    store: Store,
    spec: TaskSpec,
    labeler: str,
    keep: list[str],
    include_unreviewed: bool,
    excluded: Counter[str],
    by_source: Counter[str],
) -> Iterator[tuple[dict[str, Any], Item]]:
    """Stream each exported record with its item; count the items left out by reason."""
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    extra = spec_columns(spec)
    small = [labelers.SMALL] if spec.learn.policy.small_alone and labeler != labelers.SMALL else []
    for row in store.final_records(labeler, [*small, labelers.DUPLICATES]):
        outcome = _outcome(row, include_unreviewed)
        raw = row["human_output"] if outcome == "human" else row["model_output"]
        output = None if raw is None else json.loads(raw)
        if outcome in SOURCES:
            if output is not None and validator.is_valid(output):  # (None never is: output schemas are objects)
                output = place_mentions(spec, output, row["text"])
            else:
                output = None
            outcome = "invalid" if output is None else outcome
        if outcome not in SOURCES:
            excluded[outcome] += 1
            continue
        by_source[outcome] += 1
        item = Item(row["id"], row["text"], json.loads(row["fields"]), "")
        yield _record(row, outcome, output, item, keep, extra), item


def _outcome(row: Any, include_unreviewed: bool) -> str:
    """Where the final label comes from ("human" or "model"), or why there is none."""
    if row["gold_status"] == "disputed":
        return "disputed"
    if row["human_output"] is not None:
        return "human"
    if row["prediction_id"] is None:
        return "unlabeled"
    if row["route"] == ACCEPTED:
        return "model"
    if row["route"] == FAILED or row["status"] == "failed":
        return "failed"
    return "model" if include_unreviewed else "needs_review"  # needs_review, or not routed yet


def _record(row: Any, source: str, output: Any, item: Item, keep: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """The JSONL record: answer, provenance, what the spec adds (``extra``) and the kept item fields."""
    record: dict[str, Any] = {"id": item.id, "text": item.text, "output": output, "source": source}
    if source == "human":
        record.update(method=row["method"], decided_by=",".join(json.loads(row["decided_by"])))
    if source == "model" and row["duplicate_of"]:
        record["duplicate_of"] = row["duplicate_of"]
    record.update(
        confidence=_human_confidence(row) if source == "human" else row["confidence"],
        model=row["model"],
        prompt_version=row["prompt_version"],
        **extra,
    )
    record.update({name: item.fields.get(name) for name in keep})
    return record


def _human_confidence(row: Any) -> float:
    """People's labels: 1.0 when one person or an expert decided, else the vote share or posterior."""
    return 1.0 if row["gold_confidence"] is None else row["gold_confidence"]
