"""The exception tree. The library raises these; the CLI prints them as one line."""

from __future__ import annotations

from typing import Any


class LabelloopError(Exception):
    """Base class of every error labelloop raises on purpose."""


class SpecError(LabelloopError):
    """The task spec (YAML) is invalid; the message names the file, line and key."""

    def __init__(self, path: str, line: int | None, key: str, message: str):
        self.path, self.line, self.key = path, line, key
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class ProjectError(LabelloopError):
    """No project where one was expected, or a project that cannot be opened."""


class InputError(LabelloopError):
    """A bad input record: names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, message: str, field: str | None = None):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = f"{path}:{line}" if line is not None else path
        what = f"field '{field}': {message}" if field else message
        super().__init__(f"{where}: {what}")


class IdCollisionError(InputError):
    """An incoming item reuses an existing id with different content."""


class BackendError(LabelloopError):
    """A model call failed. ``retryable`` says whether trying again can succeed."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        body: str | None = None,
        endpoint: str | None = None,
    ):
        self.retryable, self.status, self.retry_after, self.body = retryable, status, retry_after, body
        self.endpoint = endpoint  # which server failed, when a model is served by several
        super().__init__(message)


class BackendUnavailable(BackendError):
    """The backend cannot be reached or loaded at all (no server, missing package or model)."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


class BudgetExhausted(LabelloopError):
    """A call or token budget was reached; the run stops dispatching new items."""


class MissingExtra(LabelloopError):
    """An optional part is not installed; the message names the extra and the command that installs it."""

    def __init__(self, what: str, extra: str, hint: str, detail: str = ""):
        self.what, self.extra, self.hint = what, extra, hint
        super().__init__(f"{what} needs the {extra} extra: {hint}" + (f" ({detail})" if detail else ""))


class Conflict(LabelloopError):
    """Someone answered the item since the reviewer loaded it (optimistic concurrency)."""

    def __init__(self, item_id: str, annotator: str | None, output: Any, at: str | None):
        self.item_id, self.annotator, self.output, self.at = item_id, annotator, output, at
        super().__init__(f"{item_id}: {annotator} answered first")
