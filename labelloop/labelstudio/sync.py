"""Sync with a Label Studio server through its SDK (an extra): push the items waiting for review as tasks
of a project, then pull the project's annotations. The token comes from an environment variable and is
never stored; the SDK's HTTP and connection errors become one-line :class:`LabelStudioError` messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from .. import labelers
from ..spec import TaskSpec
from ..store import Store
from .config import LabelStudioError, fields_of, labeling_config
from .tasks import as_task, import_annotations, item_id_of

_PUSH_BATCH = 500


@dataclass
class SyncResult:
    """Tasks pushed now, tasks the project already had, annotations pulled, and the pull's error lines."""

    pushed: int
    already_pushed: int
    pulled: int
    errors: list[str]


def token_from_env(variable: str) -> str:
    """The Label Studio token held by the environment variable ``variable`` (never stored)."""
    token = os.environ.get(variable, "").strip()
    if not token:
        raise LabelStudioError(f"environment variable {variable} holds no Label Studio token")
    return token


def sync(
    store: Store, spec: TaskSpec, url: str, token: str, project_title: str, labeler: str = labelers.LLM
) -> SyncResult:
    """Push the items waiting for review, with their predictions, to the Label Studio project titled
    ``project_title`` (created if needed), then pull its annotations. Nothing is pushed or imported twice."""
    url, fields = url.rstrip("/"), fields_of(spec)
    client_class, api_error = _sdk()
    with _server_errors(url, api_error):
        client = client_class(base_url=url, api_key=token)
        project_id = _project(client, project_title, labeling_config(spec))
        tasks = [task.model_dump(mode="json") for task in client.tasks.list(project=project_id, fields="all")]
        known = store.pushed_items(url, project_id)
        # tasks of our items the store does not know: pushed by a sync that died before recording them
        ours = store.existing_ids(i for i in map(item_id_of, tasks) if isinstance(i, str))
        adopted = [(item_id_of(t), t["id"]) for t in tasks if item_id_of(t) in ours and item_id_of(t) not in known]
        store.record_pushed(url, project_id, adopted)
        rows = store.unpushed_review_items(labeler, url, project_id)
        for start in range(0, len(rows), _PUSH_BATCH):
            batch = rows[start : start + _PUSH_BATCH]
            created = (
                client.projects.import_tasks(
                    project_id, request=[as_task(r, fields) for r in batch], return_task_ids=True
                ).task_ids
                or []
            )
            if len(created) != len(batch):
                raise LabelStudioError(f"{url}: Label Studio created {len(created)} tasks for {len(batch)} items")
            store.record_pushed(url, project_id, zip((r["id"] for r in batch), created, strict=True))
        emails = _emails(client, tasks, api_error)
    pulled = import_annotations(store, spec, tasks, labeler, emails)
    return SyncResult(len(rows), len(known) + len(adopted), pulled.imported, pulled.errors)


def _sdk() -> tuple[Any, type[Exception]]:
    """The SDK's client class and HTTP error class (imported on use: the SDK is an extra)."""
    try:
        from label_studio_sdk import LabelStudio
        from label_studio_sdk.core.api_error import ApiError
    except ImportError:
        raise LabelStudioError("sync needs the Label Studio SDK: pip install 'labelloop[labelstudio]'") from None
    return LabelStudio, ApiError


def _project(client: Any, title: str, config: str) -> int:
    """The id of the project titled ``title`` (the oldest of several), created or updated to ``config``."""
    found = sorted(p.id for p in client.projects.list(title=title) if p.title == title)
    if not found:
        return client.projects.create(title=title, label_config=config).id
    if client.projects.get(found[0]).label_config != config:
        client.projects.update(found[0], label_config=config)
    return found[0]


def _emails(client: Any, tasks: list[dict[str, Any]], api_error: type[Exception]) -> dict[int, str]:
    """The emails of the users who wrote the annotations (one the token may not see stays an id)."""
    emails = {}
    users = [a.get("completed_by") for t in tasks for a in t.get("annotations") or []]
    for user_id in {u for u in users if isinstance(u, int)}:
        with suppress(api_error):
            emails[user_id] = client.users.get(user_id).email
    return emails


@contextmanager
def _server_errors(url: str, api_error: type[Exception]) -> Iterator[None]:
    """Turn the SDK's HTTP and connection errors into one-line LabelStudioErrors."""
    import httpx  # the SDK's HTTP client

    try:
        yield
    except api_error as exc:
        body, status = getattr(exc, "body", None), getattr(exc, "status_code", None)
        detail = (body.get("detail") or body) if isinstance(body, dict) else body
        hint = " (use a personal access token: Label Studio > Account & Settings)" if status == 401 else ""
        raise LabelStudioError(f"{url}: Label Studio answered {status}: {detail}{hint}") from None
    except httpx.HTTPError as exc:
        raise LabelStudioError(f"{url}: cannot reach Label Studio ({exc})") from None
