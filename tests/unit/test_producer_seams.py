"""The producer's and shared's seams stay one-way: no private names across modules, small modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "producer" / "src", ROOT / "shared" / "src"]
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for src in SOURCES for p in src.rglob("*.py"))


def _is_module(package: str, name: str) -> bool:
    """``name`` is a submodule (or subpackage) of ``package``, judged from the tree."""
    parts = package.split(".")
    for src in SOURCES:
        base = src.joinpath(*parts, name)
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return True
    return False


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rawtap."):
                assert node.module is not None
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not _is_module(node.module, alias.name)
                ]
    assert found == []


def test_nothing_outside_the_recorder_reads_its_private_members() -> None:
    reads = re.compile(r"\b(?:recorder|_recorder)\._[a-z]\w*")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _modules()
        if path.name != "_recorder.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert found == []


def test_modules_stay_small() -> None:
    """Every module of every distribution (producer, shared, consumer, tools), not only these."""
    every = [ROOT / name / "src" for name in ("shared", "producer", "consumer", "tools")]
    big = {
        str(p.relative_to(ROOT)): n
        for src in every
        for p in sorted(src.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}
