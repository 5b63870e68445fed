"""Store mode of the Ray runner: the project's pending items, leased and exported as Parquet units.

Items are claimed with leases exactly as a local worker claims them (so local workers and a Ray run can share a
project), kept alive by a thread while the cluster works, and released with each saved prediction. Cached
answers are judged and saved by the driver at once, as the local engine serves them; only the rest travel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from .._extras import require
from ..cache import serve_cached
from ..job import Job, LabelOptions
from ..selection import CHUNK, Claims, chunked
from ..store import Item, Store
from .shards import CALLS, PREDICTIONS, Output
from .units import ITEMS, Unit

PENDING = "pending"


class LeaseKeeper:
    """Renews a run's leases every third of their life, on a connection of its own, until stopped."""

    def __init__(self, store: Store, run_id: int, seconds: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, args=(store.reopen(), run_id, seconds), daemon=True)
        self._thread.start()

    def _keep(self, store: Store, run_id: int, seconds: float) -> None:
        try:
            store.renew(run_id, seconds)
            while not self._stop.wait(seconds / 3):
                store.renew(run_id, seconds)
        finally:
            store.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def export_pending(
    store: Store,
    job: Job,
    options: LabelOptions,
    run_id: int,
    output: Output,
    saved: Callable[[int], None],
    shard_rows: int,
) -> list[Unit]:
    """Lease the pending items, save the cached answers, and write the rest as units of ``shard_rows`` items."""
    claims = Claims(store, job, options, run_id, options.lease_seconds)
    output.fs.create_dir(f"{output.root}/{PENDING}", recursive=True)
    units: list[Unit] = []
    waiting: list[Item] = []
    for chunk in chunked(claims.items(), CHUNK):
        if options.use_cache:
            hits, uncached = serve_cached(store, job, chunk)
            if hits:
                store.save_predictions(run_id, hits)
                saved(len(hits))
            chunk = [item for item, _ in uncached]
        waiting += chunk
        while len(waiting) >= shard_rows:
            units.append(_write_unit(output, len(units), waiting[:shard_rows]))
            waiting = waiting[shard_rows:]
    if waiting:
        units.append(_write_unit(output, len(units), waiting))
    return units


def _write_unit(output: Output, number: int, items: list[Item]) -> Unit:
    pa = require("pyarrow", "ray", "the Ray runner")
    pq = require("pyarrow.parquet", "ray", "the Ray runner")
    path = f"{output.root}/{PENDING}/{number:06d}.parquet"
    table = pa.table(
        {
            "id": [i.id for i in items],
            "text": [i.text for i in items],
            "fields": [json.dumps(i.fields, ensure_ascii=False) for i in items],
            "content_hash": [i.content_hash for i in items],
        }
    )
    pq.write_table(table, path, filesystem=output.fs)
    return Unit(output.location_of(path), ITEMS, stop=len(items))


def remove_unit(output: Output, unit: str) -> None:
    """A unit saved to the store: its shards go (its pending file stays until the work directory does)."""
    for kind in (PREDICTIONS, CALLS):
        output.fs.delete_file(output.path(kind, unit))
