"""What the docs list, the code has, and the other way round.

- Every setting of ``ProducerSettings`` (docs/producer.md), ``WorkerSettings``
  (docs/cli.md) and ``TelemetrySettings`` (docs/observability.md) has a row in its
  page's table, with the code's default; no row names a setting that does not exist.
- The fake provider's scenario options: docs/testing.md's table and the process's
  ``--help`` list exactly ``OPTIONS``; each documented example parses, and every field
  of ``Scenario`` is set by one of them (a new knob cannot stay undocumented).
- docs/reliability.md has a test named for every row of its property table, and
  cites no file the repository does not hold.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from rawtap.consumer import TelemetrySettings
from rawtap.shared import ProducerSettings, WorkerSettings
from rawtap.tools.fake_provider import Scenario, parse_scenario
from rawtap.tools.fake_provider._scenario import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Defaults computed at run time, and how the docs write them.
COMPUTED = {
    "consumer": "`hostname-pid`",
    "spill_dir": "`$TMPDIR/rawtap-spill-<uid>`",
    "service": "`OTEL_SERVICE_NAME`",
    "providers": "all",
    "read_shards": "all",
    "retention": "unset",
    "max_record_bytes": "8 MiB",
    "redact_names": "none",
}


def _table(page: str, heading: str) -> dict[str, str]:
    """The settings table under ``heading``: setting name -> default cell."""
    text = (DOCS / page).read_text()
    start = text.index(heading)
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([A-Za-z_]+)`", cells[0]):
            rows[name.lower().removeprefix("rawtap_")] = cells[1]
    assert rows, f"no settings table under {heading!r} in {page}"
    return rows


def _documented(value: Any) -> set[str]:
    """The ways a default may be written in a table cell."""
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    if isinstance(value, int | float):
        forms = {str(value), f"{value:g}", f"`{value}`", f"`{value:g}`"}
        if isinstance(value, float) and value.is_integer():
            forms |= {str(int(value)), f"`{int(value)}`"}
        return forms
    return {f"`{value}`"}


def _split(cell: str, count: int) -> list[str]:
    parts = [p.strip() for p in cell.split(",")]
    return parts if len(parts) == count else [cell] * count


@pytest.mark.parametrize(
    ("cls", "page", "heading"),
    [
        (ProducerSettings, "producer.md", "## Settings"),
        (WorkerSettings, "cli.md", "## Worker settings"),
        (TelemetrySettings, "observability.md", "| `RAWTAP_TELEMETRY` |"),
    ],
)
def test_every_setting_is_documented_with_its_default(
    cls: type[BaseSettings], page: str, heading: str
) -> None:
    if heading.startswith("|"):  # a table without a heading of its own: start at the header
        text = (DOCS / page).read_text()
        heading = text[: text.index(heading)].rsplit("| --- |", 1)[0].rsplit("\n", 2)[-2]
    rows = _table(page, heading)
    fields = cls.model_fields
    assert set(rows) == set(fields), (
        f"{page}: undocumented {sorted(set(fields) - set(rows))}, "
        f"not settings {sorted(set(rows) - set(fields))}"
    )
    cells: dict[str, list[str]] = {}
    for name in fields:
        cells.setdefault(rows[name], []).append(name)
    for cell, names in cells.items():
        for name, part in zip(names, _split(cell, len(names)), strict=True):
            if name in COMPUTED:
                assert part == COMPUTED[name], (name, part)
                continue
            default = fields[name].get_default(call_default_factory=True)
            assert part in _documented(default), f"{page}: {name} default {default!r}, doc {part}"


def test_the_default_check_is_not_vacuous() -> None:
    assert "64" not in _documented(32.0)
    assert "`false`" not in _documented(True)
    assert _split("2.0, 2.0", 2) == ["2.0", "2.0"]


def _testing_table() -> list[tuple[str, str, str]]:
    text = (DOCS / "testing.md").read_text()
    section = text[text.index("### Fake provider scenarios") :]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            syntax, example, meaning = (c.strip() for c in line.strip().strip("|").split("|"))
            rows.append((syntax.strip("`"), example.strip("`"), meaning))
    return rows


def test_fake_provider_scenarios_are_documented_exactly() -> None:
    assert _testing_table() == [(o.syntax, o.example, o.meaning) for o in OPTIONS]
    result = subprocess.run(
        [sys.executable, "-m", "rawtap.tools.fake_provider", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    flat = " ".join(result.stdout.split())
    for option in OPTIONS:
        assert option.syntax in flat
        assert option.example in flat
        assert " ".join(option.meaning.split()) in flat


def test_every_scenario_knob_is_set_by_a_documented_option() -> None:
    default = Scenario()
    touched: set[str] = set()
    for option in OPTIONS:
        scenario = parse_scenario(option.example)
        for field in dataclasses.fields(Scenario):
            if getattr(scenario, field.name) != getattr(default, field.name):
                touched.add(field.name)
    knobs = {f.name for f in dataclasses.fields(Scenario)} - {"name"}
    assert knobs <= touched, f"no documented option sets {sorted(knobs - touched)}"


def _test_functions() -> list[str]:
    """The name of every test function under tests/."""
    return [
        name
        for p in sorted((ROOT / "tests").rglob("test_*.py"))
        for name in re.findall(r"^(?:async )?def (test_\w+)", p.read_text(), flags=re.MULTILINE)
    ]


def test_reliability_table_names_a_test_for_every_property() -> None:
    text = (DOCS / "reliability.md").read_text()
    functions = _test_functions()
    rows = re.findall(r"^\| (\d*) ?\|[^|]*\| (.*?) \|", text, flags=re.MULTILINE)
    assert {int(n) for n, _ in rows if n} == set(range(1, 25))
    for number, cell in rows:  # continuation rows (``| | |``) too
        assert "—" not in cell, f"property {number} has no test"
        for name in re.findall(r"`(test_[a-z0-9_]+)", cell):
            matches = [f for f in functions if f.startswith(name)]
            assert len(matches) == 1, f"property {number}: {name} names {matches}, not one test"
    for cited in re.findall(r"`([A-Z]+\.md)`", text):
        assert (ROOT / cited).exists() or (DOCS / cited).exists(), f"cites {cited}, not here"


def test_reliability_property_tests_have_distinct_numbers() -> None:
    """``test_p<nn><letter>_`` tags are unique, so a table row cites one test unambiguously."""
    tags = [m[1] for f in _test_functions() if (m := re.match(r"test_(p\d\d[a-z]?)_", f))]
    assert tags, "no property tests found"
    repeated = sorted({t for t in tags if tags.count(t) > 1})
    assert not repeated, f"tests share a property tag: {repeated}"
