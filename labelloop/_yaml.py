"""YAML loading that remembers the line of every key, so errors can point at it."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import SpecError

Path_ = tuple[str | int, ...]


def load_with_lines(text: str, filename: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text; return the data and a map from key path to 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise SpecError(filename, line, "", f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(filename, None, "", f"invalid YAML: {exc}") from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines, filename)
    return data, lines


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], filename: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = path + (key_node.value,)
            if key_node.value in seen:  # PyYAML would silently keep the last one
                dotted = ".".join(str(p) for p in key)
                raise SpecError(filename, key_node.start_mark.line + 1, dotted, "duplicate key")
            seen.add(key_node.value)
            _walk(value_node, key, lines, filename)
            lines[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _walk(child, path + (index,), lines, filename)


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of the longest prefix of ``path`` that the YAML contains."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
