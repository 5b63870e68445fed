"""What the model sees beside the item: a ``qa`` question's retrieved passages, a long text's windows and the
coherence pre-screen's breaks.

A :class:`Context` attaches them to the item as fields (``passages``, ``windows``, ``breaks``) before the cache key
is taken, so the prompt template can show them, the quality gate can ground quotes in them, and a changed
document (a new version, another passage retrieved) is a new request rather than a stale cache hit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import cached_property
from typing import Any, Protocol

from .errors import ProjectError, SpecError
from .grounding import BREAKS, PASSAGES, WINDOW
from .spec import CoherenceSpec, QaSpec, TaskSpec
from .store import Item, Store

WINDOWS = "windows"


class Context(Protocol):
    def attach(self, item: Item) -> Item:
        """The item with its context fields (they replace item fields of the same names)."""
        ...

    def digest(self, item: Item) -> str:
        """A short hash of the attached context, part of the item's cache key."""
        ...


def context_for(spec: TaskSpec, store: Store) -> Context | None:
    """The context the spec's kind needs, if any."""
    if isinstance(spec, QaSpec):
        return Passages(spec, store)
    if isinstance(spec, CoherenceSpec):
        return Windows(spec)
    return None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class Passages:
    """A question's top ``retrieval.k`` paragraphs of the spec's collection (current document versions)."""

    def __init__(self, spec: QaSpec, store: Store):
        self.spec, self.store, self.k = spec, store, spec.retrieval.k

    @cached_property
    def retriever(self) -> Any:
        """The index, built when the first question needs it (a run with nothing to label reads no document)."""
        from .retrieval import Retriever, load_passages

        return Retriever(load_passages(self.store, self.spec.collection), _embedder(self.spec))

    @property
    def method(self) -> str:
        return str(self.retriever.method)

    def attach(self, item: Item) -> Item:
        found = [p.as_dict() for p in self.retriever.search(item.text, self.k)]
        return replace(item, fields={**item.fields, PASSAGES: found})

    def digest(self, item: Item) -> str:
        return _digest([(p["doc"], p["version"], p["paragraph"]) for p in item.fields.get(PASSAGES, [])])


def _embedder(spec: QaSpec) -> Any:
    """``learn.embeddings``' embedder for hybrid retrieval (``auto``: when it is installed), or None."""
    if spec.retrieval.method == "bm25":
        return None
    try:
        from .learn.embed import create_embedder

        return create_embedder(spec.learn.embeddings)
    except (ImportError, ProjectError) as exc:
        if spec.retrieval.method == "hybrid":
            raise SpecError("labelloop.yaml", None, "retrieval.method", f"hybrid needs an embedder: {exc}") from None
        return None


class Windows:
    """The pre-screen's abrupt breaks, and the windows of a text longer than ``window.chars``."""

    def __init__(self, spec: CoherenceSpec):
        self.spec = spec

    def attach(self, item: Item) -> Item:
        from .coherence import screen, windows

        fields: dict[str, Any] = {
            BREAKS: [b.as_dict() for b in screen(item.text, threshold=self.spec.screen_threshold)]
        }
        parts = windows(item.text, self.spec.window.chars, self.spec.window.overlap)
        if len(parts) > 1:
            fields[WINDOWS] = [[w.start, w.end] for w in parts]
        return replace(item, fields={**item.fields, **fields})

    def digest(self, item: Item) -> str:
        return _digest(item.fields.get(WINDOWS, []))


def shown_context(item: Item) -> dict[str, Any] | None:
    """What the prediction keeps of the item's context: each retrieved passage's place, rank and score."""
    if PASSAGES not in item.fields:
        return None
    keep = ("doc", "version", "paragraph", "start", "end", "rank", "score")
    return {PASSAGES: [{key: p[key] for key in keep} for p in item.fields[PASSAGES]]}


def views(item: Item) -> list[Item]:
    """What each call rates: the item, or each of its windows (its text cut, its offsets in ``window``)."""
    parts = item.fields.get(WINDOWS)
    if not parts:
        return [item]
    return [
        replace(item, text=item.text[start:end], fields={**item.fields, WINDOW: [start, end], BREAKS: []})
        for start, end in parts
    ]
