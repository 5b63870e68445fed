"""Answers with provenance: ``squad`` (SQuAD 2.0 JSON: context, question, answer start) for ``qa`` and
``qa_generate``, and the training examples of those kinds for ``alpaca`` and ``chat`` (:mod:`.records`).

A ``qa`` answer's context is the paragraph of its first citation, in the document version it cited (the exported
answer is that citation's quote, at its offset in the paragraph); an answer marked unanswerable has no context and
is left out of ``squad``. A ``qa_generate`` item is a paragraph: each of its pairs is a question on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..spec import TaskSpec
from ..store import Item
from . import Exporter, ExportOptions, Records


def paragraph_of(options: ExportOptions, citation: dict[str, Any]) -> tuple[int, str]:
    """The cited paragraph's offset and text in the document version the citation names."""
    if options.documents is None:
        raise ValueError("citations need the project's documents (labelloop.export passes them)")
    doc = options.documents.document(citation["doc"], citation["version"])
    for paragraph in options.documents.paragraphs(citation["doc"], citation["version"]):
        if paragraph["id"] == citation["paragraph"]:
            return paragraph["start"], doc["text"][paragraph["start"] : paragraph["end"]]
    raise ValueError(f"{citation['doc']} version {citation['version']} has no paragraph {citation['paragraph']}")


def questions(record: dict[str, Any], item: Item, spec: TaskSpec, options: ExportOptions) -> Iterator[dict]:
    """Each question of a record with its context and answer: one for ``qa``, one per pair for ``qa_generate``.
    Every one carries ``source`` (document, version, paragraph, offsets in the document)."""
    output = record["output"]
    if spec.kind == "qa_generate":
        doc, version, start = _paragraph_item(item)
        for number, pair in enumerate(output["pairs"], 1):
            if "start" not in pair:
                continue
            source = {"doc": doc, "version": version, "paragraph": item.fields.get("paragraph"),
                      "start": start + pair["start"], "end": start + pair["end"]}  # fmt: skip
            yield {"id": f"{record['id']}:{number}", "question": pair["question"], "answer": pair["answer"],
                   "context": item.text, "answer_start": pair["start"], "title": item.fields.get("title"),
                   "source": source, "citations": []}  # fmt: skip
        return
    citations = [c for c in output.get("citations", []) if "version" in c]  # grounded ones
    entry = {"id": record["id"], "question": item.text, "answer": output["answer"], "citations": citations,
             "answerable": output["answerable"], "context": None, "answer_start": None, "title": None}  # fmt: skip
    if citations:
        first = citations[0]
        offset, context = paragraph_of(options, first)
        entry.update(context=context, quote=first["quote"], answer_start=first["start"] - offset, title=first["doc"])
        entry["source"] = {k: first[k] for k in ("doc", "version", "paragraph", "start", "end")}
    yield entry


def _paragraph_item(item: Item) -> tuple[str | None, int | None, int]:
    """A paragraph item's document, version and offset in it (fields given by ``ingest-docs``)."""
    return item.fields.get("doc"), item.fields.get("version"), int(item.fields.get("start") or 0)


def _write_squad(records: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    """SQuAD 2.0: questions grouped by context, the answer's text and start in it."""
    contexts: dict[tuple[str | None, str], dict[str, Any]] = {}
    for record, item in records:
        for entry in questions(record, item, spec, options):
            if entry["context"] is None:
                continue
            key = (entry["title"], entry["context"])
            paragraph = contexts.setdefault(key, {"context": entry["context"], "qas": []})
            answer = entry.get("quote", entry["answer"])
            paragraph["qas"].append(
                {
                    "id": entry["id"],
                    "question": entry["question"],
                    "answers": [{"text": answer, "answer_start": entry["answer_start"]}],
                    "is_impossible": False,
                    "source": entry["source"],
                }
            )
    titles: dict[str | None, list[dict[str, Any]]] = {}
    for (title, _), paragraph in contexts.items():
        titles.setdefault(title, []).append(paragraph)
    data = [{"title": title or "", "paragraphs": paragraphs} for title, paragraphs in titles.items()]
    path.write_text(json.dumps({"version": "v2.0", "data": data}, ensure_ascii=False, indent=1), encoding="utf-8")


def cited_passages(entry: dict[str, Any], options: ExportOptions) -> list[dict[str, Any]]:
    """The passages an answer cites (each once), as the prompt's item template shows passages."""
    passages: dict[tuple[str, str], dict[str, Any]] = {}
    for citation in entry["citations"]:
        _, text = paragraph_of(options, citation)
        key = (citation["doc"], citation["paragraph"])
        passages.setdefault(key, {"doc": key[0], "paragraph": key[1], "title": None, "text": text})
    return list(passages.values())


SQUAD = Exporter("squad", _write_squad, kinds=("qa", "qa_generate"))
