"""The benchmark suite's smoke run: ``python -m bench --quick`` must keep working.

No timing is asserted (these machines are shared); what is asserted is that
every benchmark ran, measured its subject against a baseline of the same run,
produced a ratio, and that the results were written as JSON and Markdown.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.redis
@pytest.mark.timeout(600)
def test_quick_suite_measures_every_figure_against_a_baseline(
    tmp_path: Path, postgres_url: str
) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench import BENCHMARKS
    finally:
        sys.path.remove(str(ROOT))

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--postgres",
         postgres_url],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=580,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    doc = json.loads((tmp_path / "quick.json").read_text())
    assert doc["errors"] == {}
    assert doc["machine"]["mode"] == "quick"
    assert doc["machine"]["cores"]
    assert doc["machine"]["versions"]["redis"]
    figures = doc["figures"]
    assert {f["bench"] for f in figures} == set(BENCHMARKS)
    for f in figures:
        assert f["baseline_name"], f
        assert f["baseline"] is not None, f
        assert f["baseline"] > 0, f
        assert f["ratio"] is not None, f
        assert math.isfinite(f["ratio"]), f
        assert f["ratio"] > 0, f
        assert f["subject"] > 0, f
        if f["goal"] is not None or f["ratio_goal"] is not None:
            assert f["met"] in (True, False), f
    names = " ".join(f["name"] for f in figures)
    for needed in ("awaited XADD", "OTel", "FastStream", "PostgreSQL", "SQLite", "p99",
                   "highest steady rate", "Redis down", "worker RSS", "batch", "200 B",
                   "200,000 B", "worker(s)", "per stream chunk"):  # fmt: skip
        assert needed in names, f"no figure about {needed!r}"
    # No record lost on the way in the runs that count them.
    hot = next(f for f in figures if f["name"].startswith("Recorder.record() p50 vs awaited"))
    assert hot["extra"]["refused"] == 0
    assert hot["extra"]["calls"] >= 20_000

    table = (tmp_path / "quick.md").read_text()
    assert "| benchmark | figure | rawtap | baseline (same run) |" in table
    assert all(f"| {b} |" in table for b in BENCHMARKS)
