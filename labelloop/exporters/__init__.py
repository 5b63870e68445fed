"""Export formats, looked up by name from the ``labelloop.exporters`` entry points, built-ins included.

An :class:`Exporter` writes the final records — ``(record, item)`` pairs whose output already passed the
task's JSON Schema — to a path. The export stage (:func:`labelloop.export.export`) chooses the records,
has the exporter write beside the destination, moves the file into place, counts what it left out and
logs the export. A package adds a format without forking labelloop, as the built-ins are registered::

    [project.entry-points."labelloop.exporters"]
    myformat = "mypackage.module:EXPORTER"      # an Exporter named "myformat"

Built-ins: :mod:`.records` (jsonl, alpaca, chat), :mod:`.tables` (csv, parquet, hf) and
:mod:`.mentions` (conll, atis, spacy), :mod:`.answers` (squad).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .._extras import require
from ..errors import InputError
from ..spec import RateSpec, TaskSpec
from ..store import Item

ENTRY_POINT_GROUP = "labelloop.exporters"
LAYOUTS = ("record", "table", "tokens", "fixed")

Records = Iterable[tuple[dict[str, Any], Item]]


@dataclass(frozen=True)
class ExportOptions:
    """What an export asks of a format besides the records: the tokenizer (``tokens`` layouts) and the item
    fields to carry (``record`` and ``table`` layouts)."""

    tokenizer: str = "auto"
    keep_fields: tuple[str, ...] = ()
    documents: Any = None  # the store's documents, for formats that show cited passages (squad, qa's alpaca/chat)


@dataclass(frozen=True)
class Exporter:
    """One format: how it writes, which task kinds it fits, its layout and the extra it needs.

    ``layout`` says which options apply: ``record`` (a JSON record per item; item fields can be kept),
    ``table`` (the output flattened into columns; item fields can be kept), ``tokens`` (the text split into
    tokens: a tokenizer applies) or ``fixed`` (neither).
    """

    name: str
    write: Callable[[Records, Path, TaskSpec, ExportOptions], None]
    kinds: tuple[str, ...] | None = None  # None: every kind
    layout: str = "fixed"
    requires: tuple[str, str] | None = None  # (module, extra) the format imports

    def fits(self, spec: TaskSpec) -> bool:
        return self.kinds is None or spec.kind in self.kinds

    def check_installed(self) -> None:
        """Fail before anything is written when the package the format needs is missing."""
        if self.requires is not None:
            require(self.requires[0], self.requires[1], f"the {self.name} format")


BUILT_IN = ("jsonl", "csv", "parquet", "hf", "alpaca", "chat", "conll", "atis", "spacy", "squad")


@cache
def available_exporters() -> dict[str, Exporter]:
    """Every registered format by name: the built-ins in their order, then the others by name."""
    found: dict[str, Exporter] = {}
    order = {name: index for index, name in enumerate(BUILT_IN)}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (order.get(e.name, len(order)), e.name)):
        exporter = entry.load()
        if not isinstance(exporter, Exporter) or exporter.name != entry.name:
            raise InputError(
                ENTRY_POINT_GROUP,
                None,
                f"entry point {entry.name!r} ({entry.value}) is not an Exporter named {entry.name!r}",
            )
        found[entry.name] = exporter
    return found


def formats_for(spec: TaskSpec) -> tuple[str, ...]:
    """The formats that fit the task's kind."""
    return tuple(name for name, exporter in available_exporters().items() if exporter.fits(spec))


def exporter_for(spec: TaskSpec, fmt: str) -> Exporter:
    """The exporter named ``fmt``, or an InputError naming those that fit this task."""
    fits = formats_for(spec)
    exporter = available_exporters().get(fmt)
    if exporter is None:
        raise InputError("export", None, f"unknown format {fmt!r}; choose one of {', '.join(fits)}")
    if not exporter.fits(spec):
        kinds = " or ".join(exporter.kinds or ())
        raise InputError(
            "export",
            None,
            f"the {fmt} format is for {kinds} tasks, not {spec.kind}; a {spec.kind} task exports as {', '.join(fits)}",
        )
    return exporter


def spec_columns(spec: TaskSpec) -> dict[str, Any]:
    """What every record of this task carries besides provenance: rate, its rubric version."""
    return {"rubric_version": spec.rubric_version} if isinstance(spec, RateSpec) else {}


__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "ExportOptions",
    "Exporter",
    "LAYOUTS",
    "Records",
    "available_exporters",
    "exporter_for",
    "formats_for",
    "spec_columns",
]
