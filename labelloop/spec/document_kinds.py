"""The kinds of task that answer from text longer than an item: ``qa`` (answers that cite the documents),
``qa_generate`` (question–answer pairs written from a paragraph) and ``coherence`` (long texts rated, with
located problems). Their quotes are grounded in the text the way spans are (see :mod:`labelloop.grounding`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import TaskSpec
from .kinds import Level, Levels, with_offsets
from .settings import _Strict

QA_TEMPLATE = """Question: {{ text }}

Passages:
{% for p in passages %}[doc={{ p.doc }} paragraph={{ p.paragraph }}]{% if p.title %} {{ p.title }}{% endif %}
{{ p.text }}

{% else %}(no passage was found)
{% endfor %}"""

_CITATION = {
    "type": "object",
    "properties": {
        "doc": {"type": "string", "minLength": 1},
        "paragraph": {"type": "string", "minLength": 1},
        "quote": {"type": "string", "minLength": 1},
    },
    "required": ["doc", "paragraph", "quote"],
    "additionalProperties": False,
}
# what labelloop adds to a grounded citation: the document version, offsets into it, the retrieval's rank and score
_CITATION_FOUND = {
    "version": {"type": "integer", "minimum": 1},
    "start": {"type": "integer", "minimum": 0},
    "end": {"type": "integer", "minimum": 0},
    "rank": {"type": ["integer", "null"]},
    "score": {"type": ["number", "null"]},
}


class RetrievalSettings(_Strict):
    """How a question's candidate paragraphs are found."""

    k: int = Field(4, ge=1, le=50, description="paragraphs shown to the model")
    method: Literal["bm25", "hybrid", "auto"] = Field(
        "bm25",
        description="bm25; hybrid: BM25 fused with learn.embeddings' embedder by reciprocal rank; auto: hybrid when"
        " the embedder is installed (benchmarks/qa_retrieval.py measures which helps on your kind of text)",
    )


class QaSpec(TaskSpec):
    """Answer a question from the project's documents, citing the paragraphs the answer comes from."""

    kind: Literal["qa"]
    collection: str = Field("default", min_length=1, description="the documents (ingest-docs --collection)")
    retrieval: RetrievalSettings = RetrievalSettings()

    @model_validator(mode="after")
    def _passages_in_the_prompt(self) -> QaSpec:
        if "item_template" not in self.prompt.model_fields_set:
            self.prompt.item_template = QA_TEMPLATE
        return self

    def guided_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "answer": {"type": "string"},
                "citations": {"type": "array", "items": _CITATION},
                "answerable": {"type": "boolean"},
            },
            "required": ["answer", "citations", "answerable"],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict[str, Any]:
        schema = self.guided_schema()
        item = schema["properties"]["citations"]["items"]
        found = {**item, "properties": {**item["properties"], **_CITATION_FOUND}}
        return {**schema, "properties": {**schema["properties"], "citations": {"type": "array", "items": found}}}

    def output_description(self) -> str:
        return "\n".join(
            [
                "Answer the question from the passages only.",
                "- answer: a short answer in the question's language, taken from the passages.",
                "- citations: for each passage the answer uses, its doc and paragraph exactly as given, and a quote"
                " copied exactly from that passage that supports the answer.",
                '- answerable: false when the passages do not give the answer; then answer "" and cite nothing.',
                'Answer with {"answer": "...", "citations": [{"doc": "...", "paragraph": "...", "quote": "..."}],'
                ' "answerable": true}.',
            ]
        )


class QaGenerateSpec(TaskSpec):
    """Write question–answer pairs from a paragraph; each answer is a quote of that paragraph."""

    kind: Literal["qa_generate"]
    pairs: int = Field(3, ge=1, le=20, description="at most this many pairs per paragraph")
    rubric: list[str] = Field(
        ["the question can be answered from the paragraph alone", "the answer is the shortest quote that answers it"],
        min_length=1,
        description="what a good pair does; a judge rates each pair 1-5 on these",
    )

    def guided_schema(self) -> dict[str, Any]:
        pair = {
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 1},
                "answer": {"type": "string", "minLength": 1},
            },
            "required": ["question", "answer"],
            "additionalProperties": False,
        }
        return {
            "type": "object",
            "properties": {"pairs": {"type": "array", "items": pair, "minItems": 1, "maxItems": self.pairs}},
            "required": ["pairs"],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict[str, Any]:
        return with_offsets(self.guided_schema(), "pairs")

    def output_description(self) -> str:
        return "\n".join(
            [
                f"Write up to {self.pairs} question-answer pairs about the paragraph.",
                "Each answer must be copied exactly from the paragraph (a quote, not a paraphrase).",
                "A good pair:",
                *(f"- {point}" for point in self.rubric),
                'Answer with {"pairs": [{"question": "...", "answer": "<exact quote>"}, ...]}.',
            ]
        )


PROBLEM_TYPES = ("logic_jump", "unclear_reference", "off_topic", "abrupt_transition", "contradiction")
DEFAULT_DIMENSIONS = {
    "topic_consistency": "every sentence stays on the text's topic",
    "causal_links": "statements that follow from others say why; no conclusion without its reason",
    "clear_references": "every it/this/they (它/这/其) has exactly one antecedent",
    "smooth_transitions": "each sentence and paragraph connects to the one before",
}
DEFAULT_LEVELS = [
    Level(value=1, description="incoherent: the text cannot be followed"),
    Level(value=2, description="several breaks a reader must repair"),
    Level(value=3, description="followable, with some breaks"),
    Level(value=4, description="coherent, with minor slips"),
    Level(value=5, description="fully coherent"),
]


class WindowSettings(_Strict):
    """Texts longer than the model's context are rated window by window and combined."""

    chars: int = Field(6000, ge=200, description="the longest text rated in one call")
    overlap: int = Field(400, ge=0, description="characters shared by consecutive windows")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> WindowSettings:
        if self.overlap >= self.chars:
            raise ValueError("overlap must be smaller than chars")
        return self


class CoherenceSpec(TaskSpec):
    """Rate a long text for logical coherence on each dimension, and locate its problems by quoting them."""

    kind: Literal["coherence"]
    dimensions: dict[str, str] = Field(dict(DEFAULT_DIMENSIONS), min_length=1, description="name -> what it weighs")
    levels: Levels = Field(list(DEFAULT_LEVELS), min_length=2)
    problem_types: list[str] = Field(list(PROBLEM_TYPES), min_length=1)
    screen_threshold: float = Field(
        0.05, ge=0, le=1, description="adjacent sentences sharing less content than this are flagged before any call"
    )
    window: WindowSettings = WindowSettings()
    rubric_version: str = "1"

    @property
    def threshold_keys(self) -> list[str]:
        return [*self.output_fields, *self.dimensions]  # a threshold per dimension, as per label in multilabel

    def guided_schema(self) -> dict[str, Any]:
        level = {"type": "integer", "enum": [lv.value for lv in self.levels]}
        problem = {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": self.problem_types},
                "quote": {"type": "string", "minLength": 1},
                "suggestion": {"type": "string"},
            },
            "required": ["type", "quote", "suggestion"],
            "additionalProperties": False,
        }
        ratings = {
            "type": "object",
            "properties": dict.fromkeys(self.dimensions, level),
            "required": list(self.dimensions),
            "additionalProperties": False,
        }
        return {
            "type": "object",
            "properties": {"ratings": ratings, "problems": {"type": "array", "items": problem}},
            "required": ["ratings", "problems"],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict[str, Any]:
        schema = with_offsets(self.guided_schema(), "problems")
        breaks = {"type": "array", "items": {"type": "object"}}  # the pre-screen's abrupt breaks, kept with the answer
        return {**schema, "properties": {**schema["properties"], "breaks": breaks}}

    def output_description(self) -> str:
        return "\n".join(
            [
                "Rate the text's logical coherence on each dimension:",
                *(f"- {name}: {what}" for name, what in self.dimensions.items()),
                "Levels:",
                *(f"- {lv.value}: {lv.description}" for lv in self.levels),
                "List each problem you find with its type (" + ", ".join(self.problem_types) + "), a quote copied"
                " exactly from the text where it occurs (the shortest sentence or phrase), and a suggested fix.",
                'Answer with {"ratings": {"<dimension>": <level>, ...}, "problems": [{"type": "...", "quote": "...",'
                ' "suggestion": "..."}]}.',
            ]
        )


DocumentSpec = QaSpec | QaGenerateSpec | CoherenceSpec
