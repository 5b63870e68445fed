"""The task's guidelines, improved by people's evidence: proposed sentences from the model for the digest's
groups (:func:`propose`), and an accepted sentence added to ``guidelines`` in ``labelloop.yaml``
(:func:`accept`), which changes the prompt and so its version: ``compare`` can then measure the effect."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._sync import run_sync
from ..backends import create_backend
from ..backends.base import CompletionRequest
from ..calls import Caller
from ..errors import BackendError, SpecError
from ..job import Job
from ..prompt import build_prompt
from ..spec import ModelSettings, TaskSpec, load_spec
from ..store import Item, RunCounts, Store
from .digest import PROPOSED, Digest, Group

LABELER = "guidelines"
_ASK = """You help write the annotation guidelines of a labeling task.

Task: {instruction}
Current guidelines:
{guidelines}

Annotators keep getting this wrong — {title}. Examples (the wrong answer, then the right one):
{examples}

Write ONE short guideline sentence that would have led annotators to the right answer in these cases. Do not
mention the examples themselves. Answer with the sentence only."""


def propose(store: Store, spec: TaskSpec, found: Digest, settings: ModelSettings | None = None) -> int:
    """Ask the task's model for one guideline sentence for each of the largest groups; how many it wrote."""
    return run_sync(_propose(store, spec, found.groups[:PROPOSED], settings or spec.model))


async def _propose(store: Store, spec: TaskSpec, groups: list[Group], settings: ModelSettings) -> int:
    prompt = build_prompt(spec)
    store.save_prompt(prompt.version, list(prompt.shared), prompt.item_template_source, prompt.output_schema)
    written = 0
    async with create_backend(settings) as backend:
        job = Job(spec, prompt, settings, backend.model_id, LABELER)
        counts = RunCounts()
        run_id = job.start_run(store, backend.name, len(groups))
        caller = Caller(backend, job, counts)
        calls: list = []
        try:
            for group in groups:
                example = group.examples[0]
                request = CompletionRequest(messages=[{"role": "user", "content": _question(spec, group)}],
                                            temperature=0.0, max_tokens=120)  # fmt: skip
                item = Item(example["item_id"], example.get("text", ""), {}, "")
                try:
                    answer = await caller.call(item, f"guidelines:{group.title}", request, calls)
                except BackendError:
                    continue
                group.proposal = _sentence(answer.text)
                written += bool(group.proposal)
        finally:
            counts.calls, counts.items_done = len(calls), written
            store.record_calls(run_id, calls)
            store.finish_run(run_id, "finished", counts)
    return written


def _question(spec: TaskSpec, group: Group) -> str:
    examples = "\n".join(f"- {e.get('text', '')[:300]!r}: {e['wrong']} → {e['right']}" for e in group.examples)
    return _ASK.format(instruction=spec.instruction, guidelines=spec.guidelines.strip() or "(none)",
                       title=group.title, examples=examples)  # fmt: skip


def _sentence(text: str) -> str | None:
    line = next((x.strip(" -*\"'“”") for x in text.strip().splitlines() if x.strip()), "")
    return line[:400] or None


def accept(spec_path: str | Path, sentence: str) -> tuple[str, str]:
    """Add ``sentence`` to the guidelines in ``spec_path`` (a line ``- sentence``), keeping the rest of the file
    as written; the prompt versions before and after. The new file is checked before it replaces the old."""
    path = Path(spec_path)
    sentence = " ".join(sentence.split())
    if not sentence:
        raise SpecError(str(path), None, "guidelines", "an empty sentence adds nothing")
    text = path.read_text(encoding="utf-8")
    text = text if text.endswith("\n") else text + "\n"
    before = load_spec(path)
    lines = before.guidelines.rstrip("\n").splitlines() + [f"- {sentence}"]
    block = "guidelines: |\n" + "".join(f"  {line}\n" if line else "\n" for line in lines)
    found = re.search(
        r"(?m)^guidelines:.*\n(?:(?:[ \t]+.*|[ \t]*)\n)*", text + ("\n" if not text.endswith("\n") else "")
    )
    updated = (text[: found.start()] + block + text[found.end() :]) if found else text.rstrip("\n") + "\n" + block
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(updated, encoding="utf-8")
    try:
        after = load_spec(tmp)
    except SpecError:
        tmp.unlink()
        raise
    if after.guidelines.rstrip("\n").splitlines()[-1] != f"- {sentence}":
        tmp.unlink()
        raise SpecError(str(path), None, "guidelines", "could not add the sentence to the guidelines as written")
    os.replace(tmp, path)
    return build_prompt(before).version, build_prompt(after).version
