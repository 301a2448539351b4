"""The shape of src/taxonomist, read from its source with ``ast``: module size, which packages
may import which, and no import cycles.

Every ``import x`` and ``from x import y`` counts, wherever it is: at module level, inside a
function (a lazy import still couples the two modules) and under ``if TYPE_CHECKING:``.
``from package import name`` is an import of ``package.name`` when that is one of our modules,
else of ``package`` itself. The implicit import of a parent package (``import a.b.c`` first runs
``a/b/__init__.py``) is not counted: every submodule would then close a cycle with an
``__init__`` that re-exports it. Each failure lists ``file:line`` and the import it found.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src"
MAX_MODULE_LINES = 600
FRONT_ENDS = ("taxonomist.cli", "taxonomist.api", "taxonomist.ui")
ROUTERS = "taxonomist.api.routers"


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the module that holds it."""

    importer: str  # dotted module name, e.g. "taxonomist.features.text_map"
    imported: str  # dotted name of what it imports, e.g. "taxonomist.features.text"
    path: Path
    line: int

    def __str__(self) -> str:
        return (
            f"{self.path.relative_to(ROOT)}:{self.line} ({self.importer}) imports {self.imported}"
        )


def module_name(path: Path) -> str:
    """``src/taxonomist/data/explore.py`` -> ``taxonomist.features.text_map``; a package's
    ``__init__.py`` is the package."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, Path]:
    """Every Python module under src/taxonomist, by dotted name."""
    return {module_name(p): p for p in sorted((SRC / "taxonomist").rglob("*.py"))}


def _resolve_relative(importer: str, path: Path, module: str | None, level: int) -> str:
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_in(name: str, path: Path) -> list[Import]:
    """Every import in one module, in source order."""
    known = modules()
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = (
                _resolve_relative(name, path, node.module, node.level)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in known else source
                found.append(Import(name, target, path, node.lineno))
    return sorted(set(found), key=lambda i: (i.line, i.imported))  # one per name and line


@functools.cache
def all_imports() -> tuple[Import, ...]:
    """Every import of every module under src/taxonomist."""
    return tuple(i for name, path in modules().items() for i in imports_in(name, path))


def within(name: str, package: str) -> bool:
    """Whether dotted ``name`` is ``package`` or inside it."""
    return name == package or name.startswith(package + ".")


def fail_with(what: str, offenders: Iterable[object]) -> None:
    """Fail the test with one line per offender (no traceback: the list is the message)."""
    lines = [str(o) for o in offenders]
    if lines:
        pytest.fail(f"{len(lines)} {what}:\n  " + "\n  ".join(lines), pytrace=False)


def shortest_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The fewest-hop path ``start -> ... -> goal`` (``start`` may equal ``goal``: a cycle)."""
    queue, came_from = [start], {start: ""}
    for node in queue:
        for nxt in sorted(graph.get(node, ())):
            if nxt == goal:
                path = [goal, node]
                while came_from[path[-1]]:
                    path.append(came_from[path[-1]])
                return path[::-1]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return None


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components; those with more than one node are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def describe_path(path: list[str], evidence: dict[tuple[str, str], Import]) -> str:
    """``a -> b -> c`` with the import that makes each hop."""
    hops = "\n    ".join(str(evidence[(a, b)]) for a, b in itertools.pairwise(path))
    return " -> ".join(path) + "\n    " + hops


# -- size --------------------------------------------------------------------------------------
def test_no_module_is_longer_than_600_lines() -> None:
    too_long = []
    for path in modules().values():
        n_lines = len(path.read_text().splitlines())
        if n_lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {n_lines} lines")
    fail_with(f"modules over {MAX_MODULE_LINES} lines", too_long)


# -- layering ----------------------------------------------------------------------------------
def test_registry_does_not_import_models() -> None:
    """The registry stores and loads what training made; it knows nothing of how."""
    bad = [
        i
        for i in all_imports()
        if within(i.importer, "taxonomist.registry") and within(i.imported, "taxonomist.models")
    ]
    fail_with("imports of taxonomist.models in taxonomist.registry", bad)


def test_data_does_not_import_features() -> None:
    """Loading, profiling and validating a table come before (and without) features."""
    bad = [
        i
        for i in all_imports()
        if within(i.importer, "taxonomist.data") and within(i.imported, "taxonomist.features")
    ]
    fail_with("imports of taxonomist.features in taxonomist.data", bad)


def test_no_router_imports_another_router() -> None:
    """One router per resource: what two routers share belongs below them (services, schemas,
    deps), not in one of them."""
    bad = [
        i
        for i in all_imports()
        if within(i.importer, ROUTERS)
        and i.importer != ROUTERS  # the package itself may gather them
        and within(i.imported, ROUTERS)
        and i.imported not in (ROUTERS, i.importer)
    ]
    fail_with("imports of one router module by another", bad)


def test_only_front_ends_import_the_front_ends() -> None:
    """The CLI, the API and the UI sit on top: the library never imports them (the UI reaching
    down to taxonomist.client is the allowed direction; tests are out of scope)."""
    bad = [
        i
        for i in all_imports()
        if not any(within(i.importer, f) for f in FRONT_ENDS)
        and any(within(i.imported, f) for f in FRONT_ENDS)
    ]
    fail_with("imports of a front-end (cli, api, ui) from outside them", bad)


# -- cycles ------------------------------------------------------------------------------------
def package_of(name: str) -> str:
    """The package a module counts towards: ``taxonomist.models.train`` -> ``taxonomist.models``;
    a top-level module (``taxonomist.cli``) and ``taxonomist`` itself stand for themselves."""
    return ".".join(name.split(".")[:2])


def test_no_cycle_between_models_and_registry() -> None:
    """At package level, through any packages in between: registry may be used by whatever
    trains, but nothing the registry imports may lead back to taxonomist.models."""
    graph: dict[str, set[str]] = {}
    evidence: dict[tuple[str, str], Import] = {}
    for i in all_imports():
        if not within(i.imported, "taxonomist"):
            continue
        a, b = package_of(i.importer), package_of(i.imported)
        if a != b:
            graph.setdefault(a, set()).add(b)
            evidence.setdefault((a, b), i)
    there = shortest_path(graph, "taxonomist.models", "taxonomist.registry")
    back = shortest_path(graph, "taxonomist.registry", "taxonomist.models")
    if there and back:
        fail_with(
            "paths that make taxonomist.models and taxonomist.registry a cycle",
            [describe_path(there, evidence), describe_path(back, evidence)],
        )


def test_no_import_cycle_inside_models() -> None:
    """Among the modules of taxonomist.models (its __init__ included), no module reaches
    itself through imports, lazy ones included."""
    graph: dict[str, set[str]] = {}
    evidence: dict[tuple[str, str], Import] = {}
    for i in all_imports():
        if within(i.importer, "taxonomist.models") and within(i.imported, "taxonomist.models"):
            if i.imported == i.importer:
                continue  # "from taxonomist.models import x" in its own __init__ is no cycle
            graph.setdefault(i.importer, set()).add(i.imported)
            evidence.setdefault((i.importer, i.imported), i)
    cycles = []
    for component in strongly_connected(graph):
        if len(component) > 1:
            start = min(component)
            cycle = shortest_path(graph, start, start)
            assert cycle is not None
            cycles.append(f"{sorted(component)}, e.g. " + describe_path(cycle, evidence))
    fail_with("import cycles inside taxonomist.models", cycles)


def test_the_import_scanner_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The checks above are only as good as the scanner: it must see an import in a function
    and under TYPE_CHECKING, and resolve ``from package import submodule``."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import taxonomist.config as cfg\n"
        "if TYPE_CHECKING:\n"
        "    from taxonomist.data.schema import Schema\n"
        "def f():\n"
        "    from taxonomist.models import train\n"
        "    from taxonomist.data import DOES_NOT_EXIST\n"
    )
    found = {(i.imported, i.line) for i in imports_in("taxonomist.sample", source)}
    assert found == {
        ("typing", 1),
        ("taxonomist.config", 2),
        ("taxonomist.data.schema", 4),
        ("taxonomist.models.train", 6),
        ("taxonomist.data", 7),
    }
