"""The source tree's seams, checked by walking its import graph.

Four rules over every module of the distributions' ``src`` trees (tests may
reach into privates on purpose; the product may not):

- no import cycle at load time (imports under ``TYPE_CHECKING`` or inside a
  function do not run at load time and do not count);
- a private module (``_x``) is imported only from inside the package that holds it;
- no module imports another module's private name;
- no module reads a private member of an object from elsewhere (``obj._x``
  where ``_x`` is not defined in the reading module), except the SDK
  internals the tap must touch, listed below with why.

Each rule has a planted-offence test, so a rule that stopped finding its
offence fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for p in ROOT.glob("*/src") if (p / "rawtap").is_dir())

# Private members of other libraries the product reads, each for a reason that
# docs/capture.md states; a contract test per SDK guards each (tests/integration).
FOREIGN_PRIVATE_ALLOWED = {
    ("producer/src/rawtap/producer/_tap/_instrument.py", "_client"),  # the SDK's httpx client
    ("producer/src/rawtap/producer/_tap/_instrument.py", "_api_client"),  # genai's client
    ("producer/src/rawtap/producer/_tap/_instrument.py", "_async_httpx_client"),  # genai .aio
    ("producer/src/rawtap/producer/_tap/_instrument.py", "_httpx_client"),  # genai sync
    ("producer/src/rawtap/producer/_tap/_instrument.py", "_transport"),  # httpx's transport
    ("producer/src/rawtap/producer/_tap/_instrument.py", "_mounts"),  # httpx's proxy mounts
    ("shared/src/rawtap/shared/_decode.py", "_Decompress"),  # typeshed's name for zlib's type
}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@dataclass
class Module:
    """One source module: its dotted name, file, and what it imports."""

    name: str
    path: Path
    is_package: bool
    load_imports: set[str] = field(default_factory=set)  # run at import time
    all_imports: list[tuple[int, str, list[str]]] = field(default_factory=list)

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _dotted(src: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _load_time_nodes(tree: ast.Module) -> Iterator[ast.stmt]:
    """Top-level statements that run at import (not under ``if TYPE_CHECKING``)."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from node.orelse
            continue
        if isinstance(node, ast.Try | ast.If):
            yield from ast.walk(node)  # type: ignore[misc]
            continue
        yield node


def scan(sources: list[Path]) -> dict[str, Module]:
    """Every module under ``sources`` with its imports, resolved to module names."""
    modules: dict[str, Module] = {}
    trees: dict[str, ast.Module] = {}
    for src in sources:
        for path in sorted(src.rglob("*.py")):
            name, is_package = _dotted(src, path)
            modules[name] = Module(name, path, is_package)
            trees[name] = ast.parse(path.read_text())
    for name, module in modules.items():
        tree = trees[name]
        load = {id(n) for n in _load_time_nodes(tree)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom | ast.Import):
                continue
            targets = _targets(node, module, modules)
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
                module.all_imports.append((node.lineno, _base(node, module), names))
            if id(node) in load:
                module.load_imports.update(t for t in targets if t in modules)
    return modules


def _base(node: ast.ImportFrom, module: Module) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _targets(
    node: ast.ImportFrom | ast.Import, module: Module, modules: dict[str, Module]
) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    base = _base(node, module)
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def load_edges(modules: dict[str, Module]) -> dict[str, set[str]]:
    """What loading each module loads first: its imports and their packages.

    A module's own packages are already loading when it runs, so an import of
    one of them (or through one) is no edge.
    """
    edges: dict[str, set[str]] = {}
    for name, module in modules.items():
        own = set(_ancestors(name)) | ({name} if module.is_package else set())
        out = set()
        for target in module.load_imports:
            for step in [*_ancestors(target), target]:
                if step in modules and step not in own and step != name:
                    out.add(step)
        edges[name] = out
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_module_imports(modules: dict[str, Module]) -> list[str]:
    """Imports of a private module from outside the package that holds it."""
    found = []
    for module in modules.values():
        for lineno, base, names in module.all_imports:
            if not base.startswith("rawtap."):
                continue  # other libraries' privates are the next rule's business
            for target in [base, *(f"{base}.{n}" for n in names if f"{base}.{n}" in modules)]:
                parts = target.split(".")
                private = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
                if private is None:
                    continue
                holder = ".".join(parts[:private])
                inside = module.name == holder or module.name.startswith(holder + ".")
                if not inside:
                    found.append(f"{_rel(module.path)}:{lineno} {target}")
    return found


def private_name_imports(modules: dict[str, Module]) -> list[str]:
    """``from m import _x`` where ``_x`` is a name, not a submodule."""
    return [
        f"{_rel(module.path)}:{lineno} {base}.{n}"
        for module in modules.values()
        for lineno, base, names in module.all_imports
        for n in names
        if n.startswith("_") and not n.startswith("__") and f"{base}.{n}" not in modules
    ]


def _defined_privates(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, dataclass field names
    return {n for n in names if n.startswith("_")}


def foreign_private_reads(paths: list[Path]) -> list[str]:
    """``obj._x`` where ``_x`` is defined nowhere in the reading module."""
    found: list[str] = []
    for path in paths:
        tree = ast.parse(path.read_text())
        own = _defined_privates(tree)
        rel = _rel(path)
        found.extend(
            f"{rel}:{node.lineno} .{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in own
            and (rel, node.attr) not in FOREIGN_PRIVATE_ALLOWED
        )
    return found


# -- the rules over the real tree ------------------------------------------------------


def test_the_tree_has_every_distribution_and_its_edges() -> None:
    names = {p.parent.name for p in SOURCES}
    assert {"shared", "producer", "consumer"} <= names
    edges = load_edges(scan(SOURCES))
    assert "rawtap.consumer.store" in edges["rawtap.consumer.worker._worker"]
    assert "rawtap.shared" in edges["rawtap.producer._recorder"]


def test_no_import_cycle_at_load_time() -> None:
    assert cycles(load_edges(scan(SOURCES))) == []


def test_private_modules_are_imported_only_inside_their_package() -> None:
    assert private_module_imports(scan(SOURCES)) == []


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_name_imports(scan(SOURCES)) == []


def test_no_module_reads_private_members_of_anothers_objects() -> None:
    paths = [p for src in SOURCES for p in sorted(src.rglob("*.py"))]
    assert foreign_private_reads(paths) == []


# -- each rule finds its planted offence ----------------------------------------------


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for rel, text in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_a_planted_cycle_is_found(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "rawtap/x/__init__.py": "",
            "rawtap/x/_a.py": "from rawtap.x._b import B\nA = 1\n",
            "rawtap/x/_b.py": "from rawtap.x._a import A\nB = 2\n",
            "rawtap/x/_c.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from rawtap.x._a import A\n",
        },
    )
    assert cycles(load_edges(scan([src]))) == [["rawtap.x._a", "rawtap.x._b"]]


def test_an_import_inside_a_function_or_type_checking_is_no_cycle(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "rawtap/x/__init__.py": "from rawtap.x._a import A\n",
            "rawtap/x/_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from rawtap.x._b import B\nA = 1\n",
            "rawtap/x/_b.py": "from rawtap.x._a import A\ndef f():\n    from rawtap.x import _a\n",
        },
    )
    assert cycles(load_edges(scan([src]))) == []


def test_a_planted_private_module_import_is_found(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "rawtap/x/__init__.py": "",
            "rawtap/x/store/__init__.py": "from rawtap.x.store._sql import Q\n",
            "rawtap/x/store/_sql.py": "Q = 1\n",
            "rawtap/x/_cli.py": "from rawtap.x.store._sql import Q\nfrom rawtap.x.store import Q\n",
        },
    )
    found = private_module_imports(scan([src]))
    assert len(found) == 1
    assert found[0].endswith("_cli.py:1 rawtap.x.store._sql")


def test_a_planted_private_name_import_is_found(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "rawtap/x/__init__.py": "",
            "rawtap/x/_a.py": "_hidden = 1\n",
            "rawtap/x/_b.py": "from rawtap.x._a import _hidden\nfrom rawtap.x import _a\n",
        },
    )
    found = private_name_imports(scan([src]))
    assert len(found) == 1
    assert found[0].endswith("_b.py:1 rawtap.x._a._hidden")


def test_a_planted_foreign_private_read_is_found(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "rawtap/x/_a.py": "class A:\n    def __init__(self):\n        self._mine = 1\n"
            "    def f(self, other):\n        return self._mine + other._theirs\n",
        },
    )
    found = foreign_private_reads(sorted(src.rglob("*.py")))
    assert len(found) == 1
    assert found[0].endswith("_a.py:5 ._theirs")
