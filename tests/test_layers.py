"""The import graph of ``src/nnport``, read with ``ast``: no cycles.

Every import counts, at module level and inside functions alike.  nnport imports most things
lazily (torch, TensorFlow, the targets: a command pays only for what it uses), so the
function-level imports are where the dependencies are; a cycle through them is still two
modules that each need the other, and a reader following imports goes round in it.  Imports
under ``if TYPE_CHECKING:`` do not run and are left out.

An import names one module: ``from .x import y`` depends on ``x`` (or on ``x.y`` when that is a
module), not on the packages above it, whose ``__init__`` Python runs first but whose names
the importer does not use.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``root/package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node that can run (not under ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports."""
    mods = _modules(root, package)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    left = ".".join(base + ([node.module] if node.module else []))
                else:
                    left = node.module or ""
                targets = [f"{left}.{a.name}" if f"{left}.{a.name}" in mods else left
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # import a.b.c of a module: the deepest one we have
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> ... -> a) for each strongly connected component with more than one
    module."""
    return [_one_cycle(graph, set(c)) for c in tangles(graph)]


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative): the modules that reach each other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def _one_cycle(graph, comp: set[str]) -> list[str]:
    """A shortest way round from the component's first module back to itself."""
    first = min(comp)
    prev = {first: None}
    frontier = [first]
    while frontier:
        nxt_frontier = []
        for m in frontier:
            for n in sorted(graph[m] & comp):
                if n == first:
                    path = [m]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return [first, *reversed(path[:-1]), first] if len(path) > 1 else \
                        [first, m, first] if m != first else [first, first]
                if n not in prev:
                    prev[n] = m
                    nxt_frontier.append(n)
        frontier = nxt_frontier
    return sorted(comp)


def test_nnport_has_no_import_cycles():
    graph = import_graph(SRC, "nnport")
    found = cycles(graph)
    assert not found, "import cycles in src/nnport:\n" + "\n".join(
        "  " + " -> ".join(c) for c in found)


GROUND = {"nnport.errors", "nnport.dtypes", "nnport.limits", "nnport.progress", "nnport.irutil",
          "nnport.registry", "nnport.formats", "nnport.skeleton", "nnport.wire_save", "nnport.output",
          "nnport._version"}


def test_the_ground_floor_imports_nothing_above_it():
    g = import_graph(SRC, "nnport")
    above = {m: sorted(g[m] - GROUND) for m in GROUND if g[m] - GROUND}
    assert not above, f"ground-floor modules importing from above: {above}"


def test_the_graph_sees_the_imports_that_matter():
    """The reader resolves relative, ``from . import submodule`` and function-level imports
    (else the test above would pass by reading nothing)."""
    g = import_graph(SRC, "nnport")
    assert "nnport.errors" in g["nnport.io"]  # from .errors import InputError
    assert "nnport.io" in g["nnport.convert"]  # module level
    assert "nnport.torch_emit" in g["nnport.convert"]  # inside generate_torch()
    assert "nnport.progress" in g["nnport.cli"]  # from . import progress, inside main()


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "def f():\n    from .high import g\n    return g\n",
        "pkg/mid.py": "from . import low\n",
        "pkg/high.py": "from .mid import low as _\n\ndef g():\n    pass\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/leaf.py": "from ..low import f\n",
    })
    found = cycles(import_graph(root, "pkg"))
    assert found == [["pkg.high", "pkg.mid", "pkg.low", "pkg.high"]]


def test_type_checking_imports_and_a_tree_are_no_cycle(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "from .a import x\n",
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import y\n"
                    "x = 1\n",
        "pkg/b.py": "import pkg.a\ny = pkg.a.x\n",
    })
    assert cycles(import_graph(root, "pkg")) == []
