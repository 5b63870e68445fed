"""labelloop: LLM pre-labeling with schema-forced output, review routing and a data flywheel.

The public API is what ``__all__`` names: :class:`Project` (a directory with its spec and store), the
stage functions it forwards to (:func:`ingest_file`, :func:`label`), the spec and settings types, the
backend seam and the error tree. Everything else is private to the package and may change.
"""

from .backends import Backend, CompletionRequest, CompletionResponse, available_backends, create_backend
from .engine import RunResult, label, label_async
from .errors import (
    BackendError,
    BackendUnavailable,
    BudgetExhausted,
    Conflict,
    IdCollisionError,
    InputError,
    LabelloopError,
    MissingExtra,
    ProjectError,
    SpecError,
)
from .export import ExportResult
from .ingest import IngestResult, ingest_file
from .job import LabelOptions
from .plan import Plan
from .project import Project
from .spec import ClassifySpec, ExtractSpec, ModelSettings, TaskSpec, load_spec, parse_spec
from .status import StatusSummary
from .store import Store

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "BudgetExhausted",
    "ClassifySpec",
    "CompletionRequest",
    "CompletionResponse",
    "Conflict",
    "ExportResult",
    "ExtractSpec",
    "IdCollisionError",
    "IngestResult",
    "InputError",
    "LabelOptions",
    "LabelloopError",
    "MissingExtra",
    "ModelSettings",
    "Plan",
    "Project",
    "ProjectError",
    "RunResult",
    "SpecError",
    "StatusSummary",
    "Store",
    "TaskSpec",
    "available_backends",
    "create_backend",
    "ingest_file",
    "label",
    "label_async",
    "load_spec",
    "parse_spec",
]
