"""Architecture rules, checked on the import graph of ``core`` and ``apps`` built from the source.

The graph is read with :mod:`ast`, so nothing is imported. It has an edge from a module to each suite
module named by any of its import statements, wherever the statement is: at module level, in a
function (a lazy import) or under ``if TYPE_CHECKING:``. A lazy import that closes a loop is how the
cycles this test was written for stayed hidden, so it counts. ``import a.b`` and ``from a import b``
(``b`` a submodule) name ``a.b``; ``from a.b import c`` (``c`` not a module) names ``a.b``; relative
imports are resolved. Importing ``a.b`` also runs ``a/__init__.py``, but that is not an edge: a
package ``__init__`` that re-exports its submodules is not a cycle with them.

Rules:

* no import cycle among modules;
* ``core`` imports no app, and no app imports another app;
* no module under ``apps/`` imports torch, transformers, peft or faiss: model code lives in ``core``;
* importing :mod:`core.generation` (the worker, the errors) loads neither torch nor llama.cpp.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Container, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "apps")
ML_LIBRARIES = ("torch", "transformers", "peft", "faiss")

# Violations accepted for now, each worded exactly as the tests below word it (none since issue 13);
# an entry that no longer occurs fails test_known_exceptions_still_occur, so the list can only shrink.
KNOWN_EXCEPTIONS: frozenset[str] = frozenset()


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``packages``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a suite module (None: not a suite module)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def imported_names(module: str, path: Path, modules: Container[str] = ()) -> Iterator[str]:
    """Dotted names a module imports, from every import statement in it.

    Args:
        module: The module's dotted name (to resolve relative imports).
        path: Its source file.
        modules: Known module names: ``from a import b`` yields ``a.b`` when it is one, else ``a``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the suite modules it imports (see the module docs for what counts as an edge)."""
    modules = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {_known(name, modules) for name in imported_names(module, path, modules)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def ml_imports(root: Path = ROOT) -> dict[str, str]:
    """``"<app module> imports <library>"`` for every import of an ML library under ``apps/``."""
    found = {}
    for module, path in module_files(root, ("apps",)).items():
        for name in imported_names(module, path):
            library = name.split(".")[0]
            if library in ML_LIBRARIES:
                found[f"{module} imports {library}"] = f"{module} imports {library}"
    return found


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _cycle_path(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One cycle through the first member of a strongly connected component (breadth-first)."""
    start, inside = members[0], set(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & inside):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return members  # unreachable for a real component


def import_cycles(graph: dict[str, set[str]]) -> dict[str, str]:
    """Each cycle as ``"cycle: <sorted members>"`` -> a readable path ``a -> b -> a``."""
    cycles = {}
    for members in _strongly_connected(graph):
        if len(members) > 1 or members[0] in graph[members[0]]:
            cycles[f"cycle: {', '.join(members)}"] = " -> ".join(_cycle_path(graph, members))
    return cycles


def _app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "apps" and len(parts) > 1 else None


def _check(violations: dict[str, str], rule: str) -> None:
    """Fail on violations not in KNOWN_EXCEPTIONS; ``rule`` names the rule for the message."""
    unexpected = {key: detail for key, detail in violations.items() if key not in KNOWN_EXCEPTIONS}
    assert not unexpected, f"{rule}:\n" + "\n".join(f"  {detail}" for detail in sorted(unexpected.values()))


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_graph_reader_on_a_small_tree(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from pkg.front import Front\n",
        "pkg/front.py": "import os\nfrom pkg import back\nfrom . import types\n",
        "pkg/back.py": (
            "from typing import TYPE_CHECKING\nfrom .types import Settings\n"
            "if TYPE_CHECKING:\n    from pkg.sub import leaf\n"
        ),
        "pkg/types.py": "class Settings:\n    def lazy(self):\n        import pkg.sub.leaf\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/leaf.py": "from .. import types\nfrom ..types import Settings\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {
        "pkg": {"pkg.front"},
        "pkg.front": {"pkg.back", "pkg.types"},  # not "pkg": back is a submodule
        "pkg.back": {"pkg.types", "pkg.sub.leaf"},
        "pkg.types": {"pkg.sub.leaf"},
        "pkg.sub": set(),
        "pkg.sub.leaf": {"pkg.types"},
    }
    assert import_cycles(graph) == {
        "cycle: pkg.sub.leaf, pkg.types": "pkg.sub.leaf -> pkg.types -> pkg.sub.leaf"
    }


def test_no_import_cycles(graph) -> None:
    _check(import_cycles(graph), "import cycles (give shared names a module both sides import)")


def test_core_imports_no_app(graph) -> None:
    found = {
        f"{module} imports {target}": f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "core"
        for target in targets
        if target.split(".")[0] == "apps"
    }
    _check(found, "core must not import apps (apps plug in through entry points)")


def test_no_app_imports_another_app(graph) -> None:
    found = {
        f"{module} imports {target}": f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if _app_of(module) and _app_of(target) and _app_of(module) != _app_of(target)
    }
    _check(found, "an app must not import another app (shared code belongs in core)")


def test_apps_hold_no_model_code() -> None:
    _check(ml_imports(), f"apps must not import {', '.join(ML_LIBRARIES)} (model code lives in core)")


def test_known_exceptions_still_occur(graph) -> None:
    stale = sorted(KNOWN_EXCEPTIONS - set(import_cycles(graph)) - set(ml_imports()))
    assert not stale, f"fixed, so remove from KNOWN_EXCEPTIONS: {stale}"


def test_generation_package_loads_no_torch() -> None:
    # The worker and the errors are imported by the API and the chat page: they must stay light.
    code = "import sys, core.generation; print(sorted(m for m in ('torch', 'llama_cpp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
