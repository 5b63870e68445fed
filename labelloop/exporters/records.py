"""Record formats: ``jsonl`` (the export record itself), ``alpaca`` and ``chat`` (training examples)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..grounding import PASSAGES
from ..prompt import build_prompt
from ..spec import GenerateSpec, TaskSpec
from ..store import Item
from . import Exporter, ExportOptions, Records, spec_columns
from .answers import cited_passages, questions

Line = Callable[[dict[str, Any], Item], dict[str, Any]]


def write_json_lines(records: Records, path: Path, line: Line) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record, item in records:
            handle.write(json.dumps(line(record, item), ensure_ascii=False) + "\n")


def _write_jsonl(records: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    write_json_lines(records, path, lambda record, item: record)


def _write_alpaca(records: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    if spec.kind in DOCUMENT_KINDS:
        return _write_examples(records, path, spec, options, chat=False)
    extra, answer = spec_columns(spec), answer_text(spec)
    write_json_lines(
        records,
        path,
        lambda record, item: {
            "instruction": spec.instruction,
            "input": item.text,
            "output": answer(record["output"]),
            **extra,
        },
    )


def _write_chat(records: Records, path: Path, spec: TaskSpec, options: ExportOptions) -> None:
    """OpenAI chat messages: the task's system message, the item as the model saw it, the answer."""
    if spec.kind in DOCUMENT_KINDS:
        return _write_examples(records, path, spec, options, chat=True)
    extra, answer = spec_columns(spec), answer_text(spec)
    prompt = build_prompt(spec)
    system = _generate_system(spec) if isinstance(spec, GenerateSpec) else prompt.shared[0]["content"]
    write_json_lines(
        records,
        path,
        lambda record, item: {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt.item_messages(item)[0]["content"]},
                {"role": "assistant", "content": answer(record["output"])},
            ],
            **extra,
        },
    )


def answer_text(spec: TaskSpec) -> Callable[[dict[str, Any]], str]:
    """The answer of a training example: the generated text (generate), else the output as JSON."""
    if isinstance(spec, GenerateSpec):
        return lambda output: output["output"]
    return lambda output: json.dumps(output, ensure_ascii=False)


def _generate_system(spec: GenerateSpec) -> str:
    """The system message of a generate example: the task, without labelloop's JSON answer format."""
    return "\n\n".join(part.strip() for part in (spec.instruction, spec.guidelines) if part.strip())


DOCUMENT_KINDS = ("qa", "qa_generate")


def _write_examples(records: Records, path: Path, spec: TaskSpec, options: ExportOptions, *, chat: bool) -> None:
    """Training examples of the kinds that answer from documents, their provenance kept: a ``qa`` answer with its
    citations (the cited passages are its input), each pair of a ``qa_generate`` paragraph (the paragraph is)."""
    prompt = build_prompt(spec)
    system = prompt.shared[0]["content"] if spec.kind == "qa" else spec.instruction.strip()
    with path.open("w", encoding="utf-8") as handle:
        for record, item in records:
            for entry in questions(record, item, spec, options):
                provenance = {"citations": entry["citations"], "answerable": entry["answerable"]} if (
                    spec.kind == "qa") else {"source": entry["source"]}  # fmt: skip
                context = entry["context"]
                if spec.kind == "qa":  # the question with the passages it cites, through the prompt's own template
                    shown = replace(item, fields={**item.fields, PASSAGES: cited_passages(entry, options)})
                    user = context = prompt.item_messages(shown)[0]["content"]
                    target = {"answer": entry["answer"], "answerable": entry["answerable"], "citations": [
                        {k: c[k] for k in ("doc", "paragraph", "quote")} for c in entry["citations"]]}  # fmt: skip
                    answer = json.dumps(target, ensure_ascii=False)
                else:
                    user, answer = f"{entry['context']}\n\nQuestion: {entry['question']}", entry["answer"]
                line: dict[str, Any]
                if chat:
                    line = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                                         {"role": "assistant", "content": answer}]}  # fmt: skip
                else:
                    line = {"instruction": entry["question"], "input": context,
                            "output": entry["answer"]}  # fmt: skip
                handle.write(json.dumps({**line, **provenance}, ensure_ascii=False) + "\n")


JSONL = Exporter("jsonl", _write_jsonl, layout="record")
ALPACA = Exporter("alpaca", _write_alpaca)
CHAT = Exporter("chat", _write_chat)
