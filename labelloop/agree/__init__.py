"""Agreement: the statistics (:mod:`.metrics`) and a project's agreement report (:mod:`.report`)."""

from .metrics import (binarize, cohen_kappa, fleiss_kappa, from_records, krippendorff_alpha, majority, pairwise,
                      per_label_agreement)
from .report import (AgreementReport, AnnotatorAgreement, BatchAgreement, FacetAgreement, agreement_report,
                     rework)

__all__ = ["AgreementReport", "AnnotatorAgreement", "BatchAgreement", "FacetAgreement", "agreement_report",
           "binarize", "cohen_kappa", "fleiss_kappa", "from_records", "krippendorff_alpha", "majority", "pairwise",
           "per_label_agreement", "rework"]
