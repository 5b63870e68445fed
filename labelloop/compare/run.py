"""``labelloop compare``: label the gold items with each variant, score each, and test each pair.

The gold items live in a store of their own (``.compare/<hash of the gold file>.db`` beside the project's spec),
so every comparison on the same gold file shares one call log: what a variant's model and prompt already
answered is served from the cache — from that log, or from the project's own when the project labeled the same
texts with the same model and prompt (the calls are copied over) — and a variant that changes only rules or
thresholds re-judges the cached answers without a call. Each variant labels as the labeler ``compare:<name>``
through the same engine as ``label``. The comparison's summary is recorded in the project's audit log (action
``compare``), so the history of prompt versions and their scores stays with the project.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._actor import actor_or_default
from ..annotations import read_gold
from ..engine import ProgressSink, label
from ..errors import InputError
from ..ingest import to_item
from ..job import LabelOptions
from ..learn.calibrate import expected_calibration_error, guaranteed_threshold
from ..readers import Record, read_records
from ..route import ACCEPTED
from ..store import Item, Store
from .quality import Quality, as_json, score
from .significance import Verdict, mcnemar_midp, paired_bootstrap
from .variants import Variant

TARGET, LEVEL = 0.95, 0.9  # the guaranteed threshold's precision target and confidence level


@dataclass
class VariantResult:
    """One variant on the gold items."""

    name: str
    prompt_version: str
    model: str
    quality: Quality
    routing: dict[str, Any]
    cost: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prompt_version": self.prompt_version, "model": self.model,
                "quality": as_json(self.quality), "routing": self.routing, "cost": self.cost}  # fmt: skip


@dataclass
class Comparison:
    """Every variant's results and a verdict for each pair."""

    gold: str
    items: int
    variants: list[VariantResult]
    verdicts: list[Verdict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gold": self.gold,
            "items": self.items,
            "variants": [v.to_dict() for v in self.variants],
            "verdicts": [
                {
                    "a": v.a,
                    "b": v.b,
                    "metric": v.metric,
                    "difference": v.interval.difference,
                    "ci": [v.interval.low, v.interval.high],
                    "p_value": v.test.p_value,
                    "significant": v.significant,
                    "items_needed": v.items_needed,
                    "sentence": v.sentence(),
                }
                for v in self.verdicts
            ],  # fmt: skip
        }


def compare(
    project_store: Store,
    root: Path,
    gold: str | Path,
    variants: list[Variant],
    *,
    seed: int = 0,
    progress: ProgressSink | None = None,
    actor: str | None = None,
) -> Comparison:
    """Label ``gold`` with each variant (through the cache) and compare them pair by pair."""
    gold = Path(gold)
    spec = variants[0].spec
    items, answers = read_gold_items(spec, gold)
    store = Store.open(_gold_store(root, gold))
    try:
        with store.transaction():
            store.add_items(items)
        results = [_run(store, project_store, variant, items, answers, progress, actor) for variant in variants]
    finally:
        store.close()
    comparison = Comparison(str(gold), len(items), results, _verdicts(results, len(items), seed))
    summary = comparison.to_dict()
    for variant in summary["variants"]:
        variant["quality"] = {k: variant["quality"][k] for k in ("metric", "value", "correct", "items")}
    project_store.audit(actor_or_default(actor), "compare", detail=json.dumps(summary, ensure_ascii=False))
    return comparison


def read_gold_items(spec: Any, path: Path) -> tuple[list[Item], list[dict[str, Any]]]:
    """The gold file's items (text and id only: the answers must not reach the prompt) and their answers."""
    answers = read_gold(spec, path)
    items: list[Item] = []
    for record in read_records(path):
        if record.error is not None:
            raise record.error
        data = record.data or {}
        id_field = "item" if "item" in data else "id"
        bare = {k: data[k] for k in (id_field, spec.input.text_field) if k in data}
        item = to_item(Record(record.line, bare, record.raw), str(path), spec.input.text_field, id_field)
        if not isinstance(item, Item):
            raise item if isinstance(item, InputError) else InputError(str(path), record.line, item)
        items.append(item)
    if not items:
        raise InputError(str(path), None, "no gold items")
    return items, [answers[item.id] for item in items]


def _gold_store(root: Path, gold: Path) -> Path:
    digest = hashlib.sha256(gold.read_bytes()).hexdigest()[:16]
    folder = root / ".compare"
    folder.mkdir(exist_ok=True)
    return folder / f"{digest}.db"


def _run(
    store: Store, known: Store, variant: Variant, items: list[Item], answers: list[dict[str, Any]],
    progress: ProgressSink | None, actor: str | None,
) -> VariantResult:  # fmt: skip
    """Label the gold items with ``variant``: answers this gold store or the project (``known``) already has for
    the same texts are served from the cache."""
    labeler = f"compare:{variant.name}"
    options = LabelOptions(labeler=labeler, known_calls=known)
    run = label(store, variant.spec, variant.settings, options=options, progress=progress, actor=actor)
    rows = {row["item_id"]: row for row in store.current_predictions(labeler)}
    predicted = [json.loads(rows[i.id]["output"]) if i.id in rows and rows[i.id]["output"] else None for i in items]
    quality = score(variant.spec, answers, predicted)
    routes = [rows[i.id]["route"] if i.id in rows else None for i in items]
    confidence = [rows[i.id]["confidence"] if i.id in rows else None for i in items]
    first = next(iter(rows.values()), None)
    return VariantResult(
        variant.name, first["prompt_version"] if first else "", first["model"] if first else "", quality,
        _routing(routes, confidence, quality.correct), _cost(store.answering_calls(labeler), run, len(items)),
    )  # fmt: skip


def _routing(routes: list[Any], confidence: list[Any], correct: list[bool]) -> dict[str, Any]:
    accepted = np.array([r == ACCEPTED for r in routes])
    right = np.array(correct)
    scored = [(c, ok) for c, ok in zip(confidence, correct, strict=True) if c is not None]
    conf, ok = [c for c, _ in scored], [k for _, k in scored]
    threshold = guaranteed_threshold(conf, ok, target=TARGET, level=LEVEL) if scored else None
    return {
        "accepted_share": float(accepted.mean()),
        "accepted_precision": float(right[accepted].mean()) if accepted.any() else None,
        "ece": expected_calibration_error(conf, ok) if scored else None,
        "guaranteed_threshold": threshold.threshold if threshold else None,
        "guaranteed_coverage": threshold.coverage if threshold else None,
        "guarantee": f"precision ≥ {TARGET:.0%} with {LEVEL:.0%} confidence",
    }


def _cost(calls: list[Any], run: Any, items: int) -> dict[str, Any]:
    latency = np.array([c["latency_ms"] for c in calls if c["latency_ms"] is not None], dtype=float)
    tokens = {k: sum(c[k] or 0 for c in calls) for k in ("prompt_tokens", "completion_tokens")}
    return {
        "calls_now": run.counts.calls,
        "cache_hits_now": run.counts.cache_hits,
        "prompt_tokens_per_item": tokens["prompt_tokens"] / items,
        "completion_tokens_per_item": tokens["completion_tokens"] / items,
        **{f"latency_p{q}_ms": float(np.percentile(latency, q)) if len(latency) else None for q in (50, 90, 99)},
        "items_per_s": run.items_per_s if run.counts.calls else None,
    }


def _verdicts(results: list[VariantResult], items: int, seed: int) -> list[Verdict]:
    verdicts = []
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            qa, qb = a.quality, b.quality
            interval = paired_bootstrap(qa.primary, qb.primary, items, seed=seed)
            verdicts.append(
                Verdict(
                    a.name,
                    b.name,
                    qa.metric,
                    interval,
                    mcnemar_midp(qa.correct, qb.correct),
                    items,
                    higher_is_better=qa.higher_is_better,
                    percent=qa.higher_is_better,
                )  # fmt: skip
            )
    return verdicts
