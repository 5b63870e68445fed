"""Settings blocks of a task spec: model, prompt, input, labels, rules, review."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import SpecError

ENV_PREFIX = "LABELLOOP_"
DEFAULT_ROLE = "You are a careful data annotator. You follow the guidelines exactly and answer only with JSON."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EndpointSettings(_Strict):
    """One of several servers of the same model (``model.base_urls``)."""

    url: str = Field(min_length=1)
    concurrency: int | None = Field(None, ge=1, le=4096, description="its own limit (default: model.concurrency)")


class ModelSettings(_Strict):
    """Which model labels, and with which decoding parameters."""

    backend: str = "llamacpp"
    model: str | None = Field(
        None, description="Model name (openai) or GGUF path (llamacpp; default: embedded SmolLM2)"
    )
    base_url: str | None = None
    base_urls: list[EndpointSettings] = Field(
        [], description="several servers of this model: each request goes to the one with the fewest in flight"
    )
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the API key")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1)
    top_logprobs: int = Field(5, ge=0, le=5, description="0 disables logprobs")
    seed: int | None = None
    concurrency: int = Field(16, ge=1, le=4096)
    timeout: float = Field(120.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(1.0, ge=0.0, description="first retry delay in seconds; doubles per retry, with jitter")

    @field_validator("base_urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        if isinstance(value, str):  # LABELLOOP_BASE_URLS: comma-separated
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [{"url": v} if isinstance(v, str) else v for v in value]
        return value

    def with_overrides(self, overrides: dict[str, Any], environ: Mapping[str, str] | None = None) -> ModelSettings:
        """Apply ``LABELLOOP_*`` environment variables, then explicit overrides (None = not given)."""
        env = os.environ if environ is None else environ
        merged = self.model_dump()
        for name in type(self).model_fields:
            env_value = env.get(ENV_PREFIX + name.upper())
            if env_value is not None:
                merged[name] = env_value
        merged.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return type(self).model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise SpecError("settings", None, f"model.{key}", err["msg"]) from None

    def decoding_params(self) -> dict[str, Any]:
        """The parameters that change the model's answer (part of the cache key)."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_logprobs": self.top_logprobs,
            "seed": self.seed,
        }


class PromptSettings(_Strict):
    """How the prompt is written; the defaults suit most tasks."""

    role: str = DEFAULT_ROLE
    item_template: str = Field("{{ text }}", description="Jinja2 template of the item message")


class InputSettings(_Strict):
    """Defaults for ``ingest``: which fields hold the text and the id."""

    text_field: str = "text"
    id_field: str | None = None


class Label(_Strict):
    name: str = Field(min_length=1)
    description: str = ""


class Rule(_Strict):
    """A check on every answer: a safe expression over the output's fields, ``item`` and ``text``."""

    rule: str = Field(min_length=1)
    message: str = ""

    @property
    def name(self) -> str:
        return self.message or self.rule


class ReviewSettings(_Strict):
    """When an answer is trusted, and what happens when it is not."""

    threshold: float = Field(0.7, ge=0.0, le=1.0, description="auto-accept at or above this confidence")
    fields: dict[str, float] = Field({}, description="per-field thresholds, e.g. {passenger_count: 0.8}")
    feedback_retries: int = Field(1, ge=0, le=5, description="re-asks with the validation errors fed back")
    accept_without_confidence: bool = Field(False, description="accept valid answers when no logprobs exist")
    self_consistency: int = Field(
        0,
        ge=0,
        le=20,
        description=(
            "without logprobs, draw this many answers in all and use their agreement as the confidence (k calls)"
        ),
    )
    sample_temperature: float = Field(0.7, gt=0.0, le=2.0, description="temperature of the extra samples")

    @field_validator("fields")
    @classmethod
    def _thresholds_in_range(cls, fields: dict[str, float]) -> dict[str, float]:
        bad = [name for name, value in fields.items() if not 0.0 <= value <= 1.0]
        if bad:
            raise ValueError(f"thresholds must be between 0 and 1: {', '.join(bad)}")
        return fields

    def threshold_for(self, field_name: str) -> float:
        return self.fields.get(field_name, self.threshold)


class OverlapSettings(_Strict):
    """How many people answer an item: ``annotators`` for a ``sample`` of the items sent to people, one for the rest."""

    annotators: int = Field(1, ge=1, le=50, description="answers wanted per overlapped item (k)")
    sample: float = Field(1.0, gt=0.0, le=1.0, description="share of the items sent to people that get k answers")
    include_accepted: bool = Field(
        False, description=("draw the sample from auto-accepted items too (a QC sample of the model's accepted labels)")
    )
    stratify: list[Literal["label", "confidence"]] = Field(
        ["label", "confidence"], description="draw the sample evenly across predicted labels and confidence bands"
    )
    seed: int = 0

    @property
    def samples(self) -> bool:
        """Whether items must be drawn (otherwise every item sent to people gets k answers)."""
        return self.sample < 1.0 or self.include_accepted


class TestQuestionSettings(_Strict):
    """Items with known answers mixed into each annotator's queue (``labelloop test-questions add``)."""

    rate: float = Field(0.05, ge=0.0, le=0.5, description="share of an annotator's items that are test questions")
    seed: int = 0


class QualifySettings(_Strict):
    """A new annotator's qualification: a set of test questions first; until they pass, answers do not count."""

    items: int = Field(20, ge=1, le=500, description="test questions in one qualification round")
    pass_: float = Field(0.8, alias="pass", ge=0.0, le=1.0, description="accuracy that passes a round")


class AnnotationSettings(_Strict):
    """Several annotators: overlap, blindness, aggregation and the quality thresholds that trigger actions."""

    overlap: OverlapSettings = OverlapSettings()
    show_prelabel: bool = Field(True, description="show the model's answer to annotators (off: blind)")
    aggregate: Literal["auto", "majority", "dawid_skene", "one_coin", "glad", "mace", "wawa"] = Field(
        "auto", description="how answers combine; auto: chosen per question family (see labelloop.aggregation_method)"
    )
    sets: Literal["per_label", "whole"] = Field(
        "per_label",
        description=("aggregate a set of labels one yes/no question per label, or as one choice among whole sets"),
    )
    model_votes: list[str] = Field([], description="labelers (label --as NAME) whose answers vote beside people")
    min_agreement: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description=("an item whose winning answer has a lower share (or Dawid-Skene posterior) goes to adjudication"),
    )
    batch_match: float = Field(0.9, ge=0.0, le=1.0, description="a batch matching less than this goes to rework")
    min_kappa: float = Field(0.6, ge=-1.0, le=1.0, description="annotators below this kappa are flagged")
    test_questions: TestQuestionSettings = TestQuestionSettings()
    qualify: QualifySettings | None = Field(None, description="a qualification round before answers count")
    retrain_below: float = Field(
        0.8, ge=0.0, le=1.0, description="flag an annotator whose test accuracy's upper 95% bound is below this"
    )
    exclude_flagged: bool = Field(False, description="leave flagged annotators' answers out of aggregation")
    show_scores: bool = Field(False, description="show each annotator their own accuracy on test questions")


class EmbeddingSettings(_Strict):
    """How items are embedded: the bundled all-MiniLM-L6-v2 by default, another sentence-transformers model,
    or an OpenAI-compatible ``/v1/embeddings`` endpoint (``base_url``)."""

    model: str | None = Field(None, description="sentence-transformers name or path, or the endpoint's model")
    base_url: str | None = None
    api_key_env: str | None = None
    batch_size: int = Field(64, ge=1, le=4096)


class SmallModelSettings(_Strict):
    """The small model trained on people's labels: logistic regression on embeddings, its embedders and
    regularisation chosen by cross-validation."""

    min_examples: int = Field(20, ge=4, description="gold items needed before training")
    folds: int = Field(5, ge=2, le=20, description="stratified cross-validation folds")
    regularization: float | None = Field(
        None, gt=0, description="logistic regression C (larger: less regularised); unset: chosen among 1, 10, 100"
    )
    extra_embedders: list[str] = Field(
        default_factory=lambda: ["multilingual-e5-small"],
        description=(
            "embedders besides learn.embeddings the small model may use, alone or concatenated; the candidate"
            " with the best cross-validated accuracy wins"
        ),
    )


class PolicySettings(_Strict):
    """How the small model and the LLM share the work."""

    target_precision: float = Field(0.95, gt=0.0, lt=1.0, description="precision auto-accepted labels must reach")
    confidence_level: float = Field(0.9, gt=0.5, lt=1.0, description="confidence of that guarantee (Clopper-Pearson)")
    calibration: Literal["isotonic", "platt"] = "isotonic"
    small_alone: bool = Field(
        False,
        description=("the small model alone labels items where its guaranteed threshold is met; the LLM is not called"),
    )
    cross_check: bool = Field(
        True, description=("where both labeled: disagreement goes to review; agreement with both confident is accepted")
    )
    combine: bool = Field(
        True,
        description=(
            "the LLM and the small model as one labeler with its own guaranteed threshold; when it may accept more"
            " than each alone, it decides which LLM answers are accepted"
        ),
    )


class LearnSettings(_Strict):
    """The flywheel: embeddings, few-shot from corrections, the small model, review order, duplicates."""

    embeddings: EmbeddingSettings = EmbeddingSettings()
    fewshot: int = Field(0, ge=0, le=32, description="nearest people-labeled examples added to each prompt")
    small_model: SmallModelSettings = SmallModelSettings()
    policy: PolicySettings = PolicySettings()
    review_order: Literal["confidence", "active"] = Field(
        "confidence", description=("active: uncertainty x diversity and labeler disagreement choose the next items")
    )


class CleanSettings(_Strict):
    """Cleaning at ingest: a profile (none, basic, web, zh), then these steps on or off (None: the profile's)."""

    profile: Literal["none", "basic", "web", "zh"] = "basic"
    nfkc: bool | None = None
    fullwidth: bool | None = None
    traditional_to_simplified: bool | None = None
    control_chars: bool | None = None
    html: bool | None = None
    urls: bool | None = None
    emails: bool | None = None
    boilerplate: list[str] | None = Field(None, description="regular expressions whose matches are removed")
    whitespace: bool | None = None
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=1)
    languages: list[str] | None = Field(None, description="keep only these languages, e.g. [zh, en]")


class PiiSettings(_Strict):
    """PII found in the text before anything else sees it: per type mask, placeholder or keep."""

    types: dict[
        Literal["email", "phone", "cn_id", "bank_card", "ip", "person", "address"],
        Literal["mask", "placeholder", "keep"],
    ] = Field({}, description="e.g. {phone: mask, email: placeholder}; types not listed are not looked for")
    region: str = Field("CN", description="default region of phone numbers without a country code")
    ner: bool = Field(False, description="names and addresses with Presidio, when it is installed")
    key_env: str = Field(
        "LABELLOOP_PII_KEY",
        description=("environment variable holding the passphrase that encrypts the original text and placeholders"),
    )


class DedupSettings(_Strict):
    """Duplicates grouped before labeling: one member per group goes to the model, the rest inherit."""

    group: bool = Field(False, description="group exact (and near) duplicates before each labeling run")
    near: bool = True
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="MinHash Jaccard threshold for near duplicates")
    label_one: bool = Field(True, description="send one member per group to the model; the others inherit")


class MonitorSettings(_Strict):
    """The drift alarm: each batch of items against the first ones (see labelloop.monitor)."""

    window: str | None = Field(
        None, pattern=r"^[1-9][0-9]*[hdw]$", description="batches by ingest time (6h, 1d, 1w); unset: by ingested file"
    )
    reference_batches: int = Field(1, ge=1, description="the first batches, taken together as the reference")
    reference: str | None = Field(
        None,
        description="a file (JSONL/CSV/Parquet, relative to the project) as the reference instead: the items ingested"
        " from it, or, when it was never ingested, its texts (and labels, where it has them) as they are",
    )
    p_value: float = Field(0.01, gt=0.0, lt=1.0, description="each test's significance level")
    psi: float = Field(0.2, gt=0.0, description="population stability index of the labels that alarms")
    ks_distance: float = Field(0.15, gt=0.0, le=1.0, description="Kolmogorov–Smirnov D that alarms")
    rate_change: float = Field(0.10, gt=0.0, le=1.0, description="change of the review or disagreement rate")
    unknown_change: float = Field(0.02, gt=0.0, le=1.0, description="change of the unknown-character rate")
    min_items: int = Field(30, ge=1, description="a smaller batch raises no alarm")
    centroid_distance: float = Field(
        0.25, gt=0.0, description="distance of the embedding centroids, in units of the reference's spread"
    )


class Example(_Strict):
    input: str = Field(min_length=1)
    output: Any
