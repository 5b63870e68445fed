"""``labelloop guidelines digest``: where people and the model go wrong, grouped for the guideline authors.

Three sources of a wrong answer and its right one: disputes experts settled (each person's answer that the
decision overturned), corrections people made to the model's answer, and test questions people missed. Each
difference is read per field: a label field as the pair (wrong label, right label), a set of labels as the
label missed or added, any other field by its name. Groups are ranked by how often they happen, each with its
counts by source and two or three examples. With a model (``propose``), each of the largest groups also gets
one proposed guideline sentence, written by the task's model from the group's examples and shown beside them:
never applied by itself (``labelloop guidelines accept`` adds an accepted one to ``guidelines``). Every call
is logged as a row of a run of labeler ``guidelines``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import labelers
from ..answers import comparable, set_fields
from ..spec import TaskSpec
from ..store import Store

EXAMPLES = 3
PROPOSED = 10  # groups that get a proposed sentence


@dataclass
class Group:
    part: str  # the output field
    wrong: str  # the wrong value (or "without X" / "with X" for a set of labels; "" for a free field)
    right: str
    count: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    proposal: str | None = None

    @property
    def title(self) -> str:
        if not self.wrong and not self.right:
            return f"{self.part}: corrected"
        return f"{self.part}: {self.wrong} → {self.right}"


@dataclass
class Digest:
    groups: list[Group]
    sources: dict[str, int]  # differences read per source

    def to_dict(self) -> dict[str, Any]:
        return {"sources": self.sources, "groups": [{**asdict(g), "title": g.title} for g in self.groups]}

    def markdown(self, spec: TaskSpec) -> str:
        lines = [f"# Guideline digest: {spec.name}", "",
                 f"Differences read: {', '.join(f'{n} {s}' for s, n in self.sources.items()) or 'none yet'}.",
                 "Proposed sentences are drafts by the model: none is applied until accepted"
                 " (`labelloop guidelines accept \"…\"`).", ""]  # fmt: skip
        for group in self.groups:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(group.by_source.items()))
            lines += [f"## {group.title} ({group.count}: {counts})", ""]
            if group.proposal:
                lines += [f"**Proposed:** {group.proposal}", ""]
            for example in group.examples:
                lines.append(f"- “{_snippet(example['text'])}” — {example['source']}: {example['wrong']} →"
                             f" **{example['right']}** ({example['decided_by']})")  # fmt: skip
            lines.append("")
        return "\n".join(lines)


def digest(store: Store, spec: TaskSpec) -> Digest:
    """Group every known difference between an answer and the right one (see the module docstring)."""
    groups: dict[tuple[str, str, str], Group] = {}
    sources: dict[str, int] = defaultdict(int)
    items = []
    for source, item_id, wrong, right, by in _differences(store):
        sources[source] += 1
        for key in _parts(spec, wrong, right):
            group = groups.setdefault(key, Group(*key))
            group.count += 1
            group.by_source[source] = group.by_source.get(source, 0) + 1
            if len(group.examples) < EXAMPLES:
                group.examples.append({"item_id": item_id, "source": source, "decided_by": by,
                                       "wrong": _short(wrong), "right": _short(right)})  # fmt: skip
                items.append(item_id)
    texts = store.item_texts(items)
    for group in groups.values():
        for example in group.examples:
            example["text"] = texts.get(example["item_id"], "")
    ranked = sorted(groups.values(), key=lambda g: (-g.count, g.title))
    return Digest(ranked, dict(sources))


def _differences(store: Store) -> Iterable[tuple[str, str, dict, dict, str]]:
    """(source, item, wrong output, right output, who decided) for every known difference."""
    for item_id, row in store.adjudications().items():
        right = json.loads(row["output"])
        for answer in store.annotations(item_id):
            if answer["kind"] == "answer" and answer["is_current"]:
                wrong = json.loads(answer["output"])
                if comparable(wrong) != comparable(right):
                    yield "dispute", item_id, wrong, right, f"expert {row['annotator']}"
    for row in store.corrections(labelers.LLM):
        model, person = json.loads(row["model"]), json.loads(row["output"])
        if comparable(model) != comparable(person):
            yield "correction", row["item_id"], model, person, row["annotator"]
    known = store.test_questions()
    for row in store.test_answers():
        if not row["correct"] and row["item_id"] in known:
            yield "test", row["item_id"], json.loads(row["output"]), known[row["item_id"]]["answer"], "test question"


def _parts(spec: TaskSpec, wrong: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The groups one difference falls in: per field, a label pair, a label missed or added, or the field."""
    sets = set_fields(spec)
    enums = {n for n, p in spec.output_schema()["properties"].items() if "enum" in p}
    found = []
    for name in spec.output_fields:
        a, b = wrong.get(name), right.get(name)
        if comparable({name: a}) == comparable({name: b}):
            continue
        if name in sets and sets[name] is not None:
            given, wanted = set(map(str, a or [])), set(map(str, b or []))
            found += [(name, f"without {x}", f"with {x}") for x in sorted(wanted - given)]
            found += [(name, f"with {x}", f"without {x}") for x in sorted(given - wanted)]
        elif name in enums:
            found.append((name, str(a), str(b)))
        else:
            found.append((name, "", ""))
    return found


def _short(output: dict[str, Any]) -> str:
    return json.dumps(output, ensure_ascii=False)[:200]


def _snippet(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
