"""A Ray Data worker: labels whole units with the local engine's own runner (same prompts, calls with retries
and backoff over several endpoints, quality gate, confidence and routing), writing each unit's shards.

One instance lives in each actor of the pool; Ray Data hands it a batch of units at a time (one, as the driver
asks) and gets back one summary row per unit.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._sync import run_sync
from ..backends import create_backend
from ..errors import InputError
from ..job import Job, LabelOptions
from ..prompt import build_prompt
from ..runner import Runner
from ..spec import ModelSettings, TaskSpec
from ..store import Item
from .budget import SharedBudget
from .shards import JournalCache, Output, ShardSink
from .units import Unit, unit_items


@dataclass
class WorkerSetup:
    """What every worker needs, sent once to each actor."""

    spec: TaskSpec
    settings: ModelSettings  # this worker's share of the requests in flight
    model_id: str
    labeler: str
    options: LabelOptions
    output: str
    text_field: str
    id_field: str | None
    prepare: Any = None  # a labelloop.prepare.Preparer when the spec cleans or masks texts
    ledger: Any = None  # the shared budget's actor (lake.budget), with --max-calls or --max-tokens


def share_of(settings: ModelSettings, workers: int) -> ModelSettings:
    """The settings one of ``workers`` actors uses: its share of ``model.concurrency`` (and of each endpoint's)."""
    share = max(1, settings.concurrency // workers)
    urls = [
        u.model_copy(update={"concurrency": max(1, u.concurrency // workers) if u.concurrency else None})
        for u in settings.base_urls
    ]
    return settings.model_copy(update={"concurrency": share, "base_urls": urls})


class LabelUnits:
    """The callable class Ray Data's actor pool runs (``map_batches``)."""

    def __init__(self, setup: WorkerSetup):
        self.setup = setup
        self.job = Job(setup.spec, build_prompt(setup.spec), setup.settings, setup.model_id, setup.labeler)
        self.output = Output(setup.output)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        return {"summary": [json.dumps(run_sync(self.label_unit(Unit.from_json(str(u))))) for u in batch["unit"]]}

    async def label_unit(self, unit: Unit) -> dict[str, Any]:
        """Label one unit and write its shards; the summary the driver counts and imports from."""
        setup, uid = self.setup, unit.id
        cache = JournalCache(self.output, uid)
        sink = ShardSink(self.output, uid, cache)
        filtered: dict[str, int] = {}
        allowance = SharedBudget(setup.ledger) if setup.ledger is not None else None
        runner = Runner(None, self.job, create_backend(setup.settings), setup.options, 0, None, cache=cache,
                        open_writer=lambda: sink, allowance=allowance)  # fmt: skip
        try:
            items = unit_items(unit, setup.text_field, setup.id_field, setup.prepare, filtered)
            async with runner.backend:
                await runner.run(_registered(items, sink))
        except InputError as exc:  # returned, not raised: Ray would wrap it in its own traceback
            sink.abandon()
            return {
                "unit": uid,
                "error": {"path": exc.path, "line": exc.line, "message": exc.reason, "field": exc.field},
            }
        except BaseException:
            sink.abandon()
            raise
        finally:
            runner.settle()
        if runner.stop_reason:
            sink.abandon()
        else:
            sink.commit()
        counts = runner.counts
        return {
            "unit": uid, "path": unit.path, "done": runner.stop_reason is None, "routes": sink.routes,
            "filtered": filtered, "calls": counts.calls, "cache_hits": counts.cache_hits,
            "prompt_tokens": counts.prompt_tokens, "completion_tokens": counts.completion_tokens,
            "items_done": counts.items_done, "items_failed": counts.items_failed, "stopped": runner.stop_reason,
            "worker": os.getpid(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }  # fmt: skip


def _registered(items: Iterator[Item], sink: ShardSink) -> Iterator[Item]:
    """The items, each known to the sink (its record carries the item's text and fields)."""
    for item in items:
        sink.register(item)
        yield item
