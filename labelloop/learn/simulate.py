"""What a target accuracy costs in human work: the whole loop replayed with gold labels as the reviewer.

Each round: people (the gold) label a batch; the small model is retrained and calibrated on
out-of-fold predictions; items are accepted by the small model alone (no LLM call needed), then by the
LLM where the small model does not contradict it with more confidence (or by the LLM alone before there
is a small model). Each rule's threshold is the lowest whose Clopper-Pearson bound on wrong labels fits
what is left of the (1 - target) x n error budget. Stopping now would mean people label every item not
accepted: *effort* is the share of items a person touched (reviewed plus those left), *dataset accuracy*
the share of final labels that are right. The next batch is chosen by uncertainty x diversity and
labeler disagreement (:mod:`.active`), except for the first batch and an ``audit`` share of each later
one, drawn at random: thresholds are chosen on those audited items only, because actively chosen items
are not like the rest (they are the hard or the typical ones), and a precision bound holds only for
items like the ones it was measured on. Each round's bounds use the confidence level divided over every
round the loop could run, so stopping at the cheapest-looking round keeps the stated guarantee.
Baselines: everything by hand (100%), and LLM-only routing (random review batches calibrate the LLM).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .active import select_batch, uncertainty
from .calibrate import fit_calibrator, guaranteed_threshold


@dataclass
class SimulationConfig:
    targets: list[float] = field(default_factory=lambda: [0.95, 0.98])
    batch: int = 100
    level: float = 0.9
    folds: int = 3
    regularization: float = 1.0
    calibration: str = "isotonic"
    max_rounds: int = 200
    audit: float = 0.2  # share of each batch drawn at random; thresholds are calibrated on these
    seed: int = 0

    def round_level(self, items: int) -> float:
        """The confidence each round's bounds use: ``level`` shared out over every round the loop could run
        (Bonferroni), so stopping at whichever round looks cheapest keeps the stated guarantee."""
        rounds = min(self.max_rounds, -(-items // self.batch))
        return 1.0 - (1.0 - self.level) / rounds


@dataclass
class Point:
    """One round's outcome for one target, had the loop stopped there."""

    round: int
    reviewed: int
    target: float
    accepted: int
    accepted_by_small: int
    accepted_accuracy: float | None
    effort: float
    dataset_accuracy: float


@dataclass
class SimulationResult:
    items: int
    labels: int
    llm: bool
    strategy: str
    points: list[Point]
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def best(self, target: float) -> Point | None:
        """The round to stop at for ``target``: the least effort, which a user sees without gold (the
        thresholds bound the accuracy); its ``dataset_accuracy`` says whether the target was really met.
        None when no round accepted anything (everything by hand)."""
        tried = [p for p in self.points if p.target == target and p.accepted]
        return min(tried, key=lambda p: (p.effort, p.round)) if tried else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "best": {
                str(t): asdict(b) if (b := self.best(t)) else None for t in sorted({p.target for p in self.points})
            },
        }


@dataclass
class Labels:
    """The data of one simulation: gold labels, embeddings, and (optionally) the LLM's answers."""

    gold: np.ndarray
    vectors: np.ndarray
    llm_label: np.ndarray | None = None
    llm_confidence: np.ndarray | None = None

    @property
    def has_llm(self) -> bool:
        return self.llm_label is not None

    def llm(self) -> tuple[np.ndarray, np.ndarray]:
        """The LLM's labels and confidences (given together; only when ``has_llm``)."""
        assert self.llm_label is not None and self.llm_confidence is not None, "no LLM answers"
        return self.llm_label, self.llm_confidence


def simulate(data: Labels, config: SimulationConfig, strategy: str = "flywheel") -> SimulationResult:
    """Run the rounds (``strategy``: ``flywheel`` = small model + LLM + active batches; ``llm_only`` = the
    LLM routed by its own threshold, random batches) and record a point per round and target."""
    rng = np.random.default_rng(config.seed)
    n = len(data.gold)
    reviewed = np.zeros(n, dtype=bool)
    audited = np.zeros(n, dtype=bool)
    points: list[Point] = [Point(0, 0, t, 0, 0, None, 1.0, 1.0) for t in config.targets]
    best = dict.fromkeys(config.targets, 1.0)
    state: dict[str, Any] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    level = config.round_level(n)
    for round_ in range(1, config.max_rounds + 1):
        batch, audit = _next_batch(data, reviewed, state, config, strategy, rng)
        if not batch:
            break
        reviewed[batch] = True
        audited[audit] = True
        state = _fit_round(data, reviewed, audited, config, use_small=strategy == "flywheel")
        round_points = [_point(data, reviewed, state, t, level, round_) for t in config.targets]
        points.extend(round_points)
        if round_points[0].effort <= best[config.targets[0]]:  # the curves where the first target is cheapest
            curves = _coverage_curves(data, reviewed, state)
        for p in round_points:
            best[p.target] = min(best[p.target], p.effort)
        if reviewed.mean() >= max(best.values()):  # effort is never below the reviewed share: no round can do better
            break
    return SimulationResult(n, len(np.unique(data.gold)), data.has_llm, strategy, points, curves)


# -- one round ---------------------------------------------------------------------------------------


def _fit_round(
    data: Labels, reviewed: np.ndarray, audited: np.ndarray, config: SimulationConfig, use_small: bool
) -> dict[str, Any]:
    """Small model (out-of-fold on the reviewed, predictions on the rest) and LLM calibration; the
    ``audit_*`` entries are the randomly drawn reviewed items that thresholds are chosen on."""
    rows = np.flatnonzero(reviewed)
    state: dict[str, Any] = {"reviewed": reviewed.copy(), "audit": audited[rows]}
    y = data.gold[rows]
    classes, counts = np.unique(y, return_counts=True)
    if use_small and len(classes) >= 2 and len(rows) >= 10:
        folds = int(max(2, min(config.folds, counts.max(), len(rows) // 2)))
        model = LogisticRegression(C=config.regularization, max_iter=1000, class_weight="balanced")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            oof = cross_val_predict(
                model,
                data.vectors[rows],
                y,
                method="predict_proba",
                cv=StratifiedKFold(folds, shuffle=True, random_state=config.seed),
            )
            model.fit(data.vectors[rows], y)
        oof_label, oof_raw = classes[oof.argmax(axis=1)], oof.max(axis=1)
        calibrator = fit_calibrator(oof_raw, oof_label == y, method=config.calibration)
        probabilities = model.predict_proba(data.vectors)
        state.update(
            small_label=model.classes_[probabilities.argmax(axis=1)].astype(str),
            small_conf=calibrator(probabilities.max(axis=1)),
            oof_label=oof_label,
            oof_conf=calibrator(oof_raw),
            oof_correct=oof_label == y,
        )
    if data.has_llm:
        llm_label, llm_confidence = data.llm()
        correct = llm_label[rows] == y
        calibrator = fit_calibrator(llm_confidence[rows], correct, method=config.calibration)
        state.update(llm_conf=calibrator(llm_confidence), llm_correct_reviewed=correct)
    return state


def _accept(data: Labels, state: dict[str, Any], target: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(label accepted per item or "", accepted by the small model alone) among the unreviewed.

    The goal is a dataset accuracy, so a threshold may let through at most ``(1 - target) * n`` wrong labels
    in all: each rule's threshold must keep (1 - its precision's lower bound) x (items it accepts) within
    what is left of that error budget."""
    n = len(data.gold)
    open_ = ~state["reviewed"]
    accepted = np.full(n, "", dtype=object)
    by_small = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(state["reviewed"])
    audit = state["audit"]
    budget = (1.0 - target) * n
    if "small_label" in state:
        by_small, spent = _within_budget(
            state["oof_conf"][audit], state["oof_correct"][audit], state["small_conf"], open_, budget, target, level
        )
        accepted[by_small] = state["small_label"][by_small]
        budget -= spent
    if data.has_llm:
        llm_label, _ = data.llm()
        llm_ok = state["llm_correct_reviewed"]
        if "small_label" in state:  # the LLM where the small model does not contradict it with more confidence
            calibration = audit & ~_contradicted(
                state["oof_label"], state["oof_conf"], llm_label[rows], state["llm_conf"][rows]
            )
            eligible = (
                open_
                & ~by_small
                & ~_contradicted(state["small_label"], state["small_conf"], llm_label, state["llm_conf"])
            )
        else:
            calibration, eligible = audit, open_
        chosen, _ = _within_budget(
            state["llm_conf"][rows][calibration],
            llm_ok[calibration],
            state["llm_conf"],
            eligible,
            budget,
            target,
            level,
        )
        accepted[chosen] = llm_label[chosen]
    return accepted, by_small


def _contradicted(
    small_label: np.ndarray, small_conf: np.ndarray, llm_label: np.ndarray, llm_conf: np.ndarray
) -> np.ndarray:
    """Where the small model gives another label and is surer of it than the LLM is of its own."""
    return (small_label != llm_label) & (small_conf >= llm_conf)


def _within_budget(
    calibration_conf: np.ndarray,
    calibration_ok: np.ndarray,
    conf: np.ndarray,
    eligible: np.ndarray,
    budget: float,
    target: float,
    level: float,
) -> tuple[np.ndarray, float]:
    """Items accepted by the lowest threshold whose bound on wrong labels fits ``budget``; errors it may cost."""
    candidates = np.sort(conf[eligible])

    def required(values: np.ndarray) -> np.ndarray:
        taken = len(candidates) - np.searchsorted(candidates, values, side="left")
        return 1.0 - budget / np.maximum(taken, 1)

    found = guaranteed_threshold(calibration_conf, calibration_ok, target, level, required=required)
    if found.threshold is None:
        return np.zeros(len(conf), dtype=bool), 0.0
    assert found.lower_bound is not None, "set with every threshold"
    chosen = eligible & (conf >= found.threshold)
    return chosen, (1.0 - found.lower_bound) * int(chosen.sum())


def _point(
    data: Labels, reviewed: np.ndarray, state: dict[str, Any], target: float, level: float, round_: int
) -> Point:
    accepted, by_small = _accept(data, state, target, level)
    taken = accepted != ""
    right = int((accepted[taken] == data.gold[taken]).sum())
    n = len(data.gold)
    return Point(
        round_,
        int(reviewed.sum()),
        target,
        int(taken.sum()),
        int(by_small.sum()),
        right / taken.sum() if taken.any() else None,
        (n - int(taken.sum())) / n,
        (n - int(taken.sum()) + right) / n,
    )


def _next_batch(
    data: Labels,
    reviewed: np.ndarray,
    state: dict[str, Any],
    config: SimulationConfig,
    strategy: str,
    rng: np.random.Generator,
) -> tuple[list[int], list[int]]:
    """The next batch and its randomly drawn (audit) part."""
    open_rows = np.flatnonzero(~reviewed)
    if len(open_rows) == 0:
        return [], []
    size = min(config.batch, len(open_rows))
    if strategy == "llm_only":
        batch = [int(i) for i in rng.choice(open_rows, size=size, replace=False)]
        return batch, batch
    if not state:  # the first batch is all random: it calibrates the first thresholds
        batch = [int(i) for i in rng.choice(open_rows, size=size, replace=False)]
        return batch, batch
    audit = [int(i) for i in rng.choice(open_rows, size=max(1, round(size * config.audit)), replace=False)]
    rest = open_rows[~np.isin(open_rows, audit)]
    anchors = np.flatnonzero(reviewed)
    accepted, _ = _accept(data, state, max(config.targets), config.round_level(len(data.gold)))
    pool = rest[accepted[rest] == ""]
    if len(pool) == 0:
        pool = rest
    confidence, disagreements = _confidence(data, state)
    scores = uncertainty(confidence, disagreements)
    return audit + select_batch(data.vectors, scores, pool, np.concatenate([anchors, audit]), size - len(audit)), audit


def _confidence(data: Labels, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    if "small_label" in state and data.has_llm:
        agree = state["small_label"] == data.llm_label
        return np.where(agree, np.maximum(state["small_conf"], state["llm_conf"]), state["small_conf"]), ~agree
    if "small_label" in state:
        return state["small_conf"], None
    if data.has_llm:
        return state["llm_conf"], None
    return np.zeros(len(data.gold)), None


def _coverage_curves(data: Labels, reviewed: np.ndarray, state: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Coverage vs accuracy of each labeler's answers on the items not reviewed yet, most confident first."""
    curves = {}
    open_rows = np.flatnonzero(~reviewed)
    for name, labels, conf in (
        ("small model", state.get("small_label"), state.get("small_conf")),
        ("LLM", data.llm_label, state.get("llm_conf")),
    ):
        if conf is None or labels is None or len(open_rows) == 0:
            continue
        order = open_rows[np.argsort(-conf[open_rows], kind="stable")]
        hits = np.cumsum(labels[order] == data.gold[order])
        steps = np.unique(np.linspace(max(1, len(order) // 50), len(order), num=min(50, len(order))).astype(int))
        curves[name] = [(float(k / len(order)), float(hits[k - 1] / k)) for k in steps]
    return curves
