"""The Ray runner: the local engine's work (same prompts, calls, quality gate, confidence, routing and cache
keys) as a Ray Data pipeline over a cluster's workers, for the project's pending items (store mode) or for
Parquet/JSONL files that never enter the store (lake mode). Needs the ``ray`` extra.

The modules, in pipeline order: :mod:`.units` (input files cut into units), :mod:`.store_mode` (pending items
exported as units), :mod:`.worker` (a unit labeled by the local runner on a Ray actor), :mod:`.shards` (each
unit's prediction and call shards, written whole or not at all), :mod:`.driver` (the run and the import back).
"""

from .driver import RayOptions, RayRunResult, label_on_ray

__all__ = ["RayOptions", "RayRunResult", "label_on_ray"]
