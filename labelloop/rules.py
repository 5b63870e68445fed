"""Rules and custom validators: the checks a spec names, loaded (and refused at their key) when the spec loads.

A rule is a Python expression over the output fields (``departure_city != arrival_city``), evaluated
safely by simpleeval in :mod:`labelloop.validate`; a custom validator is a function found by
entry-point name (group ``labelloop.validators``) or as ``module:function``.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Item

VALIDATOR_GROUP = "labelloop.validators"
Validator = Callable[[dict[str, Any], "Item"], "str | list[str] | None"]
ALLOWED_FUNCTIONS = {"len": len, "min": min, "max": max, "abs": abs, "str": str, "int": int, "float": float}
CONTEXT_NAMES = ("output", "item", "text")  # output["class"] reaches a field named like a keyword


def check_rule(expression: str, fields: list[str]) -> str | None:
    """Why a rule cannot be used (syntax, unknown names), or None when it is fine."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        return f"not a valid expression ({exc.msg})"
    known = set(fields) | set(CONTEXT_NAMES) | set(ALLOWED_FUNCTIONS) | {"None", "True", "False"}
    unknown = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - known)
    if unknown:
        return (
            f"unknown name {', '.join(unknown)}; use output fields, output, item, text"
            f" or {', '.join(ALLOWED_FUNCTIONS)}"
        )
    return None


@lru_cache(maxsize=64)
def load_validator(name: str) -> Validator:
    """A custom validator by entry-point name (group ``labelloop.validators``) or ``module:function``."""
    for entry in entry_points(group=VALIDATOR_GROUP):
        if entry.name == name:
            return entry.load()
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ValueError(f"validator {name!r}: not a registered name; use 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"validator {name!r} cannot be loaded ({exc})") from None
    if not callable(function):
        raise ValueError(f"validator {name!r} is not callable")
    return function
