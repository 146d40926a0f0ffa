"""Writing results: ``<name>.json`` (every figure, machine, versions, date) and ``<name>.md``."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench._common import Figure

_PACKAGES = (
    "redis", "hiredis", "orjson", "pydantic", "psycopg", "faststream", "opentelemetry-sdk",
    "openai", "httpx2",
)  # fmt: skip


def machine() -> dict[str, Any]:
    """CPU, cores, OS, Python, library versions, and the load when the run started."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["sqlite"] = sqlite3.sqlite_version
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "load_at_start": round(load, 2),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _num(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit in ("µs", "ms") and abs(value) < 100:
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _goal(fig: Figure) -> str:
    parts = []
    if fig.goal is not None:
        parts.append(f"{'≥' if fig.higher else '≤'} {_num(fig.goal, fig.unit)} {fig.unit}")
    if fig.ratio_goal is not None:
        parts.append(f"ratio ≥ {fig.ratio_goal:g}")
    return ", ".join(parts) or "–"


def _met(fig: Figure) -> str:
    met = fig.met
    return "–" if met is None else ("**yes**" if met else "**no**")


def table(figures: list[Figure]) -> str:
    """The Markdown table of ``figures``."""
    lines = [
        "| benchmark | figure | rawtap | baseline (same run) | ratio (median, min–max) | "
        "goal | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for f in figures:
        base = (
            "–"
            if f.baseline is None
            else f"{_num(f.baseline, f.unit)} {f.unit} ({f.baseline_name})"
        )
        ratio = "–"
        if f.ratio is not None:
            ratio = f"{f.ratio:.2f}×"
            if f.rounds > 1 and f.ratio_min is not None and f.ratio_max is not None:
                ratio += f" ({f.ratio_min:.2f}–{f.ratio_max:.2f}, n={f.rounds})"
        name = f.name + (f" — {f.note}" if f.note else "")
        lines.append(
            f"| {f.bench} | {name} | {_num(f.subject, f.unit)} {f.unit} | {base} | {ratio} | "
            f"{_goal(f)} | {_met(f)} |"
        )
    return "\n".join(lines)


def write(
    out: Path, name: str, figures: list[Figure], info: dict[str, Any], errors: dict[str, str]
) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    md_path = out / f"{name}.md"
    doc = {"machine": info, "figures": [f.as_dict() for f in figures], "errors": errors}
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    v = info["versions"]
    lines = [
        "# rawtap benchmarks",
        "",
        f"- date: {info['date']}; mode: {info['mode']}; wall time {info['seconds']:.0f} s",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['os']}, "
        f"load {info['load_at_start']} at start (shared machine: compare ratios, not absolutes)",
        f"- Python {info['python']}; Redis {info.get('redis', '?')} (private server), "
        f"PostgreSQL {info.get('postgres', '?')}, SQLite {v['sqlite']}; "
        + ", ".join(f"{k} {val}" for k, val in v.items() if k != "sqlite" and val),
        "- ratio: higher is better for rawtap (baseline time / rawtap time, or rawtap rate / "
        "baseline rate), median over interleaved rounds with min–max",
        "",
        table(figures),
        "",
    ]
    if errors:
        lines += ["## Benchmarks that failed", ""]
        lines += [f"- {k}: {v}" for k, v in errors.items()]
        lines.append("")
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return json_path, md_path
