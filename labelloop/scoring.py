"""Confidence that costs extra calls: self-consistency samples, and a judge for generated outputs.

Each answer that needs them gets an :class:`ExtraCalls`: the requests (with their own cache keys,
so a rerun re-judges from the cache) and how their answers combine into a confidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from .backends import CompletionRequest
from .confidence import Confidence, agreement
from .route import Verdict, needs_samples
from .spec import GenerateSpec, TaskSpec
from .store import Item
from .validate import validate_answer

JUDGE_SCALE = (1, 2, 3, 4, 5)
_JUDGE_SCHEMA = {"type": "object", "properties": {"rating": {"type": "integer", "enum": list(JUDGE_SCALE)}},
                 "required": ["rating"], "additionalProperties": False}


@dataclass
class ExtraCalls:
    """Requests keyed for the cache, and how their answer texts (None: the call failed) combine."""

    requests: list[tuple[str, CompletionRequest]]
    combine: Callable[[list[str | None]], Confidence | None]


def extra_calls(spec: TaskSpec, item: Item, request: CompletionRequest, verdict: Verdict,
                cache_key: str) -> ExtraCalls | None:
    """The extra calls this answer needs for its confidence, if any."""
    if isinstance(spec, GenerateSpec) and verdict.validation.valid:
        return _judge_calls(spec, item, request, verdict, cache_key)
    if needs_samples(spec, verdict):
        return _sample_calls(spec, item, request, verdict, cache_key)
    return None


def extra_key(cache_key: str, purpose: str) -> str:
    """The cache key of an extra call made for ``purpose`` (e.g. ``sample:2:0.7``, ``judge``)."""
    return hashlib.sha256(f"{cache_key}:{purpose}".encode()).hexdigest()[:32]


def _sample_calls(spec: TaskSpec, item: Item, request: CompletionRequest, verdict: Verdict,
                  cache_key: str) -> ExtraCalls:
    review = spec.review
    requests = [(extra_key(cache_key, f"sample:{index}:{review.sample_temperature}"),
                 replace(request, temperature=review.sample_temperature, seed=index))
                for index in range(1, review.self_consistency)]

    def combine(texts: list[str | None]) -> Confidence | None:
        if any(text is None for text in texts):
            return None  # too few samples to judge: the answer keeps its missing confidence
        samples = [validate_answer(spec, text, item).output for text in texts]
        return agreement(spec, verdict.validation.output, samples)

    return ExtraCalls(requests, combine)


def _judge_calls(spec: GenerateSpec, item: Item, request: CompletionRequest, verdict: Verdict,
                 cache_key: str) -> ExtraCalls:
    judge_request = replace(request, messages=judge_messages(spec, item, verdict.validation.output["output"]),
                            json_schema=_JUDGE_SCHEMA, temperature=0.0, top_logprobs=0, max_tokens=16)

    def combine(texts: list[str | None]) -> Confidence | None:
        rating = judge_rating(texts[0]) if texts[0] is not None else None
        if rating is None:
            return None
        value = (rating - JUDGE_SCALE[0]) / (JUDGE_SCALE[-1] - JUDGE_SCALE[0])
        return Confidence(value, f"judge:{rating}/{JUDGE_SCALE[-1]}", {"output": value})

    return ExtraCalls([(extra_key(cache_key, "judge"), judge_request)], combine)


def judge_messages(spec: GenerateSpec, item: Item, output: str) -> list[dict[str, str]]:
    """The judge's prompt: the task, the rubric, the input and the output to rate."""
    rubric = "\n".join(f"- {point}" for point in spec.rubric)
    system = ("You are a strict reviewer of training data. Rate how well the output does the task, from 1"
              f" (unusable) to 5 (excellent), on this rubric:\n{rubric}\nAnswer with {{\"rating\": <1-5>}}.")
    user = f"Task: {spec.instruction}\n\nInput:\n{item.text}\n\nOutput:\n{output}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_rating(text: str) -> int | None:
    """The rating a judge's answer gives, or None when it gives none on the scale."""
    try:
        rating = json.loads(text).get("rating")
    except (ValueError, AttributeError):
        return None
    return rating if rating in JUDGE_SCALE else None
