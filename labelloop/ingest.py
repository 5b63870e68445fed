"""Ingest: a file's records become items, all of the file or nothing.

The stages, in order: read (:mod:`.readers`) → clean and mask PII (:mod:`.prepare`, from the spec's
``clean`` and ``pii`` blocks) → id and content hash → store, in one transaction → one audit row.
A bad record stops the file with ``file:line: what is wrong`` and nothing of that file is written,
unless ``skip_bad`` names a rejects file: then bad records go there with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._actor import actor_or_default
from .errors import InputError
from .prepare import Preparer
from .readers import Record, detect_format, read_records
from .spec import TaskSpec
from .store import Item, Store

BATCH = 1000


@dataclass
class IngestResult:
    """What one ingest did."""

    path: str
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects_path: str | None = None
    filtered: dict[str, int] = field(default_factory=dict)  # left out by cleaning, by reason
    hygiene: dict[str, Any] | None = None  # what cleaning and PII masking did (labelloop.prepare)


def content_hash(text: str, fields: dict[str, Any]) -> str:
    """A stable hash of what a model sees of an item."""
    canonical = json.dumps({"text": text, "fields": fields}, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def ingest_file(
    store: Store,
    spec: TaskSpec,
    path: str | Path,
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    fmt: str | None = None,
    skip_bad: str | Path | None = None,
    clean: str | None = None,
    actor: str | None = None,
) -> IngestResult:
    """Add the records of ``path`` to ``store`` as items of ``spec``'s task, in one transaction.

    ``text_field`` and ``id_field`` default to the spec's ``input`` block. Texts are cleaned and
    masked as the spec's ``clean`` and ``pii`` blocks say (``clean`` names a cleaning profile for this
    file instead) before anything is stored, so no model, reviewer or export sees the originals.
    The ingest is recorded in the audit log as ``actor`` (default: the OS user).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), None, "file not found")
    detect_format(path, fmt)
    text_field = text_field or spec.input.text_field
    id_field = id_field or spec.input.id_field
    preparer = Preparer(spec, store, clean) if (spec.clean or spec.pii or clean) else None
    prepare = preparer if preparer is not None and preparer.active else None
    result = IngestResult(str(path))
    rejects = _RejectsWriter(Path(skip_bad)) if skip_bad else None
    try:
        with store.transaction():
            batch: list[Item] = []
            for record in read_records(path, fmt):
                item = to_item(record, str(path), text_field, id_field, prepare)
                if isinstance(item, InputError):
                    _reject(rejects, item, record.raw, result)
                    continue
                if isinstance(item, str):  # filtered out by cleaning (too short, another language, ...)
                    result.filtered[item] = result.filtered.get(item, 0) + 1
                    continue
                batch.append(item)
                if len(batch) >= BATCH:
                    _add_batch(store, batch, rejects, result)
                    batch = []
            _add_batch(store, batch, rejects, result)
    except BaseException:
        if rejects:
            rejects.discard()
        raise
    if rejects:
        result.rejects_path = rejects.commit()
    if preparer is not None:
        result.hygiene = preparer.finish().to_dict()
    store.refresh_statistics()
    store.audit(
        actor_or_default(actor),
        "ingest",
        detail=json.dumps(
            {
                "path": str(path),
                "added": result.added,
                "rejected": result.rejected,
                "filtered": result.filtered,
                "pii": (result.hygiene or {}).get("pii", {}),
            },
            ensure_ascii=False,
        ),
    )
    return result


def _add_batch(store: Store, batch: list[Item], rejects: _RejectsWriter | None, result: IngestResult) -> None:
    if rejects:
        bad = {id(item): reason for item, reason in store.check_collisions(batch)}
        first_seen: dict[str, str] = {}
        for item in batch:
            known = first_seen.setdefault(item.id, item.content_hash)
            if known != item.content_hash and id(item) not in bad:
                bad[id(item)] = f"id {item.id!r} appears earlier in this file with different content"
        for item in batch:
            if id(item) in bad:
                error = InputError(item.source_file or "?", item.source_line, bad[id(item)], field="id")
                _reject(rejects, error, item.text, result)
        batch = [item for item in batch if id(item) not in bad]
    added, repeats = store.add_items(batch)
    result.added += added
    result.duplicates += len(repeats)


def _reject(rejects: _RejectsWriter | None, error: InputError, raw: str, result: IngestResult) -> None:
    if rejects is None:
        raise error
    rejects.write(error, raw)
    result.rejected += 1


def to_item(
    record: Record, source: str, text_field: str, id_field: str | None, prepare: Callable[[str], Any] | None = None
) -> Item | InputError | str:
    if record.error is not None:
        return record.error
    data = record.data
    assert data is not None
    if text_field not in data:
        return InputError(source, record.line, "missing", field=text_field)
    text = data[text_field]
    if not isinstance(text, str):
        return InputError(source, record.line, f"must be a string, got {type(text).__name__}", field=text_field)
    if not text.strip():
        return InputError(source, record.line, "is empty", field=text_field)
    prepared = prepare(text) if prepare is not None else None
    if isinstance(prepared, str):
        return prepared
    text = prepared.text if prepared is not None else text
    fields = {k: v for k, v in data.items() if k not in (text_field, id_field)}
    digest = content_hash(text, fields)
    if id_field is None:
        item_id = digest[:16]
    elif data.get(id_field) in (None, ""):
        return InputError(source, record.line, "missing", field=id_field)
    elif not isinstance(data[id_field], (str, int)) or isinstance(data[id_field], bool):
        return InputError(source, record.line, "must be a string or an integer", field=id_field)
    else:
        item_id = str(data[id_field])
    return Item(item_id, text, fields, digest, source, record.line, prepared)


class _RejectsWriter:
    """Writes rejected records to a temporary file, moved into place only when ingest succeeds."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.handle = self.tmp.open("w", encoding="utf-8")

    def write(self, error: InputError, raw: str) -> None:
        record = {"file": error.path, "line": error.line, "field": error.field, "error": error.reason, "raw": raw}
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def commit(self) -> str:
        self.handle.close()
        os.replace(self.tmp, self.path)
        return str(self.path)

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)
