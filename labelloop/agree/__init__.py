"""Agreement: the statistics (:mod:`.metrics`), a project's agreement report (:mod:`.agreement`) and its
heatmap (:mod:`.heatmap`); :func:`agree` does what ``labelloop agree`` does."""

from __future__ import annotations

from pathlib import Path

from .._actor import actor_or_default
from ..annotations import read_gold
from ..spec import TaskSpec
from ..store import Store
from .agreement import AgreementReport, AnnotatorAgreement, BatchAgreement, FacetAgreement, agreement_report, rework
from .heatmap import write_heatmap
from .metrics import (
    binarize,
    cohen_kappa,
    fleiss_kappa,
    from_records,
    krippendorff_alpha,
    majority,
    pairwise,
    per_label_agreement,
)

__all__ = [
    "AgreementReport",
    "AnnotatorAgreement",
    "BatchAgreement",
    "FacetAgreement",
    "agree",
    "agreement_report",
    "binarize",
    "cohen_kappa",
    "fleiss_kappa",
    "from_records",
    "krippendorff_alpha",
    "majority",
    "pairwise",
    "per_label_agreement",
    "rework",
]


def agree(
    store: Store,
    spec: TaskSpec,
    *,
    models: bool = True,
    gold: str | Path | None = None,
    min_pair_items: int = 5,
    apply_rework: bool = False,
    heatmap: str | Path | None = None,
    actor: str | None = None,
) -> AgreementReport:
    """Agreement among people and models. ``gold`` (a file of item and answer) adds reference answers,
    ``heatmap`` writes the pairwise table as a .png or .html, and ``apply_rework`` sends the batches under
    the match threshold back to the queue (recorded in the audit log as ``actor``, default the OS user)."""
    reference = read_gold(spec, gold) if gold else None
    report = agreement_report(store, spec, models=models, gold=reference, min_pair_items=min_pair_items)
    if heatmap:
        write_heatmap(report, heatmap)
    if apply_rework:
        rework(store, report, actor_or_default(actor))
    return report
