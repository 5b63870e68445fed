"""The task spec: what to label and how, loaded from ``labelloop.yaml`` and validated up front.

``settings.py`` holds the settings blocks, ``base.py`` what every task shares, ``kinds.py`` the
kinds of task; this module parses YAML into them with errors that name the line and key.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Annotated, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .._yaml import line_of, load_with_lines
from ..errors import SpecError
from .base import TaskSpec, _LocatedError
from .document_kinds import CoherenceSpec, DocumentSpec, QaGenerateSpec, QaSpec, RetrievalSettings, WindowSettings
from .kinds import (
    ClassifySpec,
    ExtractSpec,
    GenerateSpec,
    IntentSlotsSpec,
    Level,
    MentionSpec,
    MultilabelSpec,
    RateSpec,
    SpansSpec,
)
from .settings import (
    DEFAULT_ROLE,
    ENV_PREFIX,
    AnnotationSettings,
    CleanSettings,
    DedupSettings,
    EmbeddingSettings,
    Example,
    InputSettings,
    Label,
    LearnSettings,
    ModelSettings,
    OverlapSettings,
    PiiSettings,
    PromptSettings,
    ReviewSettings,
    Rule,
)

__all__ = [
    "AnnotationSettings",
    "AnySpec",
    "CleanSettings",
    "DedupSettings",
    "EmbeddingSettings",
    "LearnSettings",
    "PiiSettings",
    "ClassifySpec",
    "CoherenceSpec",
    "DocumentSpec",
    "QaGenerateSpec",
    "QaSpec",
    "RetrievalSettings",
    "WindowSettings",
    "DEFAULT_ROLE",
    "ENV_PREFIX",
    "Example",
    "ExtractSpec",
    "GenerateSpec",
    "InputSettings",
    "IntentSlotsSpec",
    "KINDS",
    "Label",
    "Level",
    "MentionSpec",
    "ModelSettings",
    "MultilabelSpec",
    "OverlapSettings",
    "PromptSettings",
    "RateSpec",
    "ReviewSettings",
    "Rule",
    "SPEC_FILENAME",
    "SpansSpec",
    "TaskSpec",
    "load_spec",
    "parse_spec",
    "template_names",
    "template_text",
]

SPEC_FILENAME = "labelloop.yaml"


AnySpec = Annotated[
    Union[
        ClassifySpec,
        ExtractSpec,
        MultilabelSpec,
        SpansSpec,
        IntentSlotsSpec,
        RateSpec,
        GenerateSpec,
        QaSpec,
        QaGenerateSpec,
        CoherenceSpec,
    ],
    Field(discriminator="kind"),
]
_SPEC_ADAPTER: TypeAdapter[AnySpec] = TypeAdapter(AnySpec)
_SPEC_CLASSES: dict[str, type[TaskSpec]] = {
    "classify": ClassifySpec,
    "extract": ExtractSpec,
    "multilabel": MultilabelSpec,
    "spans": SpansSpec,
    "intent_slots": IntentSlotsSpec,
    "rate": RateSpec,
    "generate": GenerateSpec,
    "qa": QaSpec,
    "qa_generate": QaGenerateSpec,
    "coherence": CoherenceSpec,
}
KINDS = tuple(_SPEC_CLASSES)


def parse_spec(text: str, filename: str = SPEC_FILENAME) -> TaskSpec:
    """Parse and validate a task spec from YAML text; errors name the line and key."""
    data, lines = load_with_lines(text, filename)
    if not isinstance(data, dict):
        raise SpecError(filename, 1, "", "the task spec must be a YAML mapping")
    if data.get("kind") not in KINDS:
        line = line_of(lines, ("kind",)) or 1
        raise SpecError(filename, line, "kind", f"must be one of {', '.join(KINDS)} (got {data.get('kind')!r})")
    try:
        spec = _SPEC_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _spec_error(exc, lines, filename, _SPEC_CLASSES[data["kind"]]) from None
    if isinstance(spec, SpansSpec):
        _read_vocabularies(spec, Path(filename).parent, lines, filename)
    return spec


def _read_vocabularies(spec: SpansSpec, base: Path, lines: dict, filename: str) -> None:
    """Load each label's vocabulary file (relative to the spec's folder), one term per line."""
    for label, name in spec.vocabularies.items():
        path = base / name
        try:
            terms = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(
                filename,
                line_of(lines, ("vocabularies", label)),
                f"vocabularies.{label}",
                f"cannot read {path} ({exc.__class__.__name__})",
            ) from None
        spec.vocabulary_terms[label] = terms


def load_spec(path: str | Path) -> TaskSpec:
    """Read and validate a task spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), None, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), None, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_spec(text, str(path))


def _spec_error(exc: ValidationError, lines: dict, filename: str, spec_class: type[TaskSpec]) -> SpecError:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains the rest
    err = errors[0]
    loc = tuple(p for p in err["loc"] if p not in KINDS)  # drop the union tag
    message = err["msg"].removeprefix("Value error, ")
    located = err.get("ctx", {}).get("error")
    if isinstance(located, _LocatedError):
        loc = located.loc
    if loc and loc[0] == "json_schema":
        loc = ("schema",) + loc[1:]
    if err["type"] == "extra_forbidden":
        message += _did_you_mean(loc, spec_class)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    key = ".".join(str(p) for p in loc)
    return SpecError(filename, line_of(lines, loc), key, message + more)


def _did_you_mean(loc: tuple[str | int, ...], spec_class: type[TaskSpec]) -> str:
    """Suggest the allowed key closest to an unknown one."""
    model: type[BaseModel] | None = spec_class
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return ""
    names = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def template_names() -> list[str]:
    """Names of the bundled task templates."""
    folder = resources.files("labelloop") / "templates"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def template_text(name: str) -> str:
    """The YAML text of a bundled template (kept verbatim, comments included)."""
    if name not in template_names():
        raise SpecError(name, None, "", f"unknown template; choose one of {', '.join(template_names())}")
    return (resources.files("labelloop") / "templates" / f"{name}.yaml").read_text(encoding="utf-8")
