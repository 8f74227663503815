"""No import cycle in the Python sources: python/cpuformer/*.py and bench/*.py.

Every ``import`` and ``from ... import`` statement counts as an edge, at module
level or inside a function: a lazy import that closes a ring is still a cycle
(it only moves the failure from import time to call time, and it hides the
layering). Relative imports are resolved against the importing file's package;
``from pkg import name`` is an edge to the submodule ``pkg.name`` when that is
a source file, to the package's ``__init__`` otherwise (the name is one of its
attributes), and to nothing when ``__init__`` itself imports ``name`` as a
submodule without a source file (the compiled ``_core``). Importing a submodule
also imports its parent packages; those implicit edges are not counted, as the
parent is always initialised first.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "python" / "cpuformer").is_dir():  # a source checkout
    PACKAGES = {"cpuformer": ROOT / "python" / "cpuformer", "bench": ROOT / "bench"}
else:  # tests run against an installed wheel: the same sources, bench shipped as cpuformer/bench
    import cpuformer

    _installed = Path(cpuformer.__file__).resolve().parent
    PACKAGES = {"cpuformer": _installed, "bench": _installed / "bench"}


def module_files(packages):
    """package name -> directory  =>  module name -> source file."""
    files = {}
    for pkg, directory in packages.items():
        for path in sorted(Path(directory).glob("*.py")):
            files[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return files


def _is_package(name, files):
    return files.get(name) is not None and files[name].name == "__init__.py"


def _compiled_submodules(pkg, files):
    """Names the package's __init__ imports as its own submodules (``from . import x``) with no source file."""
    init = files.get(pkg)
    if init is None or init.name != "__init__.py":
        return set()
    names = set()
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"), str(init))):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 and node.module is None or
                                                 node.level == 0 and node.module == pkg):
            names.update(a.name for a in node.names if f"{pkg}.{a.name}" not in files)
    return names


def import_graph(files):
    """module -> {imported module: [line numbers]}, over the modules in ``files`` only."""
    compiled = {m: _compiled_submodules(m, files) for m in files if _is_package(m, files)}
    graph = {m: {} for m in files}

    def add(src, dst, line):
        if dst in files and dst != src or dst == src and not _is_package(src, files):
            lines = graph[src].setdefault(dst, [])
            if line not in lines:
                lines.append(line)

    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    known = [".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in files]
                    if known:
                        add(mod, known[0], node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in files:
                        add(mod, sub, node.lineno)
                    elif alias.name in compiled.get(target, ()):
                        continue  # a compiled submodule: imports nothing of ours
                    elif target in files:
                        add(mod, target, node.lineno)
    return graph


def components(graph):
    """The strongly connected components with a cycle in them (sets of modules)."""
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(set(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [scc for scc in sccs if len(scc) > 1 or min(scc) in graph[min(scc)]]


def find_cycles(graph):
    """One cycle per strongly connected component that has one: lists of modules, first == last."""
    cycles = []
    for scc in components(graph):
        start = min(scc)
        # Shortest path back to `start` inside the component (breadth first).
        prev, frontier, found = {start: None}, [start], None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w == start:
                        found = v
                        break
                    if w in scc and w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [start]
        v = found
        while v is not None and v != start:
            path.append(v)
            v = prev[v]
        cycles.append([start, *reversed(path[1:]), start])
    return cycles


def describe(cycle, graph, files):
    """The cycle, then every import between modules of its component (file and lines)."""
    scc = next(c for c in components(graph) if cycle[0] in c)
    hops = []
    for a in sorted(scc):
        rel = files[a].relative_to(ROOT) if files[a].is_relative_to(ROOT) else files[a]
        for b in sorted(set(graph[a]) & scc):
            hops.append(f"    {a} -> {b}  ({rel}, line {', '.join(map(str, graph[a][b]))})")
    return " -> ".join(cycle) + "\n" + "\n".join(hops)


def test_no_import_cycle_in_the_python_tree():
    files = module_files(PACKAGES)
    graph = import_graph(files)
    # The graph really is the tree's (a parser that saw nothing would pass vacuously).
    assert {"cpuformer", "cpuformer.nn", "cpuformer.models", "bench", "bench.harness"} <= set(files)
    assert "cpuformer.models" in graph["cpuformer"] and "bench.harness" in graph["bench"]
    assert sum(len(edges) for edges in graph.values()) > 40
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c, graph, files) for c in cycles)


def _write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("case, expected", [
    # Module-level relative imports closing a ring through a facade.
    ({"__init__.py": "from . import a\n", "a.py": "from .b import f\n", "b.py": "from .a import g\n"},
     ["pkg.a", "pkg.b", "pkg.a"]),
    # A lazy import inside a function still closes the ring.
    ({"__init__.py": "", "a.py": "from . import b\n", "b.py": "def f():\n    from .a import g\n    return g\n"},
     ["pkg.a", "pkg.b", "pkg.a"]),
    # Importing an attribute of the package's __init__ is an edge to __init__.
    ({"__init__.py": "from .a import f\n__version__ = '1'\n",
      "a.py": "def f():\n    from . import __version__\n    return __version__\n"},
     ["pkg", "pkg.a", "pkg"]),
    # Absolute imports, `import pkg.x as y`, and a module importing itself.
    ({"__init__.py": "", "a.py": "import pkg.b as b\n", "b.py": "def f():\n    import pkg\n    from pkg import a\n"},
     ["pkg.a", "pkg.b", "pkg.a"]),
    ({"__init__.py": "", "a.py": "def f():\n    from . import a\n"}, ["pkg.a", "pkg.a"]),
])
def test_checker_finds_cycles(tmp_path, case, expected):
    _write(tmp_path / "pkg", case)
    files = module_files({"pkg": tmp_path / "pkg"})
    graph = import_graph(files)
    assert find_cycles(graph) == [expected]


def test_checker_accepts_one_way_imports(tmp_path):
    """Facade re-exports, a compiled submodule, parent packages and outside packages make no cycle."""
    _write(tmp_path / "pkg", {
        "__init__.py": "from . import _core\nfrom .facade import *\n__version__ = '1'\n",
        "facade.py": "from ._base import Base\nfrom ._impl import Impl\n",
        "_base.py": "import os\nfrom . import _core\nfrom ._version import v\n",
        "_impl.py": "import numpy\nfrom ._base import Base\ndef f():\n    from pkg import _core\n",
        "_version.py": "v = 1\n",
    })
    files = module_files({"pkg": tmp_path / "pkg"})
    graph = import_graph(files)
    assert graph["pkg._impl"] == {"pkg._base": [2]} and graph["pkg._base"] == {"pkg._version": [3]}
    assert find_cycles(graph) == []
