"""What a simulation is given (:class:`Labels`, :class:`SimulationConfig`) and what it finds (:class:`Point`
per target, in a :class:`SimulationResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .candidates import STRENGTHS


@dataclass
class SimulationConfig:
    targets: list[float] = field(default_factory=lambda: [0.95, 0.98])
    batch: int = 100
    level: float = 0.9
    folds: int = 3
    audit: float = 0.1  # share of each batch after the first drawn at random: calibrates each labeler
    patience: int = 3  # rounds without a cheaper prediction before certifying
    reselect: float = 1.5  # choose the small model again when the reviewed items grew by this factor
    strengths: tuple[float, ...] = STRENGTHS
    max_rounds: int = 200
    seed: int = 0


@dataclass
class Point:
    """The certified outcome for one target: stopped after ``round`` rounds (``reviewed`` items), then ``draws``
    certification items; ``accepted`` labels taken without review (``accepted_by_small`` of them the small
    model's), their accuracy, the effort and the dataset accuracy really reached."""

    round: int
    reviewed: int
    target: float
    accepted: int
    accepted_by_small: int
    accepted_accuracy: float | None
    effort: float
    dataset_accuracy: float
    draws: int = 0
    labeler: str = ""
    planned_effort: float = 1.0
    upper_bound: int | None = None


@dataclass
class SimulationResult:
    items: int
    labels: int
    llm: bool
    strategy: str
    points: list[Point]
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    oracle: dict[float, dict[str, float]] = field(default_factory=dict)  # target -> effort, accuracy when stopped
    small_model: dict[str, Any] = field(default_factory=dict)

    def best(self, target: float) -> Point | None:
        """The certified outcome for ``target``; None when nothing could be accepted (everything by hand)."""
        found = [p for p in self.points if p.target == target and p.accepted]
        return found[0] if found else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["oracle"] = {str(t): v for t, v in self.oracle.items()}
        data["best"] = {str(p.target): asdict(p) for p in self.points}
        return data


@dataclass
class Labels:
    """The data of one simulation: gold labels, item embeddings (one matrix, or several by embedder name) and,
    optionally, the LLM's answers."""

    gold: np.ndarray
    vectors: Any
    llm_label: np.ndarray | None = None
    llm_confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vectors, dict):
            self.vectors = {"embeddings": np.asarray(self.vectors)}
        self.gold = np.asarray(self.gold).astype(str)

    @property
    def has_llm(self) -> bool:
        return self.llm_label is not None

    def llm(self) -> tuple[np.ndarray, np.ndarray]:
        """The LLM's labels and confidences (given together; only when ``has_llm``)."""
        assert self.llm_label is not None and self.llm_confidence is not None, "no LLM answers"
        return np.asarray(self.llm_label).astype(str), np.asarray(self.llm_confidence, dtype=float)

    @property
    def primary(self) -> np.ndarray:
        """The vectors diversity is measured on: the first embedder's."""
        return next(iter(self.vectors.values()))
