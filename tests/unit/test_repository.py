"""The repository keeps its promises: README commands, CI, layout."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks]


def test_readme_starts_with_the_demo_then_the_test_command() -> None:
    demo, tests = _readme_commands()[:2]
    assert demo.endswith("uv run rawtap demo")
    assert "pytest" in tests
    assert demo.startswith("python3 -m pip install -q uv &&")
    assert tests.startswith("python3 -m pip install -q uv &&")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    tests = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
    assert any("mypy shared/src producer/src consumer/src" in line for line in ci)
    assert any("ruff check" in line for line in ci)


def test_namespace_package_has_no_init_in_any_member() -> None:
    for member in ("shared", "producer", "consumer"):
        assert not (ROOT / member / "src" / "rawtap" / "__init__.py").exists()
        assert (ROOT / member / "src" / "rawtap" / member / "__init__.py").exists()


def test_producer_depends_only_on_what_a_service_can_afford() -> None:
    meta = tomllib.loads((ROOT / "producer" / "pyproject.toml").read_text())
    names = {re.split(r"[<>=\[ ;]", d)[0] for d in meta["project"]["dependencies"]}
    assert names <= {"rawtap-shared", "redis", "orjson", "pydantic", "opentelemetry-api"}
