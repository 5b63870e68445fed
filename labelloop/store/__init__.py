"""The project store: one SQLite file (WAL). Every read and write of project data lives here."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, IdCollisionError, ProjectError
from ._common import chunks as _chunks
from ._common import dumps as _dumps
from ._common import utc_now
from .gold import GoldStore
from .learn import LearnStore
from .migrations import MIGRATIONS, apply_migrations
from .reviews import Need, ReviewStore

__all__ = ["Store", "Item", "CallRecord", "PredictionRecord", "RunCounts", "Conflict", "Need", "MIGRATIONS", "utc_now"]


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    fields: dict[str, Any]
    content_hash: str
    source_file: str | None = None
    source_line: int | None = None
    prepared: Any = None  # ingest's cleaning and PII record (labelloop.prepare.Prepared), stored with the item


@dataclass
class CallRecord:
    """One model call, successful or not: the audit trail and the cache."""

    item_id: str
    cache_key: str
    backend: str
    model: str
    prompt_version: str
    request: dict[str, Any]
    attempt: int
    latency_ms: float
    response: str | None = None
    output_text: str | None = None
    status_code: int | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class PredictionRecord:
    """A labeler's answer for one item; the newest per (item, labeler) is the current one."""

    item_id: str
    labeler: str
    job_key: str
    item_hash: str
    prompt_version: str
    model: str
    status: str
    output: Any = None
    raw_text: str | None = None
    error: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    repaired: bool = False
    confidence: float | None = None
    confidence_method: str | None = None
    field_confidence: dict[str, float] = field(default_factory=dict)
    route: str | None = None
    reasons: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    cached_call_id: int | None = None
    duplicate_of: str | None = None  # inherited from this item, its duplicate group's representative


@dataclass
class RunCounts:
    items_done: int = 0
    items_failed: int = 0
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Store(ReviewStore, GoldStore, LearnStore):
    """A project's SQLite database. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db, self.path = db, path

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
        path = Path(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise ProjectError(f"{path}: cannot open the project database ({exc})") from None
        db.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
            db.execute(f"PRAGMA {pragma}")
        apply_migrations(db)
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- items ---------------------------------------------------------------------------

    def add_items(self, items: Sequence[Item]) -> tuple[int, list[Item]]:
        """Insert new items inside the caller's transaction.

        Returns the number added and the items already present with the same content.
        Raises :class:`IdCollisionError` for an id that exists with other content.
        """
        existing = self._hashes_of([item.id for item in items])
        fresh: dict[str, Item] = {}
        repeats: list[Item] = []
        for item in items:
            known = existing.get(item.id) or (fresh[item.id].content_hash if item.id in fresh else None)
            if known is None:
                fresh[item.id] = item
            elif known == item.content_hash:
                repeats.append(item)
            else:
                raise IdCollisionError(item.source_file or "?", item.source_line,
                                       f"id {item.id!r} already exists with different content", field="id")
        now = utc_now()
        self.db.executemany(
            "INSERT INTO items (id, text, fields, content_hash, source_file, source_line, ingested_at, original,"
            " cleaning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i.id, i.text, _dumps(i.fields), i.content_hash, i.source_file, i.source_line, now,
              i.prepared.original if i.prepared else None,
              _dumps(i.prepared.cleaning) if i.prepared and i.prepared.cleaning else None)
             for i in fresh.values()],
        )
        self._save_pii([i for i in fresh.values() if i.prepared is not None])
        return len(fresh), repeats

    def pii_key(self) -> sqlite3.Row | None:
        return self.db.execute("SELECT salt, check_token FROM pii_key WHERE id = 1").fetchone()

    def save_pii_key(self, salt: bytes, check_token: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO pii_key (id, salt, check_token) VALUES (1, ?, ?)", (salt, check_token))

    def pii_entry(self, item_id: str) -> tuple[bytes | None, list[sqlite3.Row]]:
        """An item's sealed original (if any) and where PII was found in it."""
        sealed = self.db.execute("SELECT sealed FROM pii_vault WHERE item_id = ?", (item_id,)).fetchone()
        findings = self.db.execute('SELECT type, start, "end", detector, action FROM pii_findings WHERE item_id = ?'
                                   " ORDER BY start", (item_id,)).fetchall()
        return (sealed[0] if sealed else None), findings

    def _save_pii(self, items: Sequence[Item]) -> None:
        """Where each detector fired (offsets and type, never the value) and the sealed originals."""
        self.db.executemany(
            'INSERT INTO pii_findings (item_id, type, start, "end", detector, action) VALUES (?, ?, ?, ?, ?, ?)',
            [(i.id, f.type, f.start, f.end, f.detector, action) for i in items
             for f, action in i.prepared.findings])
        self.db.executemany("INSERT INTO pii_vault (item_id, sealed) VALUES (?, ?)",
                            [(i.id, i.prepared.sealed) for i in items if i.prepared.sealed is not None])

    def check_collisions(self, items: Sequence[Item]) -> list[tuple[Item, str]]:
        """Items whose id exists with other content, with the reason (used to skip bad lines)."""
        existing = self._hashes_of([item.id for item in items])
        return [(i, f"id {i.id!r} already exists with different content")
                for i in items if i.id in existing and existing[i.id] != i.content_hash]

    def _hashes_of(self, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT id, content_hash FROM items WHERE id IN ({marks})", chunk))
        return found

    def fields_present(self, names: list[str]) -> set[str]:
        """Which of ``names`` are a field of at least one item."""
        marks = ",".join("?" * len(names))
        return {row[0] for row in self.db.execute(
            f"SELECT DISTINCT j.key FROM items, json_each(items.fields) j WHERE j.key IN ({marks})", names)}

    def count_items(self) -> int:
        return self.db.execute("SELECT count(*) FROM items").fetchone()[0]

    def iter_items(self, chunk: int = 1000) -> Iterator[Item]:
        """Every item in ingest order, read in chunks."""
        yield from self._iter_items_where("", (), chunk)

    def first_item(self) -> Item | None:
        return next(self._iter_items_where("", (), 1), None)

    def iter_pending(self, labeler: str, job_key: str, chunk: int = 1000, settled_by: str | None = None,
                     representatives_only: bool = False) -> Iterator[Item]:
        """Items without a current, finished prediction of ``labeler`` for this job and content (with
        ``settled_by``, also without an accepted prediction of that labeler; with ``representatives_only``,
        not a non-representative member of a duplicate group)."""
        where, extra = _pending(settled_by, representatives_only)
        yield from self._iter_items_where("AND " + where, (labeler, job_key, *extra), chunk)

    def count_pending(self, labeler: str, job_key: str, settled_by: str | None = None,
                      representatives_only: bool = False) -> int:
        where, extra = _pending(settled_by, representatives_only)
        return self.db.execute(f"SELECT count(*) FROM items WHERE {where}", (labeler, job_key, *extra)).fetchone()[0]

    def count_settled(self, labeler: str) -> int:
        """Items ``labeler`` (e.g. the small model) settled: its current prediction is accepted."""
        return self.db.execute("SELECT count(*) FROM predictions WHERE labeler = ? AND is_current = 1"
                               " AND route = 'accepted'", (labeler,)).fetchone()[0]

    def _iter_items_where(self, where: str, params: tuple, chunk: int) -> Iterator[Item]:
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT seq, id, text, fields, content_hash, source_file, source_line FROM items"
                f" WHERE seq > ? {where} ORDER BY seq LIMIT ?", (last, *params, chunk)).fetchall()
            if not rows:
                return
            for row in rows:
                yield Item(row["id"], row["text"], json.loads(row["fields"]), row["content_hash"],
                           row["source_file"], row["source_line"])
            last = rows[-1]["seq"]

    # -- prompts, runs, calls, predictions -------------------------------------------------

    def save_prompt(self, version: str, messages: list[dict], item_template: str, output_schema: dict) -> None:
        self.db.execute(
            "INSERT INTO prompts (version, messages, item_template, output_schema, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(version) DO NOTHING",
            (version, _dumps(messages), item_template, _dumps(output_schema), utc_now()))

    def start_run(self, *, labeler: str, backend: str, model: str, params: dict, prompt_version: str,
                  job_key: str, items_planned: int, pid: int) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs (labeler, backend, model, params, prompt_version, job_key, status, pid,"
            " started_at, items_planned) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (labeler, backend, model, _dumps(params), prompt_version, job_key, pid, utc_now(), items_planned))
        return int(cursor.lastrowid)

    def mark_stale_runs(self, is_alive: Callable[[int], bool] | None = None) -> int:
        """Mark runs left 'running' by a process that no longer exists as 'interrupted'."""
        is_alive = is_alive or process_alive
        stale = [row["id"] for row in self.db.execute("SELECT id, pid FROM runs WHERE status = 'running'")
                 if row["pid"] is None or not is_alive(row["pid"])]
        for run_id in stale:
            self.db.execute("UPDATE runs SET status = 'interrupted', error = 'process ended without finishing'"
                            " WHERE id = ?", (run_id,))
        return len(stale)

    def finish_run(self, run_id: int, status: str, counts: RunCounts, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ?, items_done = ?, items_failed = ?,"
            " calls = ?, cache_hits = ?, prompt_tokens = ?, completion_tokens = ? WHERE id = ?",
            (status, utc_now(), error, counts.items_done, counts.items_failed, counts.calls,
             counts.cache_hits, counts.prompt_tokens, counts.completion_tokens, run_id))

    def cached_calls(self, cache_keys: Iterable[str]) -> dict[str, sqlite3.Row]:
        """The newest successful call for each cache key that has one."""
        found: dict[str, sqlite3.Row] = {}
        for chunk in _chunks(list(cache_keys), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                    "SELECT id, cache_key, response, output_text, prompt_tokens, completion_tokens"
                    f" FROM llm_calls WHERE error IS NULL AND cache_key IN ({marks}) ORDER BY id", chunk):
                found[row["cache_key"]] = row
        return found

    def record_run(self, records: Sequence[PredictionRecord], *, backend: str) -> int:
        """A finished run of answers made without model calls (the small model, duplicates), in one go."""
        first = records[0]
        run = self.start_run(labeler=first.labeler, backend=backend, model=first.model, params={},
                             prompt_version=first.prompt_version, job_key=first.job_key, items_planned=len(records),
                             pid=os.getpid())
        counts = RunCounts(items_done=len(records))
        self.save_predictions(run, records, counts)
        self.finish_run(run, "finished", counts)
        return run

    def save_predictions(self, run_id: int, predictions: Sequence[PredictionRecord],
                         counts: RunCounts | None = None) -> None:
        """Write predictions with their calls in one transaction; each becomes the current one."""
        now = utc_now()
        with self.transaction() as db:
            for pred in predictions:
                call_id = pred.cached_call_id
                for call in pred.calls:
                    call_id = db.execute(
                        "INSERT INTO llm_calls (run_id, item_id, cache_key, backend, model, prompt_version,"
                        " request, response, output_text, status_code, error, attempt, latency_ms,"
                        " prompt_tokens, completion_tokens, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, call.item_id, call.cache_key, call.backend, call.model, call.prompt_version,
                         _dumps(call.request), call.response, call.output_text, call.status_code, call.error,
                         call.attempt, call.latency_ms, call.prompt_tokens, call.completion_tokens, now),
                    ).lastrowid
                if pred.calls and pred.calls[-1].error is not None:
                    call_id = None
                db.execute("UPDATE predictions SET is_current = 0 WHERE item_id = ? AND labeler = ?"
                           " AND is_current = 1", (pred.item_id, pred.labeler))
                db.execute(
                    "INSERT INTO predictions (item_id, labeler, run_id, call_id, job_key, item_hash,"
                    " prompt_version, model, status, output, raw_text, error, problems, repaired, confidence,"
                    " confidence_method, field_confidence, route, reasons, created_at, duplicate_of)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (pred.item_id, pred.labeler, run_id, call_id, pred.job_key, pred.item_hash,
                     pred.prompt_version, pred.model, pred.status,
                     None if pred.output is None else _dumps(pred.output), pred.raw_text, pred.error,
                     _dumps(pred.problems), int(pred.repaired), pred.confidence, pred.confidence_method,
                     _dumps(pred.field_confidence), pred.route, _dumps(pred.reasons), now, pred.duplicate_of))
            if counts is not None:
                db.execute(
                    "UPDATE runs SET items_done = ?, items_failed = ?, calls = ?, cache_hits = ?,"
                    " prompt_tokens = ?, completion_tokens = ? WHERE id = ?",
                    (counts.items_done, counts.items_failed, counts.calls, counts.cache_hits,
                     counts.prompt_tokens, counts.completion_tokens, run_id))

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are items of this project."""
        return set(self._item_column(ids, "id"))

    def item_texts(self, ids: Iterable[str]) -> dict[str, str]:
        """The text of each of ``ids`` that is an item of this project."""
        return self._item_column(ids, "text")

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        return self._item_column(ids, "content_hash")

    def _item_column(self, ids: Iterable[str], column: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), 500):
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT id, {column} FROM items WHERE id IN ({marks})", chunk).fetchall())
        return found

    def final_records(self, labeler: str, fallbacks: Sequence[str] = ()) -> Iterator[sqlite3.Row]:
        """Every item with its gold record (if any) and current prediction of ``labeler`` (if any; else the
        first accepted prediction of the ``fallbacks`` labelers)."""
        accepted = "".join(",   (SELECT id FROM predictions WHERE item_id = i.id AND is_current = 1 AND labeler = ?"
                           " AND route = 'accepted')" for _ in fallbacks)
        query = (
            "SELECT i.seq, i.id, i.text, i.fields, g.output AS human_output, g.method, g.decided_by,"
            " g.status AS gold_status, g.confidence AS gold_confidence,"
            " p.id AS prediction_id, p.output AS model_output, p.route, p.reasons, p.confidence, p.model,"
            " p.prompt_version, p.status, p.duplicate_of FROM items i"
            " LEFT JOIN predictions p ON p.id = coalesce("
            f"   (SELECT id FROM predictions WHERE item_id = i.id AND is_current = 1 AND labeler = ?){accepted})"
            " LEFT JOIN gold g ON g.item_id = i.id"
            " WHERE i.seq > ? ORDER BY i.seq LIMIT 1000")
        last = 0
        while rows := self.db.execute(query, (labeler, *fallbacks, last)).fetchall():
            yield from rows
            last = rows[-1]["seq"]

    # -- reporting -------------------------------------------------------------------------

    def prediction_counts(self, labeler: str | None = None) -> dict[str, int]:
        """Current predictions by status (and 'unlabeled' for items with none)."""
        params: tuple = ()
        filter_ = ""
        if labeler is not None:
            filter_, params = " AND labeler = ?", (labeler,)
        counts = dict(self.db.execute(
            f"SELECT status, count(*) FROM predictions WHERE is_current = 1{filter_} GROUP BY status", params))
        labeled_items = self.db.execute(
            f"SELECT count(DISTINCT item_id) FROM predictions WHERE is_current = 1{filter_}", params).fetchone()[0]
        counts["unlabeled"] = self.count_items() - labeled_items
        return counts

    def route_counts(self, labeler: str | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """Current predictions by routing state, and by reason."""
        filter_, params = ("AND labeler = ?", (labeler,)) if labeler else ("", ())
        states = dict(self.db.execute(
            f"SELECT coalesce(route, 'unrouted'), count(*) FROM predictions WHERE is_current = 1 {filter_}"
            " GROUP BY 1", params))
        reasons = dict(self.db.execute(
            "SELECT r.value, count(*) FROM predictions p, json_each(p.reasons) r"
            f" WHERE p.is_current = 1 {filter_} GROUP BY r.value ORDER BY count(*) DESC", params))
        return states, reasons

    def confidences(self, labeler: str | None = None) -> list[float]:
        filter_, params = ("AND labeler = ?", (labeler,)) if labeler else ("", ())
        return [row[0] for row in self.db.execute(
            f"SELECT confidence FROM predictions WHERE is_current = 1 AND confidence IS NOT NULL {filter_}", params)]

    def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        return [(row[0], row[1]) for row in self.db.execute(
            "SELECT error, count(*) AS n FROM predictions WHERE is_current = 1 AND error IS NOT NULL"
            " GROUP BY error ORDER BY n DESC LIMIT ?", (limit,))]

    def call_totals(self) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT count(*) AS calls, sum(error IS NOT NULL) AS errors, coalesce(sum(prompt_tokens), 0) AS prompt,"
            " coalesce(sum(completion_tokens), 0) AS completion, avg(latency_ms) AS latency FROM llm_calls"
        ).fetchone()
        return dict(row)

    def runs(self, limit: int = 10) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def current_predictions(self, labeler: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT p.*, i.text FROM predictions p JOIN items i ON i.id = p.item_id"
            " WHERE p.is_current = 1 AND p.labeler = ? ORDER BY i.seq", (labeler,)).fetchall()

    def recent_calls(self, limit: int = 10) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM llm_calls ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def prompt(self, version: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM prompts WHERE version = ?", (version,)).fetchone()


_PENDING = ("NOT EXISTS (SELECT 1 FROM predictions p WHERE p.item_id = items.id"
            " AND p.labeler = ? AND p.is_current = 1 AND p.job_key = ?"
            " AND p.item_hash = items.content_hash AND p.status != 'failed')")
_SETTLED = ("NOT EXISTS (SELECT 1 FROM predictions s WHERE s.item_id = items.id"
            " AND s.labeler = ? AND s.is_current = 1 AND s.route = 'accepted')")


_MEMBER = ("NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.item_id = items.id"
           " AND d.representative != items.id)")


def _pending(settled_by: str | None, representatives_only: bool) -> tuple[str, tuple[str, ...]]:
    """The pending condition and its extra parameters (items another labeler settled, and duplicates that
    will inherit their representative's label, are left out)."""
    where = _PENDING + (f" AND {_MEMBER}" if representatives_only else "")
    return (where, ()) if settled_by is None else (f"{where} AND {_SETTLED}", (settled_by,))


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


