"""Scaling curves: throughput vs batch size, record size and number of workers.

Every point is a ratio to the default point measured in the same round (batch
500, 2 KB records, one worker), rounds interleaved:

* **batch size** (``RAWTAP_BATCH_SIZE``): one worker into SQLite, 50 to 2000;
* **record size**, 200 B to 200 KB: one worker into SQLite, and the producer's
  drain (``record()`` N times, then ``flush()``), in records/s (MB/s in the note);
* **workers**: 1, 2 and 4 worker processes in one group, into SQLite and
  PostgreSQL (one SQLite file: its writers share one lock).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench._common import (
    BODY_BYTES,
    DETAILS,
    METADATA,
    EntryFactory,
    Figure,
    body_of_size,
    delete_keys,
    rate_figure,
)
from bench.worker import consume_rate


def _drain_rate(redis_url: str, size: int, n: int) -> float:
    from rawtap.producer import Recorder

    prefix = f"rawtap-bench-scale-{time.time_ns()}"
    body = body_of_size(size)
    with tempfile.TemporaryDirectory() as spill:
        recorder = Recorder(
            redis_url=redis_url, stream_prefix=prefix, spill_dir=spill, max_memory_mb=512,
        )  # fmt: skip
        try:
            recorder.record("openai", body, METADATA, "user-42", **DETAILS)
            recorder.flush(30)
            started = time.perf_counter()
            for _ in range(n):
                recorder.record("openai", body, METADATA, "user-42", **DETAILS)
            if not recorder.flush(120):
                raise RuntimeError("the recorder did not drain in 120 s")
            return n / (time.perf_counter() - started)
        finally:
            recorder.close()
            delete_keys(redis_url, prefix)


def _curve(
    points: list[Any], default: Any, measure: Callable[[Any], float], rounds: int
) -> dict[Any, list[float]]:
    out: dict[Any, list[float]] = {p: [] for p in points}
    for r in range(rounds):
        for p in points if r % 2 == 0 else list(reversed(points)):
            out[p].append(measure(p))
    assert default in out
    return out


def run(redis_url: str, quick: bool, postgres_url: str | None, **_: Any) -> list[Figure]:
    """The three curves; one figure per point."""
    n = 1_000 if quick else 20_000
    rounds = 1 if quick else 3
    figures: list[Figure] = []
    entries = EntryFactory(BODY_BYTES).make(n)

    batches = [100, 500] if quick else [50, 100, 500, 2000]
    curve = _curve(
        batches, 500,
        lambda b: consume_rate("rawtap", redis_url, "sqlite", None, entries, batch=b), rounds,
    )  # fmt: skip
    figures += [
        rate_figure("scaling", f"worker → SQLite, batch {b}", curve[b], curve[500], "batch 500")
        for b in batches
    ]

    sizes = [200, 2_000, 200_000] if quick else [200, 2_000, 20_000, 200_000]
    by_size = {s: EntryFactory(s).make(max(100, min(n, 40_000_000 // s))) for s in sizes}
    curve = _curve(
        sizes, 2_000,
        lambda s: consume_rate("rawtap", redis_url, "sqlite", None, by_size[s]), rounds,
    )  # fmt: skip
    drain = _curve(sizes, 2_000, lambda s: _drain_rate(redis_url, s, len(by_size[s])), rounds)
    for s in sizes:
        mb = statistics.median(curve[s]) * s / 1e6
        figures.append(
            rate_figure(
                "scaling", f"worker → SQLite, {s:,} B records", curve[s], curve[2_000],
                "2 KB records", note=f"{mb:,.1f} MB/s of bodies",
            )
        )  # fmt: skip
    for s in sizes:
        mb = statistics.median(drain[s]) * s / 1e6
        figures.append(
            rate_figure(
                "scaling", f"producer drain, {s:,} B records", drain[s], drain[2_000],
                "2 KB records", note=f"{mb:,.1f} MB/s of bodies",
            )
        )  # fmt: skip

    counts = [1, 2] if quick else [1, 2, 4]
    sinks = ["sqlite"] if quick or postgres_url is None else ["sqlite", "postgresql"]
    for sink in sinks:
        curve = _curve(
            counts, 1,
            lambda c, sink=sink: consume_rate(  # type: ignore[misc]
                "rawtap", redis_url, sink, postgres_url, entries, workers=c
            ),
            rounds,
        )  # fmt: skip
        label = "SQLite" if sink == "sqlite" else "PostgreSQL"
        figures += [
            rate_figure("scaling", f"{c} worker(s) → {label}", curve[c], curve[1], "1 worker")
            for c in counts
        ]
    return figures
