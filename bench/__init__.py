"""rawtap's benchmark suite: every figure of issue 7 against a baseline measured in the same run.

Run it with ``python3 -m uv run python -m bench`` (see ``bench/README.md``).
Each module owns one benchmark and exposes ``run(redis_url, quick, postgres_url)``
returning :class:`bench._common.Figure` rows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_MODULES = (
    "hot_path", "tap", "drain", "worker", "schema", "e2e", "memory", "scaling", "telemetry",
    "console",
)  # fmt: skip


def _lazy(module: str) -> Callable[..., Any]:
    def run(**kwargs: Any) -> Any:
        return importlib.import_module(f"bench.{module}").run(**kwargs)

    return run


BENCHMARKS: dict[str, Callable[..., Any]] = {m: _lazy(m) for m in _MODULES}
"""Benchmark name → its ``run`` function, in the order the suite runs them."""
