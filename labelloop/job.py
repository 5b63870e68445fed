"""A labeling job: what determines a model's answer, and per item its cache key, request and record.

A job is the model, the prompt version and the decoding parameters (the *answer key*), plus the
quality gate's rules and thresholds (the *job key*: a new rule re-judges cached answers without a
call). ``plan`` and ``engine`` build the same job, so what a plan counts as cached is what a run
serves from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from . import labelers
from ._extras import require
from .backends import Backend, CompletionRequest
from .confidence.extra_calls import ExtraCalls, extra_calls
from .context import Context, shown_context, views
from .errors import BackendError
from .gate import Verdict, with_confidence
from .prompt import Prompt
from .route import FAILED
from .spec import CoherenceSpec, ModelSettings, TaskSpec
from .store import Item, PredictionRecord, Store
from .windowed import WindowCalls, window_calls

BARE_LABEL_TOKENS = 3  # label scoring: the answer is the label itself


@dataclass
class LabelOptions:
    """Which items to label and within what budget."""

    labeler: str = labelers.LLM
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    max_calls: int | None = None
    max_tokens: int | None = None
    use_cache: bool = True
    known_calls: Store | None = None  # another store whose answers to the same texts count as cached (compare)
    lease_seconds: float = 60.0  # how long a claimed item stays this run's without a renewal (see store.leases)


@dataclass(frozen=True)
class Job:
    """Everything that determines a model's answer, except the item."""

    spec: TaskSpec
    prompt: Prompt
    settings: ModelSettings
    model_id: str
    labeler: str
    fewshot: Any = None  # a learn.fewshot.FewShotPool when learn.fewshot > 0
    context: Context | None = None  # retrieved passages, windows (labelloop.context), for the kinds that need them

    def attach(self, item: Item) -> Item:
        """The item with the context its kind needs (see :mod:`labelloop.context`)."""
        return item if self.context is None else self.context.attach(item)

    @cached_property
    def answer_key(self) -> str:
        """What determines the model's answer: model, prompt version, decoding parameters."""
        payload = json.dumps(
            {"model": self.model_id, "prompt": self.prompt.version, "params": self.settings.decoding_params()},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    @cached_property
    def key(self) -> str:
        """The answer key plus the quality gate: a new rule or threshold re-judges (from the cache)."""
        gate = {
            "rules": [r.model_dump() for r in self.spec.rules],
            "validators": self.spec.validators,
            "review": self.spec.review.model_dump(),
        }
        payload = json.dumps({"answer": self.answer_key, "gate": gate}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    @property
    def settled_by(self) -> str | None:
        """The labeler whose accepted answers spare this job a call (the small model, when policy says so)."""
        small_alone = self.spec.learn.policy.small_alone and self.labeler != labelers.SMALL
        return labelers.SMALL if small_alone else None

    @property
    def representatives_only(self) -> bool:
        """Whether duplicates wait for their group representative's answer instead of a call (dedup.label_one)."""
        return self.spec.dedup.group and self.spec.dedup.label_one

    def start_run(self, store: Store, backend: str, planned: int) -> int:
        """Record a run of this job in ``store`` (by this process); its id."""
        return store.start_run(
            labeler=self.labeler,
            backend=backend,
            model=self.model_id,
            params=self.settings.decoding_params(),
            prompt_version=self.prompt.version,
            job_key=self.key,
            items_planned=planned,
            pid=os.getpid(),
        )

    def examples(self, item: Item) -> list[tuple[str, str]]:
        """The few-shot examples chosen for ``item`` as (text, answer text); none without a pool."""
        if self.fewshot is None:
            return []
        return [(text, self.spec.answer_text(output)) for text, output in self.fewshot.examples(item)]

    def cache_key(self, item: Item) -> str:
        """The answer key, the item's content and the few-shot examples it gets."""
        examples = self.examples(item)
        extra = f":{self.fewshot.digest(examples)}" if examples else ""
        if self.context is not None:
            extra += f":{self.context.digest(item)}"
        return hashlib.sha256(f"{self.answer_key}:{item.content_hash}{extra}".encode()).hexdigest()[:32]

    def request(self, item: Item) -> CompletionRequest:
        s = self.settings
        max_tokens = min(s.max_tokens, BARE_LABEL_TOKENS) if self.prompt.output_schema is None else s.max_tokens
        return CompletionRequest(
            messages=self.messages(views(item)[0]),
            json_schema=self.prompt.output_schema,
            temperature=s.temperature,
            max_tokens=max_tokens,
            top_logprobs=s.top_logprobs,
            seed=s.seed,
        )

    def messages(self, item: Item) -> list[dict[str, str]]:
        """The messages asking about ``item`` (or one window of it)."""
        return self.prompt.messages(item, self.examples(item))

    def extra_calls(
        self, item: Item, request: CompletionRequest, verdict: Verdict, cache_key: str
    ) -> ExtraCalls | WindowCalls | None:
        """The further calls an answer needs: a long text's other windows, or its confidence's calls."""
        if isinstance(self.spec, CoherenceSpec):
            windows = window_calls(self.spec, item, request, cache_key, self.messages)
            if windows is not None:
                return windows
        return extra_calls(self.spec, item, request, verdict.validation, verdict.confidence, cache_key)

    def with_extra(
        self, verdict: Verdict, extra: ExtraCalls | WindowCalls, answers: Sequence[tuple[str, Any] | None]
    ) -> Verdict:
        """The verdict once the extra calls answered (each answer: text and token logprobs; None: it failed)."""
        if isinstance(extra, WindowCalls):
            return extra.merge(verdict, answers)
        confidence = extra.combine([None if answer is None else answer[0] for answer in answers])
        return verdict if confidence is None else with_confidence(self.spec, verdict, confidence)

    def logged_request(self, request: CompletionRequest) -> dict[str, Any]:
        """The request as logged: the shared prefix is stored once per prompt version, not per call."""
        return {
            "prompt_version": self.prompt.version,
            "item_messages": request.messages[len(self.prompt.shared) :],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "top_logprobs": request.top_logprobs,
            "seed": request.seed,
        }

    def prediction(
        self, item: Item, text: str | None, verdict: Verdict | None, error: str | None = None
    ) -> PredictionRecord:
        """The stored record of the gate's verdict on an answer (``verdict`` None: the call failed)."""
        prediction = PredictionRecord(
            item_id=item.id,
            labeler=self.labeler,
            job_key=self.key,
            item_hash=item.content_hash,
            prompt_version=self.prompt.version,
            model=self.model_id,
            status="failed",
            raw_text=text,
            error=error,
            route=FAILED,
            reasons=["failed_call"],
        )
        if verdict is None:
            return prediction
        validation, confidence = verdict.validation, verdict.confidence
        prediction.status = "ok" if validation.output is not None else "unparsable"
        prediction.output, prediction.repaired = validation.output, validation.repaired
        prediction.problems = validation.problems_json()
        prediction.error = "; ".join(p.message for p in validation.problems) or None
        prediction.route, prediction.reasons = verdict.route.state, verdict.route.reasons
        if confidence is not None:
            prediction.confidence, prediction.confidence_method = confidence.value, confidence.method
            prediction.field_confidence = confidence.fields
        prediction.context = shown_context(item)
        return prediction


def fewshot_pool(store: Store, spec: TaskSpec) -> Any:
    """Examples from people's labels for each prompt (``learn.fewshot``; needs the ``embed`` extra)."""
    if not spec.learn.fewshot:
        return None
    fewshot = require("labelloop.learn.fewshot", "embed", "learn.fewshot (examples from people's labels)")
    return fewshot.FewShotPool(store, spec, spec.learn.fewshot)


def model_known(backend: Backend) -> bool:
    """Whether the backend knows its model's name before it is opened."""
    try:
        _ = backend.model_id  # a backend that does not know it yet raises
    except BackendError:
        return False
    return True
