"""The Ray runner's output: per unit, one Parquet shard of prediction records and one of the call log, each
written whole or not at all, plus a journal of the unit's answered calls while it is being labeled.

Layout under the output directory: ``predictions/<unit>.parquet`` (the export's record, plus route, reasons,
per-field confidence and what the store needs to import it), ``calls/<unit>.parquet`` (one row per model call,
the columns of the store's call log) and, while a unit is labeled, ``_journal/<unit>.jsonl`` (each answered
call, appended as it arrives) and ``_tmp/``. Both shards are written to ``_tmp`` first and moved into place,
the prediction shard last: it marks the unit done. A worker or driver killed mid-unit leaves the journal, and
the rerun serves those answers from it without a call; a done unit with failed calls is labeled again with
its own call shard as the cache, so only the failures cost calls.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._extras import require
from ..store import CallRecord, Item, PredictionRecord, RunCounts
from .units import filesystem

PREDICTIONS, CALLS, JOURNAL, TMP = "predictions", "calls", "_journal", "_tmp"
IMPORTED = "_imported"  # lake mode: an empty file per unit whose items to review are in the store
_PRED_COLUMNS = {
    "id": "string", "text": "string", "output": "string", "source": "string", "confidence": "float64",
    "model": "string", "prompt_version": "string", "route": "string", "reasons": "list<string>",
    "field_confidence": "string", "status": "string", "error": "string", "problems": "string",
    "repaired": "bool", "confidence_method": "string", "labeler": "string", "job_key": "string",
    "item_hash": "string", "raw_text": "string", "fields": "string", "source_file": "string",
    "source_line": "int64", "duplicate_of": "string",
}  # fmt: skip
_CALL_COLUMNS = {
    "item_id": "string", "cache_key": "string", "backend": "string", "model": "string",
    "prompt_version": "string", "request": "string", "response": "string", "output_text": "string",
    "status_code": "int64", "error": "string", "attempt": "int64", "latency_ms": "float64",
    "prompt_tokens": "int64", "completion_tokens": "int64", "endpoint": "string",
}  # fmt: skip


def _schema(columns: dict[str, str]) -> Any:
    pa = require("pyarrow", "ray", "the Ray runner")
    types = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}
    types["list<string>"] = pa.list_(pa.string())
    return pa.schema([(name, types[kind]) for name, kind in columns.items()])


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def prediction_row(prediction: PredictionRecord, item: Item) -> dict[str, Any]:
    p = prediction
    return {
        "id": item.id, "text": item.text, "output": None if p.output is None else _dumps(p.output),
        "source": "model", "confidence": p.confidence, "model": p.model, "prompt_version": p.prompt_version,
        "route": p.route, "reasons": p.reasons, "field_confidence": _dumps(p.field_confidence),
        "status": p.status, "error": p.error, "problems": _dumps(p.problems), "repaired": p.repaired,
        "confidence_method": p.confidence_method, "labeler": p.labeler, "job_key": p.job_key,
        "item_hash": p.item_hash, "raw_text": p.raw_text, "fields": _dumps(item.fields),
        "source_file": item.source_file, "source_line": item.source_line, "duplicate_of": p.duplicate_of,
    }  # fmt: skip


def call_row(call: CallRecord) -> dict[str, Any]:
    return {**asdict(call), "request": _dumps(call.request)}


def prediction_from_row(row: Mapping[str, Any]) -> tuple[PredictionRecord, Item]:
    """The prediction and its item as the store takes them (``import`` of review items, store mode)."""
    loads = json.loads
    prediction = PredictionRecord(
        item_id=row["id"], labeler=row["labeler"], job_key=row["job_key"], item_hash=row["item_hash"],
        prompt_version=row["prompt_version"], model=row["model"], status=row["status"],
        output=None if row["output"] is None else loads(row["output"]), raw_text=row["raw_text"],
        error=row["error"], problems=loads(row["problems"]), repaired=bool(row["repaired"]),
        confidence=row["confidence"], confidence_method=row["confidence_method"],
        field_confidence=loads(row["field_confidence"]), route=row["route"], reasons=list(row["reasons"]),
        duplicate_of=row["duplicate_of"],
    )  # fmt: skip
    item = Item(row["id"], row["text"], loads(row["fields"]), row["item_hash"], row["source_file"], row["source_line"])
    return prediction, item


def call_from_row(row: Mapping[str, Any]) -> CallRecord:
    return CallRecord(**{**row, "request": json.loads(row["request"])})


@dataclass
class Output:
    """The output directory (a local path or a pyarrow file-system URL)."""

    location: str

    def __post_init__(self) -> None:
        self.fs, self.root = filesystem(self.location)
        for sub in (PREDICTIONS, CALLS, JOURNAL, TMP, IMPORTED):
            self.fs.create_dir(f"{self.root}/{sub}", recursive=True)

    def path(self, kind: str, unit: str) -> str:
        suffix = {JOURNAL: ".jsonl", IMPORTED: ""}.get(kind, ".parquet")
        return f"{self.root}/{kind}/{unit}{suffix}"

    def location_of(self, path: str) -> str:
        """A path of this file system as the workers open it: a URL when the output is one."""
        return f"{self.location.split('://', 1)[0]}://{path}" if "://" in self.location else path

    def imported(self, unit: str) -> bool:
        return self.exists(self.path(IMPORTED, unit))

    def mark_imported(self, unit: str) -> None:
        with self.fs.open_output_stream(self.path(IMPORTED, unit)):
            pass

    def exists(self, path: str) -> bool:
        fs = require("pyarrow.fs", "ray", "the Ray runner")
        return bool(self.fs.get_file_info(path).type == fs.FileType.File)

    def clear_tmp(self) -> None:
        """Remove the half-written files of workers that were killed (a run over this output starts afresh)."""
        self.fs.delete_dir_contents(f"{self.root}/{TMP}", missing_dir_ok=True)

    def finished_units(self) -> dict[str, int]:
        """The units whose prediction shard is written, with how many of its items failed."""
        pq = require("pyarrow.parquet", "ray", "the Ray runner")
        fs = require("pyarrow.fs", "ray", "the Ray runner")
        found = {}
        for entry in self.fs.get_file_info(fs.FileSelector(f"{self.root}/{PREDICTIONS}")):
            if entry.base_name.endswith(".parquet"):
                meta = pq.read_metadata(self.fs.open_input_file(entry.path)).metadata or {}
                found[entry.base_name.removesuffix(".parquet")] = int(meta.get(b"labelloop.failed", b"0"))
        return found

    def read(self, kind: str, unit: str, filters: Any = None) -> list[dict[str, Any]]:
        pq = require("pyarrow.parquet", "ray", "the Ray runner")
        table = pq.read_table(self.path(kind, unit), filesystem=self.fs, filters=filters)
        return list(table.to_pylist())


class JournalCache:
    """A unit's answers known before it is labeled: its journal (a killed run's answered calls) and, for a unit
    labeled again, its call shard. Rows are served like the store's call-log rows; the calls served are
    written to the new call shard."""

    def __init__(self, output: Output, unit: str):
        self.rows: dict[str, dict[str, Any]] = {}
        if output.exists(output.path(CALLS, unit)):
            for row in output.read(CALLS, unit):
                if row["error"] is None:
                    self.rows[row["cache_key"]] = row
        if output.exists(path := output.path(JOURNAL, unit)):
            with output.fs.open_input_stream(path) as stream:
                for line in stream.read().decode("utf-8").splitlines():
                    if line.endswith("}"):  # a line cut short by a kill is left out
                        row = json.loads(line)
                        self.rows[row["cache_key"]] = row
        self.served: list[CallRecord] = []

    def cached_calls(self, cache_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        found = {key: {**self.rows[key], "id": None} for key in cache_keys if key in self.rows}
        self.served += [call_from_row({k: v for k, v in row.items() if k != "id"}) for row in found.values()]
        return found


@dataclass
class ShardSink:
    """Receives a unit's judged results (the runner's writer): rows go to temporary Parquet files and answered
    calls to the journal at once; :meth:`commit` moves both shards into place."""

    output: Output
    unit: str
    cache: JournalCache
    items: dict[str, list[Any]] = field(default_factory=dict)  # in flight, by id: [item, how many times]
    routes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pq = require("pyarrow.parquet", "ray", "the Ray runner")
        tag = f"{self.unit}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._tmp = {kind: f"{self.output.root}/{TMP}/{tag}.{kind}.parquet" for kind in (PREDICTIONS, CALLS)}
        self._writers = {
            PREDICTIONS: pq.ParquetWriter(self._tmp[PREDICTIONS], _schema(_PRED_COLUMNS), filesystem=self.output.fs),
            CALLS: pq.ParquetWriter(self._tmp[CALLS], _schema(_CALL_COLUMNS), filesystem=self.output.fs),
        }
        try:
            self._journal = self.output.fs.open_append_stream(self.output.path(JOURNAL, self.unit))
        except Exception:  # an object store cannot append: no journal there, a killed unit is called again
            self._journal = None

    def save_predictions(
        self, run_id: int, predictions: Sequence[PredictionRecord], counts: RunCounts | None = None
    ) -> None:
        pa = require("pyarrow", "ray", "the Ray runner")
        calls = [call for p in predictions for call in p.calls]
        if self._journal is not None:
            answered = [_dumps(call_row(c)) + "\n" for c in calls if c.error is None]
            self._journal.write("".join(answered).encode("utf-8"))
            self._journal.flush()
        rows = [prediction_row(p, self._item(p.item_id)) for p in predictions]
        for p in predictions:
            self.routes[str(p.route)] = self.routes.get(str(p.route), 0) + 1
        self._writers[PREDICTIONS].write_table(pa.Table.from_pylist(rows, schema=_schema(_PRED_COLUMNS)))
        if calls:
            self._writers[CALLS].write_table(pa.Table.from_pylist([call_row(c) for c in calls], _schema(_CALL_COLUMNS)))

    def register(self, item: Item) -> None:
        """An item the runner takes: its record will carry its text and fields."""
        self.items.setdefault(item.id, [item, 0])[1] += 1

    def _item(self, item_id: str) -> Item:
        entry = self.items[item_id]
        entry[1] -= 1
        if not entry[1]:
            del self.items[item_id]
        item: Item = entry[0]
        return item

    def close(self) -> None:
        """The runner is done with the sink (the shards are not in place yet: see :meth:`commit`)."""

    def commit(self) -> None:
        """Write the calls served from the journal, close both files and move them into place, predictions last."""
        pa = require("pyarrow", "ray", "the Ray runner")
        if self.cache.served:
            rows = [call_row(c) for c in self.cache.served]
            self._writers[CALLS].write_table(pa.Table.from_pylist(rows, schema=_schema(_CALL_COLUMNS)))
        self._writers[PREDICTIONS].add_key_value_metadata({"labelloop.failed": str(self.routes.get("failed", 0))})
        for writer in self._writers.values():
            writer.close()
        self.output.fs.move(self._tmp[CALLS], self.output.path(CALLS, self.unit))
        self.output.fs.move(self._tmp[PREDICTIONS], self.output.path(PREDICTIONS, self.unit))
        self._close_journal(delete=True)

    def abandon(self) -> None:
        """Leave the unit unfinished: no shard; the journal stays for the rerun."""
        for kind, writer in self._writers.items():
            writer.close()
            self.output.fs.delete_file(self._tmp[kind])
        self._close_journal(delete=False)

    def _close_journal(self, *, delete: bool) -> None:
        if self._journal is not None:
            self._journal.close()
            if delete:
                self.output.fs.delete_file(self.output.path(JOURNAL, self.unit))
