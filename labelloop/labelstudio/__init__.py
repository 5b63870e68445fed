"""Label Studio as a review front end: export tasks with predictions, import its annotations, sync.

Each output field becomes one control named as the field: an enum (and a classify label, an
intent, a rating) a single-choice ``Choices``, an array of enum values (multilabel) a multiple-choice
``Choices``, an integer or number a ``Number``, a string a ``TextArea``, and the mentions of spans
and intent_slots tasks a ``Labels`` whose results are ``labels`` regions (start, end, text, label);
a nullable field left empty is null. Values map back and forth exactly, and an imported answer must
satisfy the task's JSON Schema. A task carries its item's id in ``data.labelloop_id``.

The package: :mod:`.config` (fields, the labeling config, conversions of answers), :mod:`.tasks`
(JSON export and import) and :mod:`.sync` (the server, through the SDK).
"""

from __future__ import annotations

from .config import LabelStudioError, labeling_config
from .sync import SyncResult, sync, token_from_env
from .tasks import ImportResult, LabelStudioExport, export_tasks, import_export

__all__ = [
    "ImportResult",
    "LabelStudioError",
    "LabelStudioExport",
    "SyncResult",
    "export_tasks",
    "import_export",
    "labeling_config",
    "sync",
    "token_from_env",
]
