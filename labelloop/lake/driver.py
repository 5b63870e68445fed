"""The Ray runner's driver: connects to (or starts) a Ray cluster, plans the units, runs them through an actor
pool of :class:`~labelloop.lake.worker.LabelUnits` with Ray Data, and brings results back to the store.

Lake mode (inputs given): items never enter the store; each unit's shards land in the output directory and only
the items routed to review are imported, so people review them as usual. Store mode (no inputs): the project's
pending items are leased as a local run leases them, cached answers are served at once, the rest are written as
Parquet units for the workers, and each finished unit is saved back in transactions of at most a thousand
predictions with their calls.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .._actor import actor_or_default
from .._extras import require
from .._sync import run_sync
from ..backends import create_backend
from ..errors import InputError, LabelloopError, SpecError
from ..job import Job, LabelOptions
from ..prepare import Preparer
from ..prompt import build_prompt
from ..route import NEEDS_REVIEW
from ..runner import ProgressSink
from ..selection import planned_count
from ..spec import ModelSettings, TaskSpec
from ..store import RunCounts, Store
from . import store_mode
from .budget import start_ledger
from .shards import CALLS, PREDICTIONS, Output, call_from_row, prediction_from_row
from .units import Unit, input_files, plan_units
from .worker import LabelUnits, WorkerSetup, share_of


@dataclass
class RayOptions:
    """Where and how the Ray runner runs. ``inputs`` (paths, globs, URLs) selects lake mode; ``output`` is then
    the shard directory (in store mode: the work directory, a temporary one by default)."""

    address: str | None = None  # None: a local Ray started for this run; "auto" or "HOST:PORT" of a cluster
    inputs: list[str] = field(default_factory=list)
    output: str | None = None
    workers: int | None = None  # actors in the pool (default: the cluster's CPUs)
    cpus_per_worker: float = 1.0
    shard_rows: int = 5000


@dataclass
class RayRunResult:
    """What a Ray run did."""

    mode: str
    run_id: int
    units: int
    units_skipped: int
    counts: RunCounts
    routes: dict[str, int]
    filtered: dict[str, int]
    imported: int  # items brought into the store: routed to review (lake mode) or all labeled (store mode)
    elapsed_s: float
    status: str
    output: str | None
    stop_reason: str | None = None
    workers_peak_rss_mb: dict[int, list[float]] = field(default_factory=dict)  # by pid: peak memory after each unit

    @property
    def items_per_s(self) -> float:
        return (self.counts.items_done + self.counts.items_failed) / self.elapsed_s if self.elapsed_s else 0.0


def label_on_ray(
    store: Store,
    spec: TaskSpec,
    settings: ModelSettings | None = None,
    *,
    options: LabelOptions | None = None,
    ray_options: RayOptions | None = None,
    progress: ProgressSink | None = None,
    actor: str | None = None,
) -> RayRunResult:
    """Label with the Ray runner: the files ``ray_options.inputs`` name (lake mode) or the project's pending
    items (store mode), exactly as :func:`~labelloop.label` would label them."""
    ray = require("ray", "ray", "the Ray runner (--runner ray)")
    settings, options, ray_options = settings or spec.model, options or LabelOptions(), ray_options or RayOptions()
    _check_supported(spec, options, ray_options)
    prompt = build_prompt(spec)
    store.save_prompt(prompt.version, list(prompt.shared), prompt.item_template_source, prompt.output_schema)
    store.mark_stale_runs()
    model_id = run_sync(_model_id(settings))  # an unreachable server fails here, before any work
    job = Job(spec, prompt, settings, model_id, options.labeler)
    started_ray = _connect(ray, ray_options.address)
    try:
        cpus = ray.cluster_resources().get("CPU", 1)
        workers = ray_options.workers or max(1, int(cpus // ray_options.cpus_per_worker))
        run = _Run(store, job, options, ray_options, workers, progress, actor_or_default(actor))
        return run.lake() if ray_options.inputs else run.store_mode()
    finally:
        if started_ray:
            ray.shutdown()


def _check_supported(spec: TaskSpec, options: LabelOptions, ray_options: RayOptions) -> None:
    unsupported = {
        "learn.fewshot": bool(spec.learn.fewshot), "--sample": options.sample is not None,
        "dedup.group": spec.dedup.group and bool(ray_options.inputs),
        f"kind: {spec.kind}": spec.kind in ("qa", "coherence"),  # their context (passages, windows) is local
    }  # fmt: skip
    for what, used in unsupported.items():
        if used:
            raise SpecError("settings", None, what, "is not supported by the Ray runner; use the local runner")
    if ray_options.shard_rows < 1:
        raise SpecError("settings", None, "--shard-rows", "must be at least 1")


async def _model_id(settings: ModelSettings) -> str:
    async with create_backend(settings) as backend:
        return backend.model_id


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to the cluster (or start a local one); whether this call started Ray (and so stops it)."""
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the run's own progress bar shows progress
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a worker's error is reported once, as one line
    return started


class _Run:
    def __init__(
        self, store: Store, job: Job, options: LabelOptions, ray_options: RayOptions, workers: int,
        progress: ProgressSink | None, actor: str,
    ):  # fmt: skip
        self.store, self.job, self.options, self.ray_options = store, job, options, ray_options
        self.workers, self.progress, self.actor = workers, progress, actor
        self.counts = RunCounts()
        self.routes: dict[str, int] = {}
        self.filtered: dict[str, int] = {}
        self.imported = 0
        self.peak_rss: dict[int, list[float]] = {}
        self._stop_reason: str | None = None  # the first worker's, when a budget stopped the run

    def _start(self, planned: int) -> int:
        return self.job.start_run(self.store, self.job.settings.backend, planned)

    def lake(self) -> RayRunResult:
        ray_options, spec = self.ray_options, self.job.spec
        if not ray_options.output:
            raise SpecError("settings", None, "--output", "lake mode (--input) needs an output directory")
        output = Output(ray_options.output)
        output.clear_tmp()
        units = plan_units(input_files(ray_options.inputs), spec.input.text_field, spec.input.id_field,
                           ray_options.shard_rows)  # fmt: skip
        finished = output.finished_units()
        todo = [u for u in units if finished.get(u.id, 1) > 0]  # not written, or written with failed items
        run_id = self._start(sum((u.stop or 0) - u.start for u in todo))
        for unit in units:  # a driver killed between a unit's shards and its import: import now
            if unit.id in finished and unit not in todo and not output.imported(unit.id):
                self._import_review(output, run_id, unit.id)
        return self._execute(run_id, "lake", output, units, todo, self._import_review)

    def store_mode(self) -> RayRunResult:
        planned = planned_count(self.store, self.job, self.options)
        run_id = self._start(planned)
        work = self.ray_options.output or tempfile.mkdtemp(prefix="labelloop-ray-")
        output = Output(work)
        keeper = store_mode.LeaseKeeper(self.store, run_id, self.options.lease_seconds)
        try:
            units = store_mode.export_pending(self.store, self.job, self.options, run_id, output, self._saved,
                                              self.ray_options.shard_rows)  # fmt: skip
            return self._execute(run_id, "store", output, units, units, self._import_all)
        finally:
            keeper.stop()
            self.store.release(run_id)
            if not self.ray_options.output:
                shutil.rmtree(work, ignore_errors=True)

    def _saved(self, count: int) -> None:
        """Predictions the driver saved itself: cached answers in store mode."""
        self.counts.items_done += count
        self.counts.cache_hits += count
        self.imported += count

    def _execute(
        self, run_id: int, mode: str, output: Output, units: list[Unit], todo: list[Unit], finish: Any
    ) -> RayRunResult:
        started = time.perf_counter()
        status, error = "finished", None
        if self.progress:
            self.progress.start(sum((u.stop or 0) - u.start for u in todo))
        try:
            for summary in self._summaries(output, todo):
                if "error" in summary:  # bad input in a unit: the run stops, naming file, line and field
                    raise InputError(**summary["error"])
                self._add(summary)
                if summary["done"]:
                    finish(output, run_id, summary["unit"])
                self.store.save_predictions(run_id, [], self.counts)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            status, error = ("interrupted", "interrupted by the user") if interrupted else ("failed", str(exc))
            cause = _labelloop_cause(exc)
            if cause is not None:
                error = str(cause)
                raise cause from None
            raise
        finally:
            if self.progress:
                self.progress.stop()
            self.store.finish_run(run_id, status, self.counts, error or self._stop_reason)
            self.store.refresh_statistics()
        detail = {"run": run_id, "runner": "ray", "mode": mode, "status": status, "units": len(todo),
                  "routes": self.routes, "calls": self.counts.calls, "imported": self.imported}  # fmt: skip
        self.store.audit(self.actor, "label", detail=json.dumps(detail))
        return RayRunResult(
            mode, run_id, len(units), len(units) - len(todo), self.counts, self.routes, self.filtered, self.imported,
            time.perf_counter() - started, status, self.ray_options.output, self._stop_reason, self.peak_rss,
        )  # fmt: skip

    def _summaries(self, output: Output, todo: list[Unit]) -> Iterator[dict[str, Any]]:
        if not todo:
            return
        ray = require("ray", "ray", "the Ray runner (--runner ray)")
        ledger = start_ledger(self.options.max_calls, self.options.max_tokens)
        setup = WorkerSetup(
            self.job.spec, share_of(self.job.settings, self.workers), self.job.model_id, self.job.labeler,
            replace(self.options, max_calls=None, max_tokens=None), output.location,
            self.job.spec.input.text_field, self.job.spec.input.id_field, _preparer(self.store, self.job.spec),
            ledger,
        )  # fmt: skip
        dataset = ray.data.from_items([{"unit": u.to_json()} for u in todo], override_num_blocks=len(todo))
        labeled = dataset.map_batches(
            LabelUnits, fn_constructor_kwargs={"setup": setup}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(todo))),
            num_cpus=self.ray_options.cpus_per_worker,
        )  # fmt: skip
        for row in labeled.iter_rows():
            yield json.loads(row["summary"])

    def _add(self, summary: dict[str, Any]) -> None:
        c = self.counts
        c.items_done += summary["items_done"]
        c.items_failed += summary["items_failed"]
        c.calls += summary["calls"]
        c.cache_hits += summary["cache_hits"]
        c.prompt_tokens += summary["prompt_tokens"]
        c.completion_tokens += summary["completion_tokens"]
        for bag, key in ((self.routes, "routes"), (self.filtered, "filtered")):
            for name, count in summary[key].items():
                bag[name] = bag.get(name, 0) + count
        self._stop_reason = self._stop_reason or summary["stopped"]
        self.peak_rss.setdefault(summary["worker"], []).append(summary["peak_rss_mb"])
        if self.progress:
            tokens = c.prompt_tokens + c.completion_tokens
            self.progress.advance(summary["items_done"] + summary["items_failed"], errors=summary["items_failed"],
                                  tokens=tokens, calls=summary["calls"])  # fmt: skip

    def _import_review(self, output: Output, run_id: int, unit: str) -> None:
        """Lake mode: the unit's items routed to review, with their predictions and calls, into the store."""
        rows = output.read(PREDICTIONS, unit, filters=[("route", "=", NEEDS_REVIEW)])
        self.imported += _import_rows(self.store, output, run_id, unit, rows, add_items=True)
        output.mark_imported(unit)

    def _import_all(self, output: Output, run_id: int, unit: str) -> None:
        """Store mode: every prediction of the unit saved, then the unit's files removed."""
        rows = output.read(PREDICTIONS, unit)
        self.imported += _import_rows(self.store, output, run_id, unit, rows, add_items=False)
        store_mode.remove_unit(output, unit)


def _import_rows(
    store: Store, output: Output, run_id: int, unit: str, rows: list[dict[str, Any]], *, add_items: bool
) -> int:
    """The rows' predictions with their calls saved, a thousand per transaction (with their items: lake mode)."""
    if not rows:
        return 0
    calls: dict[str, list[Any]] = {}
    for call in output.read(CALLS, unit, filters=[("item_id", "in", [r["id"] for r in rows])]):
        calls.setdefault(call["item_id"], []).append(call_from_row(call))
    for start in range(0, len(rows), 1000):
        pairs = [prediction_from_row(row) for row in rows[start : start + 1000]]
        for prediction, _ in pairs:
            prediction.calls = calls.get(prediction.item_id, [])
        if add_items:
            store.import_labeled(run_id, [item for _, item in pairs], [p for p, _ in pairs])
        else:
            store.save_predictions(run_id, [p for p, _ in pairs])
    return len(rows)


def _preparer(store: Store, spec: TaskSpec) -> Preparer | None:
    if not (spec.clean or spec.pii):
        return None
    preparer = Preparer(spec, store)
    return preparer if preparer.active else None


def _labelloop_cause(exc: BaseException) -> LabelloopError | None:
    """The labelloop error behind what Ray raised (a worker's error arrives wrapped, with Ray's traceback)."""
    seen: BaseException | None = exc
    while seen is not None:
        cause = getattr(seen, "cause", None)
        if isinstance(cause, LabelloopError):
            return cause
        if isinstance(seen, LabelloopError) and type(seen).__module__.startswith("labelloop"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
