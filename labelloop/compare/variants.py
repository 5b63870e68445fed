"""The variants ``labelloop compare`` labels gold with: the project's task as it is, another spec file, or the
project's task with named overrides.

A variant is written ``current``, ``PATH.yaml`` (named after the file), or ``NAME:key=value,key=value`` with
dotted keys of ``labelloop.yaml`` (``strict:review.threshold=0.9``, ``warm:model.temperature=0.3``,
``qwen14:model.model=Qwen2.5-14B-Instruct,model.base_url=http://gpu2:8000/v1``, ``terse:instruction=Label it.``);
values are read as YAML scalars. An override that makes the spec invalid fails naming the variant and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ..spec import ModelSettings, TaskSpec, load_spec, parse_spec

_PAIRS = re.compile(r",(?=\s*[A-Za-z_][\w.]*=)")  # a comma that starts the next key=value
_NAME = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True)
class Variant:
    name: str
    spec: TaskSpec
    settings: ModelSettings


def parse_variants(
    texts: list[str], spec_text: str, spec_path: str, model_overrides: dict[str, Any] | None = None
) -> list[Variant]:
    """The variants ``texts`` name, on the project's spec (its YAML ``spec_text`` read from ``spec_path``);
    ``model_overrides`` (the command's --model, --base-url, …) apply to every variant but what it sets itself."""
    if len(texts) < 2:
        raise SpecError("compare", None, "variants", "name at least two variants to compare")
    variants = [_variant(text, spec_text, spec_path, model_overrides or {}) for text in texts]
    names = [v.name for v in variants]
    if len(set(names)) < len(names):
        raise SpecError("compare", None, "variants", f"two variants share a name: {', '.join(names)}")
    schema = parse_spec(spec_text, spec_path).output_schema()
    for variant in variants:
        if variant.spec.output_schema() != schema:
            raise SpecError("compare", None, variant.name, "answers in another shape than the project's task")
    return variants


def _variant(text: str, spec_text: str, spec_path: str, overrides: dict[str, Any]) -> Variant:
    if text == "current":
        return _with_settings("current", parse_spec(spec_text, spec_path), overrides, set())
    name, colon, pairs = text.partition(":")
    if not colon:
        path = Path(text)
        if path.suffix not in (".yaml", ".yml"):
            raise SpecError("compare", None, text, "a variant is current, a spec file (.yaml) or NAME:key=value,…")
        return _with_settings(path.stem, load_spec(path), overrides, set())
    if not _NAME.match(name):
        raise SpecError("compare", None, text, "a variant's name is letters, digits, '_', '-' or '.'")
    data = yaml.safe_load(spec_text)
    keys = set()
    for pair in _PAIRS.split(pairs):
        key, equals, value = pair.strip().partition("=")
        if not equals or not key:
            raise SpecError("compare", None, text, f"{pair!r} is not key=value")
        _set(data, key, yaml.safe_load(value) if value.strip() else "")
        keys.add(key)
    spec = parse_spec(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), f"variant {name}")
    return _with_settings(name, spec, overrides, keys)


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise SpecError("compare", None, key, f"{part} is not a mapping")
    data[last] = value


def _with_settings(name: str, spec: TaskSpec, overrides: dict[str, Any], keys: set[str]) -> Variant:
    own = {k: v for k, v in overrides.items() if f"model.{k}" not in keys}
    return Variant(name, spec, spec.model.with_overrides(own))
