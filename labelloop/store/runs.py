"""The store's model side: prompt versions, labeling runs (started, finished, or left behind by a process
that died), every model call (the audit trail and the response cache), labelers' predictions with the
current one per item, and the final records an export reads (the counts ``status`` and ``logs`` report are
in :mod:`~labelloop.store.counts`)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ._common import chunks, dumps, inserted_id, utc_now
from .items import ItemStore
from .known_answers import NOT_A_FILE_TEST
from .records import PredictionRecord, RunCounts


class RunStore(ItemStore):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about prompts, runs, calls and predictions (the
    prediction counts need the item count, hence the base :class:`~labelloop.store.items.ItemStore`)."""

    def save_prompt(
        self, version: str, messages: list[dict], item_template: str, output_schema: dict[str, Any] | None
    ) -> None:
        self.db.execute(
            "INSERT INTO prompts (version, messages, item_template, output_schema, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(version) DO NOTHING",
            (version, dumps(messages), item_template, dumps(output_schema), utc_now()),
        )

    def start_run(
        self,
        *,
        labeler: str,
        backend: str,
        model: str,
        params: dict,
        prompt_version: str,
        job_key: str,
        items_planned: int,
        pid: int,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs (labeler, backend, model, params, prompt_version, job_key, status, pid,"
            " started_at, items_planned) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?) RETURNING id",
            (labeler, backend, model, dumps(params), prompt_version, job_key, pid, utc_now(), items_planned),
        )
        return inserted_id(cursor)

    def mark_stale_runs(self, is_alive: Callable[[int], bool] | None = None, silent_for: float = 600.0) -> int:
        """Mark runs left 'running' by a process that no longer exists as 'interrupted' and free their leases:
        on this machine, by its pid; on another (a worker elsewhere on the same database), by no heartbeat for
        ``silent_for`` s."""
        is_alive = is_alive or process_alive
        here, now = socket.gethostname(), time.time()
        stale = [
            row["id"]
            for row in self.db.execute("SELECT id, pid, host, heartbeat_at FROM runs WHERE status = 'running'")
            if (
                (row["host"] in (None, here) and (row["pid"] is None or not is_alive(row["pid"])))
                or (row["host"] not in (None, here) and (row["heartbeat_at"] or 0) < now - silent_for)
            )
        ]
        for run_id in stale:
            with self.transaction() as db:  # its leases go back to the pool now, not when they expire
                db.execute(
                    "UPDATE runs SET status = 'interrupted', error = 'process ended without finishing' WHERE id = ?",
                    (run_id,),
                )
                db.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))
        return len(stale)

    def finish_run(self, run_id: int, status: str, counts: RunCounts, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ?, items_done = ?, items_failed = ?,"
            " calls = ?, cache_hits = ?, prompt_tokens = ?, completion_tokens = ? WHERE id = ?",
            (
                status,
                utc_now(),
                error,
                counts.items_done,
                counts.items_failed,
                counts.calls,
                counts.cache_hits,
                counts.prompt_tokens,
                counts.completion_tokens,
                run_id,
            ),
        )

    def cached_calls(self, cache_keys: Iterable[str]) -> dict[str, sqlite3.Row]:
        """The newest successful call for each cache key that has one."""
        found: dict[str, sqlite3.Row] = {}
        for chunk in chunks(list(cache_keys), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT id, cache_key, response, output_text, prompt_tokens, completion_tokens"
                f" FROM llm_calls WHERE error IS NULL AND cache_key IN ({marks}) ORDER BY id",
                chunk,
            ):
                found[row["cache_key"]] = row
        return found

    def record_run(self, records: Sequence[PredictionRecord], *, backend: str) -> int:
        """A finished run of answers made without model calls (the small model, duplicates), in one go."""
        first = records[0]
        run = self.start_run(
            labeler=first.labeler,
            backend=backend,
            model=first.model,
            params={},
            prompt_version=first.prompt_version,
            job_key=first.job_key,
            items_planned=len(records),
            pid=os.getpid(),
        )
        counts = RunCounts(items_done=len(records))
        self.save_predictions(run, records, counts)
        self.finish_run(run, "finished", counts)
        return run

    def save_predictions(
        self, run_id: int, predictions: Sequence[PredictionRecord], counts: RunCounts | None = None
    ) -> None:
        """Write predictions with their calls in one transaction; each becomes the current one. The rows go
        as a few batched statements (one round trip each on PostgreSQL), the calls' ids drawn up front."""
        with self.transaction() as db:
            self._save_in(db, run_id, predictions, counts)

    def _save_in(
        self, db: sqlite3.Connection, run_id: int, predictions: Sequence[PredictionRecord], counts: RunCounts | None
    ) -> None:
        """:meth:`save_predictions` inside the caller's transaction."""
        now = utc_now()
        for wave in _waves(predictions):
            self._save_wave(db, run_id, wave, now)
        if counts is not None:
            db.execute(
                "UPDATE runs SET items_done = ?, items_failed = ?, calls = ?, cache_hits = ?,"
                " prompt_tokens = ?, completion_tokens = ? WHERE id = ?",
                (
                    counts.items_done,
                    counts.items_failed,
                    counts.calls,
                    counts.cache_hits,
                    counts.prompt_tokens,
                    counts.completion_tokens,
                    run_id,
                ),
            )

    def _save_wave(self, db: sqlite3.Connection, run_id: int, wave: list[PredictionRecord], now: str) -> None:
        ids = iter(self._new_call_ids(db, sum(len(pred.calls) for pred in wave)))
        call_rows, prediction_rows = [], []
        for pred in wave:
            call_id = pred.cached_call_id
            for call in pred.calls:
                call_id = next(ids)
                call_rows.append(
                    (
                        call_id, run_id, call.item_id, call.cache_key, call.backend, call.model,
                        call.prompt_version, dumps(call.request), call.response, call.output_text,
                        call.status_code, call.error, call.attempt, call.latency_ms, call.prompt_tokens,
                        call.completion_tokens, now, call.endpoint,
                    )
                )  # fmt: skip
            if pred.calls and pred.calls[-1].error is not None:
                call_id = None
            prediction_rows.append(
                (
                    pred.item_id, pred.labeler, run_id, call_id, pred.job_key, pred.item_hash,
                    pred.prompt_version, pred.model, pred.status,
                    None if pred.output is None else dumps(pred.output), pred.raw_text, pred.error,
                    dumps(pred.problems), int(pred.repaired), pred.confidence, pred.confidence_method,
                    dumps(pred.field_confidence), pred.route, dumps(pred.reasons), now, pred.duplicate_of,
                    None if pred.context is None else dumps(pred.context),
                )
            )  # fmt: skip
        if call_rows:
            _insert_rows(
                db,
                "llm_calls",
                "id, run_id, item_id, cache_key, backend, model, prompt_version, request, response, output_text,"
                " status_code, error, attempt, latency_ms, prompt_tokens, completion_tokens, created_at, endpoint",
                call_rows,
            )
        for labeler in sorted({pred.labeler for pred in wave}):
            for items in chunks([pred.item_id for pred in wave if pred.labeler == labeler], 500):
                marks = ",".join("?" * len(items))
                db.execute(
                    "UPDATE predictions SET is_current = 0"
                    f" WHERE labeler = ? AND is_current = 1 AND item_id IN ({marks})",
                    (labeler, *items),
                )
                db.execute(  # the items are done: their leases (those this run held) go with the save
                    f"DELETE FROM leases WHERE run_id = ? AND labeler = ? AND item_id IN ({marks})",
                    (run_id, labeler, *items),
                )
        _insert_rows(
            db,
            "predictions",
            "item_id, labeler, run_id, call_id, job_key, item_hash, prompt_version, model, status, output,"
            " raw_text, error, problems, repaired, confidence, confidence_method, field_confidence, route,"
            " reasons, created_at, duplicate_of, context",
            prediction_rows,
        )

    def _new_call_ids(self, db: sqlite3.Connection, count: int) -> list[int]:
        """``count`` fresh ids of ``llm_calls`` inside the write transaction (SQLite's writers queue, so the
        next ids after the largest are free; PostgreSQL draws them from the table's identity sequence)."""
        if count == 0:
            return []
        if self.dialect == "postgresql":
            rows = db.execute(
                "SELECT nextval(pg_get_serial_sequence('llm_calls', 'id')) FROM generate_series(1, ?)", (count,)
            )
            return [row[0] for row in rows]
        last = db.execute("SELECT coalesce(max(id), 0) FROM llm_calls").fetchone()[0]
        return list(range(last + 1, last + 1 + count))

    def final_records(self, labeler: str, fallbacks: Sequence[str] = ()) -> Iterator[sqlite3.Row]:
        """Every item with its gold record (if any) and current prediction of ``labeler`` (if any; else the
        first accepted prediction of the ``fallbacks`` labelers)."""
        accepted = "".join(
            ",   (SELECT id FROM predictions WHERE item_id = i.id AND is_current = 1 AND labeler = ?"
            " AND route = 'accepted')"
            for _ in fallbacks
        )
        query = (
            "SELECT i.seq, i.id, i.text, i.fields, g.output AS human_output, g.method, g.decided_by,"
            " g.status AS gold_status, g.confidence AS gold_confidence,"
            " p.id AS prediction_id, p.output AS model_output, p.route, p.reasons, p.confidence, p.model,"
            " p.prompt_version, p.status, p.duplicate_of FROM items i"
            " LEFT JOIN predictions p ON p.id = coalesce("
            f"   (SELECT id FROM predictions WHERE item_id = i.id AND is_current = 1 AND labeler = ?){accepted})"
            " LEFT JOIN gold g ON g.item_id = i.id"
            f" WHERE i.seq > ? AND {NOT_A_FILE_TEST} ORDER BY i.seq LIMIT 1000"
        )
        last = 0
        while rows := self.db.execute(query, (labeler, *fallbacks, last)).fetchall():
            yield from rows
            last = rows[-1]["seq"]

    def current_predictions(self, labeler: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT p.*, i.text FROM predictions p JOIN items i ON i.id = p.item_id"
            " WHERE p.is_current = 1 AND p.labeler = ? ORDER BY i.seq",
            (labeler,),
        ).fetchall()

    def prediction_context(self, item_id: str, labeler: str) -> dict[str, Any] | None:
        """What the model saw beside ``item_id`` in ``labeler``'s current prediction (qa: the retrieved passages)."""
        row = self.db.execute(
            "SELECT context FROM predictions WHERE item_id = ? AND labeler = ? AND is_current = 1", (item_id, labeler)
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def monitored_items(self, labeler: str) -> Iterator[sqlite3.Row]:
        """Every item in ingest order with what the drift alarm looks at: where and when it came in, its text,
        ``labeler``'s current prediction (route, confidence, output) and people's decided answer."""
        yield from self.db.execute(
            "SELECT i.id, i.source_file, i.ingested_at, i.text, p.route, p.confidence, p.output, g.output AS people"
            " FROM items i LEFT JOIN predictions p ON p.item_id = i.id AND p.is_current = 1 AND p.labeler = ?"
            " LEFT JOIN gold g ON g.item_id = i.id AND g.status = 'decided' ORDER BY i.seq",
            (labeler,),
        )

    def answering_calls(self, labeler: str) -> list[sqlite3.Row]:
        """The call behind each current prediction of ``labeler`` (a cached answer's original call): what an
        answer costs, whenever it was made."""
        return self.db.execute(
            "SELECT c.latency_ms, c.prompt_tokens, c.completion_tokens FROM predictions p"
            " JOIN llm_calls c ON c.id = p.call_id WHERE p.is_current = 1 AND p.labeler = ?",
            (labeler,),
        ).fetchall()

    # -- reporting -------------------------------------------------------------------------

    def prompt(self, version: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM prompts WHERE version = ?", (version,)).fetchone()


def _insert_rows(db: sqlite3.Connection, table: str, columns: str, rows: list[tuple]) -> None:
    """Many rows into ``table`` at once: ``executemany`` on SQLite, ``COPY`` on PostgreSQL (one stream instead
    of a round trip per row)."""
    if isinstance(db, sqlite3.Connection):
        marks = ",".join("?" * len(rows[0]))
        db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
    else:
        db.copy_rows(table, columns, rows)


def _waves(predictions: Sequence[PredictionRecord]) -> Iterator[list[PredictionRecord]]:
    """The predictions in order, split so no wave holds one item and labeler twice (each wave retires the
    current predictions of its items, then adds the new ones)."""
    wave: list[PredictionRecord] = []
    seen: set[tuple[str, str]] = set()
    for pred in predictions:
        key = (pred.item_id, pred.labeler)
        if key in seen:
            yield wave
            wave, seen = [], set()
        wave.append(pred)
        seen.add(key)
    if wave:
        yield wave


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
