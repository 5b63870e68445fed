"""Confidence that costs extra model calls: self-consistency samples, and a judge for generated outputs.

Each answer that needs them gets an :class:`ExtraCalls`: the requests (with their own cache keys,
so a rerun re-judges from the cache) and how their answers combine into a confidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..backends import CompletionRequest
from ..spec import GenerateSpec, QaGenerateSpec, TaskSpec
from ..store import Item
from ..validate import Validation, validate_answer
from .result import NO_CONFIDENCE, Confidence

JUDGE_SCALE = (1, 2, 3, 4, 5)
_JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"rating": {"type": "integer", "enum": list(JUDGE_SCALE)}},
    "required": ["rating"],
    "additionalProperties": False,
}


@dataclass
class ExtraCalls:
    """Requests keyed for the cache, and how their answer texts (None: the call failed) combine."""

    requests: list[tuple[str, CompletionRequest]]
    combine: Callable[[list[str | None]], Confidence | None]


def extra_calls(
    spec: TaskSpec,
    item: Item,
    request: CompletionRequest,
    validation: Validation,
    confidence: Confidence | None,
    cache_key: str,
) -> ExtraCalls | None:
    """The extra calls an answer (validated as ``validation``, scored ``confidence`` from its tokens)
    needs for its confidence, if any: a judge's rating for a generated output, or, with
    ``review.self_consistency``, samples for a valid answer that has no confidence of its own."""
    answer = validation.output
    if answer is None:  # not even a JSON object: neither judged nor sampled
        return None
    if isinstance(spec, GenerateSpec) and validation.valid:
        return _judge_calls(spec, item, request, answer, cache_key)
    if isinstance(spec, QaGenerateSpec) and validation.valid:
        return _pair_judge_calls(spec, item, request, answer, cache_key)
    if needs_samples(spec, validation, confidence):
        return _sample_calls(spec, item, request, answer, cache_key)
    return None


def needs_samples(spec: TaskSpec, validation: Validation, confidence: Confidence | None) -> bool:
    """Whether self-consistency should score this answer: it is valid JSON and has no confidence."""
    return (
        spec.review.self_consistency >= 2
        and validation.output is not None
        and (confidence is None or confidence.value is None)
    )


def extra_key(cache_key: str, purpose: str) -> str:
    """The cache key of an extra call made for ``purpose`` (e.g. ``sample:2:0.7``, ``judge``)."""
    return hashlib.sha256(f"{cache_key}:{purpose}".encode()).hexdigest()[:32]


def _sample_calls(
    spec: TaskSpec, item: Item, request: CompletionRequest, answer: dict[str, Any], cache_key: str
) -> ExtraCalls:
    review = spec.review
    requests = [
        (
            extra_key(cache_key, f"sample:{index}:{review.sample_temperature}"),
            replace(request, temperature=review.sample_temperature, seed=index),
        )
        for index in range(1, review.self_consistency)
    ]

    def combine(texts: list[str | None]) -> Confidence | None:
        answered = [text for text in texts if text is not None]
        if len(answered) < len(texts):
            return None  # too few samples to judge: the answer keeps its missing confidence
        samples = [validate_answer(spec, text, item).output for text in answered]
        return agreement(spec, answer, samples)

    return ExtraCalls(requests, combine)


def _judge_request(request: CompletionRequest, messages: list[dict[str, str]]) -> CompletionRequest:
    return replace(
        request, messages=messages, json_schema=_JUDGE_SCHEMA, temperature=0.0, top_logprobs=0, max_tokens=16
    )


def _judged(rating: int) -> float:
    return (rating - JUDGE_SCALE[0]) / (JUDGE_SCALE[-1] - JUDGE_SCALE[0])


def _judge_calls(
    spec: GenerateSpec, item: Item, request: CompletionRequest, answer: dict[str, Any], cache_key: str
) -> ExtraCalls:
    judge_request = _judge_request(request, judge_messages(spec, item, answer["output"]))

    def combine(texts: list[str | None]) -> Confidence | None:
        rating = judge_rating(texts[0]) if texts[0] is not None else None
        if rating is None:
            return None
        return Confidence(_judged(rating), f"judge:{rating}/{JUDGE_SCALE[-1]}", {"output": _judged(rating)})

    return ExtraCalls([(extra_key(cache_key, "judge"), judge_request)], combine)


def _pair_judge_calls(
    spec: QaGenerateSpec, item: Item, request: CompletionRequest, answer: dict[str, Any], cache_key: str
) -> ExtraCalls:
    """The judge rates each pair; the answer's confidence is its weakest pair's (``pairs.N``: pair N's)."""
    requests = []
    for number, pair in enumerate(answer["pairs"], 1):
        output = f"Question: {pair['question']}\nAnswer: {pair['answer']}"
        key = extra_key(cache_key, f"judge:pair:{number}:{pair['question']}:{pair['answer']}")
        requests.append((key, _judge_request(request, judge_messages(spec, item, output))))

    def combine(texts: list[str | None]) -> Confidence | None:
        ratings = [judge_rating(text) if text is not None else None for text in texts]
        if not ratings or any(rating is None for rating in ratings):
            return None
        fields = {f"pairs.{n}": _judged(r) for n, r in enumerate(ratings, 1) if r is not None}
        least = min(fields.values())
        return Confidence(
            least, f"judge:min {min(r for r in ratings if r)}/{JUDGE_SCALE[-1]}", {"pairs": least, **fields}
        )

    return ExtraCalls(requests, combine)


def judge_messages(spec: GenerateSpec | QaGenerateSpec, item: Item, output: str) -> list[dict[str, str]]:
    """The judge's prompt: the task, the rubric, the input and the output to rate."""
    rubric = "\n".join(f"- {point}" for point in spec.rubric)
    system = (
        "You are a strict reviewer of training data. Rate how well the output does the task, from 1"
        f' (unusable) to 5 (excellent), on this rubric:\n{rubric}\nAnswer with {{"rating": <1-5>}}.'
    )
    user = f"Task: {spec.instruction}\n\nInput:\n{item.text}\n\nOutput:\n{output}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_rating(text: str) -> int | None:
    """The rating a judge's answer gives, or None when it gives none on the scale."""
    try:
        rating = json.loads(text).get("rating")
    except (ValueError, AttributeError):
        return None
    return rating if rating in JUDGE_SCALE else None


def agreement(spec: TaskSpec, answer: dict, samples: list[dict | None]) -> Confidence:
    """Self-consistency: for each field, the share of all answers (``answer`` + ``samples``) that agree
    with ``answer``; an invalid sample (None) agrees with nothing. Item value: min over required fields."""
    answers = [answer, *samples]
    fields = {
        name: sum(1 for other in answers if other is not None and other.get(name) == value) / len(answers)
        for name, value in answer.items()
    }
    required = [name for name in spec.output_schema().get("required", []) if name in fields] or list(fields)
    if not required:
        return NO_CONFIDENCE
    return Confidence(min(fields[name] for name in required), "self_consistency", fields)
