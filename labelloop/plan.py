"""Plan a labeling run before paying for it: items, calls, a token estimate, the first prompt."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ._sync import run_sync
from .backends import Backend, create_backend
from .context import context_for
from .job import Job, LabelOptions, fewshot_pool, model_known
from .prompt import build_prompt
from .selection import CHUNK, chunked, selected_items
from .spec import ModelSettings, TaskSpec
from .store import Store


@dataclass
class Plan:
    """What ``label`` would do now, without calling the model."""

    backend: str
    model: str
    prompt_version: str
    items_total: int
    to_label: int
    cached: int
    calls: int
    prompt_tokens_estimate: int
    completion_tokens_max: int
    first_prompt: list[dict[str, str]] | None


def make_plan(store: Store, spec: TaskSpec, settings: ModelSettings, options: LabelOptions) -> Plan:
    """Count and estimate the work a ``label`` run with these settings would do."""
    backend = create_backend(settings)
    if not model_known(backend):
        run_sync(_open_to_learn_model(backend))
    prompt = build_prompt(spec)
    job = Job(spec, prompt, settings, backend.model_id, options.labeler, fewshot_pool(store, spec),
              context_for(spec, store))  # fmt: skip
    shared_tokens = sum(estimate_tokens(m["content"]) for m in prompt.shared)
    to_label = cached = prompt_tokens = 0
    first = None
    for chunk in chunked(map(job.attach, selected_items(store, job, options)), CHUNK):
        hits = store.cached_calls(job.cache_key(item) for item in chunk) if options.use_cache else {}
        for item in chunk:
            messages = job.request(item).messages
            first = first or messages
            to_label += 1
            if job.cache_key(item) in hits:
                cached += 1
            else:
                item_part = messages[len(prompt.shared) :]
                prompt_tokens += shared_tokens + sum(estimate_tokens(m["content"]) for m in item_part)
    calls = to_label - cached
    if options.max_calls is not None:
        calls = min(calls, options.max_calls)
    return Plan(
        backend=backend.name,
        model=backend.model_id,
        prompt_version=prompt.version,
        items_total=store.count_items(),
        to_label=to_label,
        cached=cached,
        calls=calls,
        prompt_tokens_estimate=prompt_tokens,
        completion_tokens_max=calls * settings.max_tokens,
        first_prompt=first,
    )


async def _open_to_learn_model(backend: Backend) -> None:
    async with backend:
        pass


def estimate_tokens(text: str) -> int:
    """A rough token count: one per CJK character, one per four other characters."""
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))
    return wide + (len(text) - wide + 3) // 4 + 4
