"""What a target accuracy costs in human work: the loop replayed with gold labels as the reviewer.

Each round people (the gold) review a batch: the first is drawn at random; later ones are mostly chosen by
uncertainty x diversity and labeler disagreement (:mod:`.active`), with an ``audit`` share drawn at random. The
small model is retrained (its embedders and regularisation chosen by cross-validation, :mod:`.candidates`),
and each labeler — the small model, the LLM, and the two combined (:mod:`.combine`) — is calibrated on the
random audit items alone, which are like the items nobody reviewed, unlike the actively chosen ones. From
those calibrated confidences each round *predicts* what certifying now would cost (:func:`.certify.plan`).
When the prediction has not improved for ``patience`` rounds, the newest labeler is frozen and *certified* on a
fresh sample drawn at random from the unreviewed items (:func:`.certify.certify_in_looks`): the largest set of
its most confident labels that holds at most ``(1 - target) * n`` wrong ones at the confidence ``level`` is
accepted, and people label the rest. *Effort* is the share of items a person touched; *dataset accuracy* the
share of final labels that are right. The stopping round is chosen without looking at the certification
sample, so the guarantee needs no correction for the rounds tried.

Baselines on the same items: active learning stopped by an oracle the moment the dataset is accurate enough
(all of the model's labels accepted), the same with random batches, and LLM-only routing (random batches
calibrate and certify the LLM).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .active import select_batch, uncertainty
from .audited import AuditedLabeler, audited, main_score
from .candidates import Candidate, candidates, choose, features, fitted
from .certify import certify_in_looks, plan
from .combine import combine
from .outcome import Labels, Point, SimulationConfig, SimulationResult

__all__ = ["Labels", "Point", "SimulationConfig", "SimulationResult", "simulate"]

LOOKS = 2  # looks at the certification sample; the confidence budget is split evenly between them
MIN_COVERAGE = 0.5  # a round's plan is a candidate to stop at only once it would accept this share of the rest


def simulate(data: Labels, config: SimulationConfig, strategy: str = "flywheel") -> SimulationResult:
    """Replay the loop (``strategy``: ``flywheel``: the small model, the LLM and their combination, active batches;
    ``llm_only``: the LLM alone, random batches; ``random``: the small model on random batches, for the oracle
    baseline, found by bisection: :func:`random_oracle`) and certify each target once."""
    if strategy == "random":
        return random_oracle(data, config)
    return _Run(data, config, strategy).go()


def random_oracle(data: Labels, config: SimulationConfig) -> SimulationResult:
    """Random batches stopped by an oracle: for each target, the fewest reviewed items (whole batches, drawn in
    one random order) after which accepting every label of the small model trained on them makes the dataset
    accurate enough. Found by bisection over the batches (accuracy grows with the labels, up to noise), so a
    large set costs a handful of trainings instead of one per batch. Nothing is certified: every item without
    an oracle is by hand."""
    n = len(data.gold)
    order = np.random.default_rng(config.seed).permutation(n)
    sizes = sorted({*range(config.batch, n, config.batch), n})
    reached: dict[int, float] = {}
    choices: list[dict[str, Any]] = []

    def accuracy(size: int) -> float:
        if size not in reached:
            train, rest = order[:size], order[size:]
            reached[size] = 1.0
            if len(rest) and len(np.unique(data.gold[train])) >= 2:
                picked = choose(
                    {k: v[train] for k, v in data.vectors.items()},
                    data.gold[train],
                    candidates(list(data.vectors), config.strengths),
                    config.folds,
                    config.seed,
                )
                choices.append({"reviewed": size, "chosen": picked.best.name, "scores": picked.scores})
                x = features(data.vectors, picked.best.embedders)
                model = fitted(picked.best.strength, x[train], data.gold[train])
                reached[size] = float((size + np.sum(model.predict(x[rest]) == data.gold[rest])) / n)
            elif len(rest):
                reached[size] = size / n
        return reached[size]

    oracle: dict[float, dict[str, float]] = {}
    for target in config.targets:
        low, high = 0, len(sizes) - 1  # the first size that reaches the target is in sizes[low..high]
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if accuracy(sizes[middle]) >= target else (middle + 1, high)
        oracle[target] = {"effort": sizes[low] / n, "dataset_accuracy": accuracy(sizes[low])}
    points = [Point(0, 0, target, 0, 0, None, 1.0, 1.0) for target in config.targets]
    return SimulationResult(
        n, len(np.unique(data.gold)), data.has_llm, "random", points, {}, [], oracle, {"choices": choices}
    )


class _Run:
    def __init__(self, data: Labels, config: SimulationConfig, strategy: str):
        self.data, self.config, self.strategy = data, config, strategy
        self.n = len(data.gold)
        self.rng = np.random.default_rng(config.seed)
        self.reviewed = np.zeros(self.n, dtype=bool)
        self.audited = np.zeros(self.n, dtype=bool)
        self.alpha = 1.0 - config.level
        self.choice: Candidate | None = None
        self.chosen_at = 0
        self.choices: list[dict[str, Any]] = []
        self.audits: np.ndarray = np.zeros(0, dtype=int)
        self.best: dict[float, dict[str, Any]] = {}
        self.points: dict[float, Point] = {}
        self.oracle: dict[float, dict[str, float]] = {}
        self.rounds: list[dict[str, Any]] = []
        self.curves: dict[str, list[tuple[float, float]]] = {}

    def go(self) -> SimulationResult:
        uncertain: np.ndarray | None = None
        for round_ in range(1, self.config.max_rounds + 1):
            batch = self._next_batch(uncertain)
            if len(batch) == 0:
                break
            self.reviewed[batch] = True
            labelers = self._labelers()
            if not labelers:
                continue
            uncertain = self._round(round_, labelers)
            if len(self.points) == len(self.config.targets) and len(self.oracle) == len(self.config.targets):
                break
        for target in self.config.targets:  # nothing left to review: everything is by hand
            self.points.setdefault(target, self._by_hand(target))
        return SimulationResult(
            self.n,
            len(np.unique(self.data.gold)),
            self.data.has_llm,
            self.strategy,
            [self.points[t] for t in self.config.targets],
            self.curves,
            self.rounds,
            self.oracle,
            {"choices": self.choices},
        )

    # -- one round -----------------------------------------------------------------------------------

    def _round(self, round_: int, labelers: list[AuditedLabeler]) -> np.ndarray:
        open_ = np.flatnonzero(~self.reviewed)
        trace: dict[str, Any] = {"round": round_, "reviewed": int(self.reviewed.sum())}
        lead = labelers[0]
        for target in self.config.targets:
            budget = (1.0 - target) * self.n
            options = [
                (plan(1.0 - one.confidence[self._order(one, open_)], budget, self.alpha / LOOKS), one)
                for one in labelers
            ]
            planned, labeler = min(options, key=lambda option: option[0].effort)
            predicted = (self.reviewed.sum() + planned.effort) / self.n
            trace[f"predicted {target:g}"] = round(float(predicted), 4)
            trace[f"labeler {target:g}"] = labeler.name
            if target == self.config.targets[0]:
                lead = labeler
            self._oracle(target, labeler, open_)
            if target in self.points:
                continue
            trace[f"expected errors {target:g}"] = round(planned.expected_errors, 1)
            if not planned.k or planned.expected_errors * labeler.caution > budget:
                continue  # not even the planned set is likely to fit the budget yet
            if planned.k < MIN_COVERAGE * len(open_):
                continue  # the model still leaves most items to people: a flat start, not the bottom of the curve
            best = self.best.get(target)
            if best is None or predicted < best["predicted"] - 0.5 / self.n:
                self.best[target] = {"predicted": predicted, "labeler": labeler, "round": round_, "waited": 0}
            else:
                best["waited"] += 1
            best = self.best[target]
            if best["waited"] >= self.config.patience or self.reviewed.mean() >= best["predicted"]:
                self.points[target] = self._certify(target, round_, labeler)
        self.rounds.append(trace)
        disagree = None
        named = {labeler.name: labeler for labeler in labelers}
        if "small model" in named and "LLM" in named:
            disagree = (named["small model"].labels != named["LLM"].labels).astype(float)
        return uncertainty(lead.confidence, disagree)

    def _order(self, labeler: AuditedLabeler, items: np.ndarray) -> np.ndarray:
        """``items`` by the labeler's own score, highest first (calibration keeps that order, but ties its blocks)."""
        return items[np.lexsort((-main_score(labeler.raw)[items], -labeler.confidence[items]))]

    def _oracle(self, target: float, labeler: AuditedLabeler, open_: np.ndarray) -> None:
        """Active learning stopped by someone who knows the truth: every label of the labeler accepted."""
        if target in self.oracle:
            return
        right = int((labeler.labels[open_] == self.data.gold[open_]).sum())
        accuracy = (self.reviewed.sum() + right) / self.n
        if accuracy >= target:
            self.oracle[target] = {"effort": float(self.reviewed.mean()), "dataset_accuracy": float(accuracy)}

    def _certify(self, target: float, round_: int, newest: AuditedLabeler) -> Point:
        """Freeze a labeler — the best round's or the newest (which learned from the most reviews), whichever
        plans cheaper on the items left — and certify it on a fresh random sample of the unreviewed items: a
        first look at the planned sample, and, when that does not reach the planned set, a second look after as
        many draws again (each look at half the confidence budget, so the two keep ``level`` together)."""
        open_ = np.flatnonzero(~self.reviewed)
        budget = (1.0 - target) * self.n
        alpha = self.alpha / LOOKS
        options = []
        for labeler in (self.best[target]["labeler"], newest):
            order = self._order(labeler, open_)
            options.append((plan(1.0 - labeler.confidence[order], budget, alpha), labeler, order))
        planned, labeler, order = min(options, key=lambda option: option[0].effort)
        if planned.k == 0:
            return self._by_hand(target, round_)
        rng = np.random.default_rng([self.config.seed, int(target * 1000), round_])
        wrong = labeler.labels[order] != self.data.gold[order]
        result, positions = certify_in_looks(planned, len(order), budget, alpha, rng, lambda drawn: wrong[drawn], LOOKS)
        accepted = np.setdiff1d(np.arange(result.accepted), positions)
        right = int((~wrong[accepted]).sum())
        if target == self.config.targets[0]:
            self.curves = self._coverage(labeler, order)
        taken = len(accepted)
        return Point(
            round_,
            int(self.reviewed.sum()),
            target,
            taken,
            int(labeler.by_small[order][accepted].sum()),
            right / taken if taken else None,
            (self.n - taken) / self.n,
            (self.n - taken + right) / self.n,
            len(positions),
            labeler.name,
            float((self.reviewed.sum() + planned.effort) / self.n),
            result.upper_bound,
        )

    def _by_hand(self, target: float, round_: int = 0) -> Point:
        return Point(round_, int(self.reviewed.sum()), target, 0, 0, None, 1.0, 1.0)

    def _coverage(self, labeler: AuditedLabeler, order: np.ndarray) -> dict[str, list[tuple[float, float]]]:
        if len(order) == 0:
            return {}
        hits = np.cumsum(labeler.labels[order] == self.data.gold[order])
        steps = np.unique(np.linspace(max(1, len(order) // 50), len(order), num=min(50, len(order))).astype(int))
        return {labeler.name: [(float(k / len(order)), float(hits[k - 1] / k)) for k in steps]}

    # -- batches --------------------------------------------------------------------------------------

    def _next_batch(self, uncertain: np.ndarray | None) -> np.ndarray:
        """The first batch and, for random strategies, every batch: drawn at random. Later: an ``audit`` share
        at random, the rest by uncertainty x diversity. Random draws are judged by the labelers as they stand
        before the draws train them (:meth:`_judge`)."""
        open_ = np.flatnonzero(~self.reviewed)
        size = min(self.config.batch, len(open_))
        if size == 0:
            return open_
        if uncertain is None or self.strategy == "llm_only":
            batch = self.rng.choice(open_, size=size, replace=False)
            share = 0.5 if uncertain is None else self.config.audit  # the first batch: half trains, half audits
            self._judge(batch[: max(1, round(size * share))])
            return batch
        audit = self.rng.choice(open_, size=max(1, round(size * self.config.audit)), replace=False)
        self._judge(audit)
        rest = np.setdiff1d(open_, audit)
        chosen = select_batch(
            self.data.primary, uncertain, rest, np.flatnonzero(self.reviewed), size - len(audit), widen=2
        )
        return np.concatenate([audit, np.asarray(chosen, dtype=int)])

    def _judge(self, drawn: np.ndarray) -> None:
        """Hold random draws out: the small model never trains on them, and every labeler is calibrated there."""
        self.audited[drawn] = True

    # -- labelers -------------------------------------------------------------------------------------

    def _labelers(self) -> list[AuditedLabeler]:
        """Each labeler's labels everywhere, with confidences calibrated on the held-out audit items: the small
        model never trains on them, so its answers there are like its answers on the items nobody reviewed (not
        quite: they were drawn from earlier pools, before active learning took the hardest items out). These
        estimates only steer when to certify and how much to draw; the certification sample alone decides what
        is accepted."""
        train = np.flatnonzero(self.reviewed & ~self.audited)
        self.audits = np.flatnonzero(self.reviewed & self.audited)
        found: list[AuditedLabeler] = []
        if self.strategy != "llm_only" and len(np.unique(self.data.gold[train])) >= 2 and len(train) >= 10:
            classes, probabilities = self._small_model(train)
            found.append(
                self._calibrated(
                    "small model",
                    classes[probabilities.argmax(axis=1)],
                    probabilities.max(axis=1),
                    np.ones(self.n, dtype=bool),
                )
            )
            if self.data.has_llm and self.strategy == "flywheel":
                llm_label, llm_conf = self.data.llm()
                both = combine(classes, probabilities, llm_label, llm_conf, self.audits, self.data.gold)
                found.append(
                    self._calibrated(
                        "LLM + small model",
                        both.labels,
                        both.confidence,
                        ~both.from_llm,
                        (both.audit_labels, both.audit_confidence),
                    )
                )
        if self.data.has_llm:
            llm_label, llm_conf = self.data.llm()
            found.append(self._calibrated("LLM", llm_label, llm_conf, np.zeros(self.n, dtype=bool)))
        return [labeler for labeler in found if labeler.calibrated]

    def _small_model(self, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities everywhere from the chosen candidate, trained on ``train``."""
        vectors, gold = self.data.vectors, self.data.gold[train]
        if self.choice is None or len(train) >= self.config.reselect * self.chosen_at:
            options = candidates(list(vectors), self.config.strengths)
            picked = choose(
                {k: v[train] for k, v in vectors.items()}, gold, options, self.config.folds, self.config.seed
            )
            self.choice, self.chosen_at = picked.best, len(train)
            self.choices.append({"reviewed": len(train), "chosen": picked.best.name, "scores": picked.scores})
        x = features(vectors, self.choice.embedders)
        model = fitted(self.choice.strength, x[train], gold)
        return model.classes_, model.predict_proba(x)

    def _calibrated(
        self,
        name: str,
        labels: np.ndarray,
        raw: np.ndarray,
        by_small: np.ndarray,
        at_audits: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> AuditedLabeler:
        return audited(name, labels, raw, by_small, self.audits, self.data.gold, at_audits)
