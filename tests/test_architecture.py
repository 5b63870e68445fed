"""The shape of the package: no import circle, and no file that has grown into two."""

from __future__ import annotations

import ast
from pathlib import Path

import labelloop

PACKAGE = Path(labelloop.__file__).parent
MAX_LINES = 350
LONG_ON_PURPOSE = "Long on purpose:"  # a module docstring that says why a file is longer


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement except those under ``if TYPE_CHECKING:`` (they never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped]


def import_graph() -> dict[str, set[str]]:
    """Module -> the labelloop modules it imports. Importing a submodule also imports the packages above it,
    except those above the importer itself (they are being imported already), and the top-level package."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if _is_package(name, modules) else name.rsplit(".", 1)[0]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = package.split(".")
                base = base[:len(base) - node.level + 1] if node.level else []
                source = ".".join([*base, *(node.module.split(".") if node.module else [])])
                targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                while target and target != "labelloop" and not name.startswith(target + "."):
                    if target != name:  # a package above the importer is being imported already
                        graph[name].add(target)
                    target = target.rsplit(".", 1)[0]
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, if there is any (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert "labelloop.engine" in graph["labelloop.project"]  # the walk sees imports at all
    assert "labelloop.store" in graph["labelloop.gate"]
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_file_over_350_lines_without_a_reason_at_its_top():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and LONG_ON_PURPOSE not in doc:
            long[str(path.relative_to(PACKAGE))] = lines
    assert long == {}


def test_sql_lives_only_in_the_store():
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "store":
            continue
        text = path.read_text(encoding="utf-8")
        if ".execute(" in text or ".executemany(" in text:
            outside.append(str(path.relative_to(PACKAGE)))
    assert outside == []
