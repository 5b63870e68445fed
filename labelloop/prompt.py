"""Prompt rendering: the shared part first (byte-identical for every item), the item last.

Keeping the prefix identical lets vLLM/SGLang prefix caching reuse it across items; its hash,
with the item template and the output schema, is the prompt version recorded everywhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from .errors import InputError, SpecError
from .spec import TaskSpec
from .store import Item

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class Prompt:
    """A task's rendered prompt: shared messages plus a per-item template."""

    shared: tuple[dict[str, str], ...]
    item_template_source: str
    output_schema: dict[str, Any] | None
    version: str
    _template: jinja2.Template

    def item_messages(self, item: Item, examples: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
        """The messages that differ per item: chosen examples as (text, answer text) turns, then the item."""
        turns: list[dict[str, str]] = []
        for text, answer in examples:
            turns.append({"role": "user", "content": render_item(self._template, Item("example", text, {}, ""))})
            turns.append({"role": "assistant", "content": answer})
        return [*turns, {"role": "user", "content": render_item(self._template, item)}]

    def messages(self, item: Item, examples: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
        """The full message list for one item."""
        return [*self.shared, *self.item_messages(item, examples)]


def build_prompt(spec: TaskSpec) -> Prompt:
    """Render the shared part of ``spec``'s prompt and compile its item template."""
    try:
        template = _ENV.from_string(spec.prompt.item_template)
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError("labelloop.yaml", None, "prompt.item_template", f"invalid Jinja2: {exc.message}") from None
    schema = spec.guided_schema()
    shared: list[dict[str, str]] = [{"role": "system", "content": system_message(spec, schema)}]
    for example in spec.examples:
        example_item = Item(id="example", text=example.input, fields={}, content_hash="")
        shared.append({"role": "user", "content": render_item(template, example_item)})
        shared.append({"role": "assistant", "content": spec.answer_text(example.output)})
    version = prompt_version(shared, spec.prompt.item_template, schema)
    return Prompt(tuple(shared), spec.prompt.item_template, schema, version, template)


def system_message(spec: TaskSpec, schema: dict[str, Any] | None) -> str:
    """The system message: role, task, answer format, guidelines; nothing item-specific."""
    parts = [spec.prompt.role.strip(), f"Task: {spec.instruction.strip()}", spec.output_description()]
    if spec.guidelines.strip():
        parts.append("Guidelines:\n" + spec.guidelines.strip())
    if schema is not None:
        parts.append("JSON Schema of the answer:\n" + json.dumps(schema, ensure_ascii=False, sort_keys=True))
    return "\n\n".join(parts)


def prompt_version(shared: list[dict[str, str]], item_template: str, schema: dict[str, Any] | None) -> str:
    """A short hash of everything in the prompt that is not the item."""
    payload = json.dumps(
        {"shared": shared, "item_template": item_template, "schema": schema}, ensure_ascii=False, sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def render_item(template: jinja2.Template, item: Item) -> str:
    """Render the item template; the item's fields are available by name and as ``fields``."""
    try:
        return template.render({**item.fields, "fields": item.fields, "text": item.text, "id": item.id})
    except jinja2.UndefinedError as exc:
        raise InputError(
            item.source_file or "item",
            item.source_line,
            f"prompt.item_template uses a value the item lacks ({exc.message})",
        ) from None
