"""Exact and near-duplicate groups of texts.

Exact duplicates share the same normalised text (NFKC, casefolded, whitespace collapsed). Near
duplicates come from MinHash over the set of character n-grams of the normalised text (so text
without spaces, such as Chinese, works too): MinHashLSH, tuned for recall, proposes candidate
pairs, a pair is kept when its MinHash-estimated Jaccard similarity reaches the threshold, and the
groups are the connected components (union-find) of the kept pairs. Shingles are hashed with SHA-1
and permuted from a fixed seed, so a run gives the same groups in any process.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import labelers
from ._extras import require
from .errors import InputError
from .spec import TaskSpec
from .store import PredictionRecord, Store

EXACT, NEAR = "exact", "near"
_WHITESPACE = re.compile(r"\s+")
# LSH (false positive, false negative) weights: favour recall, since every candidate is checked anyway.
# On banking77 at 0.8 the default (0.5, 0.5) finds 62% of the pairs whose estimate passes; this finds 99%.
_LSH_WEIGHTS = (0.05, 0.95)


@dataclass(frozen=True)
class Group:
    """Ids of duplicate texts: the first one in input order represents the group."""

    representative: str
    members: list[str]  # in input order, the representative first; at least two
    kind: str  # EXACT or NEAR
    similarity: float  # 1.0 for exact; near: lowest estimated Jaccard of a member to the representative


def normalize(text: str) -> str:
    """Unicode NFKC, casefold, whitespace collapsed and stripped; punctuation kept."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def exact_groups(items: Iterable[tuple[str, str]]) -> list[Group]:
    """Groups of ids whose normalised texts are equal (only groups of 2+), in order of first appearance."""
    by_text: dict[str, list[str]] = {}
    for item_id, text in _unique_ids(items):
        by_text.setdefault(normalize(text), []).append(item_id)
    return [Group(ids[0], ids, EXACT, 1.0) for ids in by_text.values() if len(ids) > 1]


def near_groups(
    items: Iterable[tuple[str, str]], *, threshold: float = 0.8, num_perm: int = 128, ngram: int = 3, seed: int = 1
) -> list[Group]:
    """Near-duplicate groups: connected components of LSH candidate pairs whose estimated Jaccard >= threshold.

    A member joined through another member may be less similar to the representative than ``threshold``.
    Exact duplicates are not told apart here (they would come out as "near" with similarity 1.0):
    call ``exact_groups`` first and pass one text per exact group. Deterministic for a given seed.
    """
    items = _unique_ids(items)
    signatures = _signatures([normalize(text) for _, text in items], num_perm, ngram, seed)
    parent = list(range(len(items)))
    for i, j in _similar_pairs(signatures, threshold, num_perm):
        _union(parent, i, j)
    components: dict[int, list[int]] = {}
    for i in range(len(items)):
        components.setdefault(_find(parent, i), []).append(i)
    return [_near_group(items, signatures, rows) for rows in components.values() if len(rows) > 1]


def group_duplicates(
    items: Iterable[tuple[str, str]], *, near: bool = True, threshold: float = 0.8, num_perm: int = 128, ngram: int = 3
) -> list[Group]:
    """Exact groups, then near groups among one text per exact group and the singletons.

    A near group that holds an exact group's representative takes in all of its members. Every id is in
    at most one group; groups come in the order of their representative in the input.
    """
    items = _unique_ids(items)
    exact = exact_groups(items)
    if not near:
        return exact
    absorbed = {member for group in exact for member in group.members[1:]}
    candidates = [(item_id, text) for item_id, text in items if item_id not in absorbed]
    near_found = near_groups(candidates, threshold=threshold, num_perm=num_perm, ngram=ngram)
    return _merge(items, exact, near_found)


def _unique_ids(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The items as a list; an id given twice is an error, since a group could not place it."""
    items = list(items)
    seen: set[str] = set()
    for item_id, _ in items:
        if item_id in seen:
            raise InputError("dedup", None, f"id {item_id!r} appears more than once")
        seen.add(item_id)
    return items


def _shingles(text: str, ngram: int) -> set[str]:
    """The character n-grams of ``text``; a text shorter than ``ngram`` is one shingle."""
    if len(text) < ngram:
        return {text}
    return {text[i : i + ngram] for i in range(len(text) - ngram + 1)}


def _signatures(texts: Sequence[str], num_perm: int, ngram: int, seed: int) -> list[Any]:
    """One LeanMinHash per text; each distinct shingle is hashed once (texts share most shingles)."""
    datasketch = _datasketch()
    hashes: dict[str, int] = {}
    shingle_hashes = [[_hash(hashes, s) for s in _shingles(text, ngram)] for text in texts]
    # the values are hashes already: ``int`` passes them through unchanged
    minhashes = datasketch.MinHash.bulk(shingle_hashes, num_perm=num_perm, seed=seed, hashfunc=int)
    return [datasketch.LeanMinHash(m) for m in minhashes]


def _hash(cache: dict[str, int], shingle: str) -> int:
    """The 32-bit SHA-1 hash of a shingle, as datasketch's default ``sha1_hash32`` computes it."""
    value = cache.get(shingle)
    if value is None:
        digest = hashlib.sha1(shingle.encode("utf-8")).digest()
        value = cache[shingle] = int.from_bytes(digest[:4], "little")
    return value


def _similar_pairs(signatures: Sequence[Any], threshold: float, num_perm: int) -> Iterable[tuple[int, int]]:
    """Pairs (earlier, later) that LSH proposes and whose estimated Jaccard is >= threshold."""
    lsh = _datasketch().MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    for j, signature in enumerate(signatures):
        for i in lsh.query(signature):
            if signatures[i].jaccard(signature) >= threshold:
                yield i, j
        lsh.insert(j, signature, check_duplication=False)


def _near_group(items: Sequence[tuple[str, str]], signatures: Sequence[Any], rows: list[int]) -> Group:
    """The near group of item positions ``rows`` (ascending), the first one representing it."""
    first = signatures[rows[0]]
    similarity = min(first.jaccard(signatures[row]) for row in rows[1:])
    return Group(items[rows[0]][0], [items[row][0] for row in rows], NEAR, similarity)


def _merge(items: Sequence[tuple[str, str]], exact: list[Group], near: list[Group]) -> list[Group]:
    """Near groups with the members of the exact groups they hold, plus the other exact groups."""
    position = {item_id: i for i, (item_id, _) in enumerate(items)}
    by_representative = {group.representative: group for group in exact}
    merged: list[Group] = []
    for group in near:
        members: list[str] = []
        for item_id in group.members:
            absorbed = by_representative.pop(item_id, None)
            members.extend(absorbed.members if absorbed else [item_id])
        members.sort(key=position.__getitem__)
        merged.append(Group(members[0], members, NEAR, group.similarity))
    merged.extend(by_representative.values())
    return sorted(merged, key=lambda group: position[group.representative])


def _find(parent: list[int], i: int) -> int:
    """The root of ``i`` in the union-find forest, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _union(parent: list[int], i: int, j: int) -> None:
    """Join the sets of ``i`` and ``j``."""
    parent[_find(parent, i)] = _find(parent, j)


def _datasketch() -> Any:
    """The datasketch module, imported on first use since it is an optional dependency."""
    return require("datasketch", "dedup", "finding near duplicates")


# -- in a project ------------------------------------------------------------------------------------


@dataclass
class DuplicateReport:
    """What ``find_duplicates`` grouped and what ``propose_labels`` proposed."""

    items: int
    exact_groups: int
    near_groups: int
    grouped_items: int
    proposed: int = 0
    examples: list[list[str]] | None = None


def find_duplicates(store: Store, *, near: bool = True, threshold: float = 0.8, ngram: int = 3) -> DuplicateReport:
    """Group the project's items (exact, then near with MinHash) and store the groups."""
    items = store.all_texts()
    groups = group_duplicates(items, near=near, threshold=threshold, ngram=ngram)
    texts = dict(items)

    def kind(member: str, group: Group) -> tuple[str, float]:  # a member may repeat its representative exactly
        same = normalize(texts[member]) == normalize(texts[group.representative])
        return (EXACT, 1.0) if same else (group.kind, group.similarity)

    store.replace_duplicates([(member, g.representative, *kind(member, g)) for g in groups for member in g.members])
    return DuplicateReport(
        len(items),
        sum(g.kind == EXACT for g in groups),
        sum(g.kind == NEAR for g in groups),
        sum(len(g.members) for g in groups),
        examples=[[texts[m] for m in g.members[:3]] for g in groups[:5]],
    )


def group_and_propose(
    store: Store, spec: TaskSpec, *, near: bool = True, threshold: float | None = None
) -> DuplicateReport:
    """Group the items (``threshold`` defaults to ``dedup.threshold``) and propose each group's decided label
    to the rest (what ``labelloop dedup`` does)."""
    report = find_duplicates(store, near=near, threshold=threshold or spec.dedup.threshold)
    report.proposed = propose_labels(store, spec)
    return report


def propose_labels(store: Store, spec: TaskSpec) -> int:
    """Propose each group's decided label to its undecided members, as predictions of ``duplicates``:
    accepted for exact duplicates, to be confirmed in review for near ones. Returns how many."""
    gold = store.gold_outputs()
    proposals = []
    for item_id, representative, kind, similarity in store.duplicate_rows():
        if item_id in gold:
            continue
        source = next((m for m in [representative, *store.duplicate_members(representative)] if m in gold), None)
        if source is not None:
            exact = kind == EXACT and source == representative  # exact to the representative, which people decided
            proposals.append((item_id, source, EXACT if exact else NEAR, similarity))
    if not proposals:
        return 0
    hashes = store.content_hashes(p[0] for p in proposals)
    version = "duplicates"
    store.save_prompt(version, [{"role": "system", "content": "label of a duplicate item"}], "", spec.output_schema())
    records = [
        PredictionRecord(
            item_id,
            labelers.DUPLICATES,
            version,
            hashes[item_id],
            version,
            version,
            "ok",
            output=gold[source],
            confidence=similarity,
            confidence_method=f"{kind} duplicate",
            route="accepted" if kind == EXACT else "needs_review",
            reasons=[] if kind == EXACT else [f"near_duplicate_of:{source}"],
        )
        for item_id, source, kind, similarity in proposals
    ]
    store.record_run(records, backend="duplicates")
    return len(records)


def inherit_labels(store: Store, labeler: str) -> int:
    """Give each duplicate the current answer of its group's representative, marked ``duplicate_of``
    (members that have an answer of their own keep it). Returns how many were written."""
    current = {row["item_id"]: row for row in store.current_predictions(labeler)}
    copies = []
    for item_id, representative, _, _ in store.duplicate_rows():
        source, mine = current.get(representative), current.get(item_id)
        if item_id == representative or source is None:
            continue
        if mine is not None and (mine["duplicate_of"] is None or mine["created_at"] >= source["created_at"]):
            continue
        copies.append((item_id, source))
    if not copies:
        return 0
    hashes = store.content_hashes(item_id for item_id, _ in copies)
    records = [
        PredictionRecord(
            item_id,
            labeler,
            src["job_key"],
            hashes[item_id],
            src["prompt_version"],
            src["model"],
            src["status"],
            output=json.loads(src["output"]) if src["output"] else None,
            raw_text=src["raw_text"],
            error=src["error"],
            problems=json.loads(src["problems"] or "[]"),
            repaired=bool(src["repaired"]),
            confidence=src["confidence"],
            confidence_method=src["confidence_method"],
            field_confidence=json.loads(src["field_confidence"] or "{}"),
            route=src["route"],
            reasons=json.loads(src["reasons"] or "[]"),
            duplicate_of=src["item_id"],
        )
        for item_id, src in copies
    ]
    store.record_run(records, backend="duplicates")
    return len(records)
