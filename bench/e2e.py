"""End to end: capture-to-persist delay at a steady rate, and the highest steady rate.

A producer process (``bench._producer paced``: a real Recorder, 2 KB records,
paced every millisecond) records for a few seconds while one consumer process
commits to a fresh SQLite store. The delay of each record is
``persisted_at_ns − captured_at_ns`` read back from the store (captured: the
``record()`` call; persisted: the start of the commit of its batch, the same
stamp for both consumers). Producer, Redis and consumer share the 2 cores.

Baseline, interleaved: the same producer with the FastStream peer as the
consumer (``bench/_consumer.py``), on the same sink.

The highest steady rate: rates are stepped up until one is not held — held
means the producer offered it (≥ 97 %), nothing was dropped, and the p99
delay stayed ≤ 500 ms (a backlog that grows shows up as a p99 of seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from bench._common import Figure, delete_keys, percentile, rate_figure, time_figure
from bench._pipeline import _ROOT, consumers, create_group, go, stop, wait_consumed
from bench.worker import fresh_sink


def _producer(redis_url: str, prefix: str, rate: float, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._producer", "paced", "--redis", redis_url, "--prefix",
         prefix, "--rate", str(rate), "--seconds", str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("producer did not start")
    return proc


def pipeline_run(kind: str, redis_url: str, rate: float, seconds: float) -> dict[str, Any]:
    """One producer at ``rate`` for ``seconds`` into one ``kind`` consumer; delays in ms."""
    from rawtap.consumer import open_sink

    prefix = f"rawtap-bench-e2e-{uuid.uuid4().hex[:8]}"
    create_group(redis_url, prefix)
    try:
        with (
            fresh_sink("sqlite", None) as sink_url,
            consumers(kind, redis_url, prefix, sink_url) as procs,
        ):
            producer = _producer(redis_url, prefix, rate, seconds)
            try:
                go(procs)
                go([producer])
                out, _ = producer.communicate(timeout=seconds + 120)
            finally:
                if producer.poll() is None:
                    producer.kill()
            result = json.loads(out.strip().splitlines()[-1])
            wait_consumed(redis_url, prefix, result["accepted"], 120, procs)
            stop(procs)
            with open_sink(sink_url) as sink:
                rows = sink.execute("SELECT persisted_at_ns - captured_at_ns FROM records")
        delays = sorted(r[0] / 1e6 for r in rows)
    finally:
        delete_keys(redis_url, prefix)
    dropped = sum(result["dropped"].values())
    return {
        "rate": result["rate"],
        "offered": result["offered"],
        "stored": len(delays),
        "dropped": dropped,
        "p50": percentile(delays, 0.5),
        "p99": percentile(delays, 0.99),
        "max": delays[-1] if delays else float("nan"),
        "held": result["rate"] >= 0.97 * rate and dropped == 0 and percentile(delays, 0.99) <= 500,
    }


def run(redis_url: str, quick: bool, **_: Any) -> list[Figure]:
    """Interleaved steady-rate runs, then the rate ramp for both consumers."""
    rate, seconds, rounds = (1_000.0, 1.0, 1) if quick else (5_000.0, 10.0, 3)
    steps = [100.0, 500.0] if quick else [5e3, 10e3, 15e3, 20e3, 25e3, 30e3, 40e3]
    step_seconds = 1.0 if quick else 6.0
    runs: dict[str, list[dict[str, Any]]] = {"rawtap": [], "faststream": []}
    for r in range(rounds):
        for kind in ("rawtap", "faststream") if r % 2 == 0 else ("faststream", "rawtap"):
            runs[kind].append(pipeline_run(kind, redis_url, rate, seconds))
    highest: dict[str, float] = {"rawtap": 0.0, "faststream": 0.0}
    ramp: dict[str, list[dict[str, Any]]] = {"rawtap": [], "faststream": []}
    live = {"rawtap", "faststream"}
    for step in steps:
        for kind in sorted(live):
            got = pipeline_run(kind, redis_url, step, step_seconds)
            got["target"] = step
            ramp[kind].append(got)
            if got["held"]:
                highest[kind] = step
            else:
                live.discard(kind)
        if not live:
            break
    label = f"{rate:,.0f} records/s for {seconds:g} s"
    return [
        time_figure(
            "e2e", f"capture→persist p50 at {label}", [x["p50"] for x in runs["rawtap"]],
            [x["p50"] for x in runs["faststream"]], "same producer, FastStream consumer",
            unit="ms", extra={"runs": runs},
        ),
        time_figure(
            "e2e", f"capture→persist p99 at {label}", [x["p99"] for x in runs["rawtap"]],
            [x["p99"] for x in runs["faststream"]], "same producer, FastStream consumer",
            unit="ms", goal=250.0,
        ),
        rate_figure(
            "e2e", "highest steady rate (SQLite, 1 worker)", [highest["rawtap"]],
            [highest["faststream"]], "same producer, FastStream consumer",
            note=f"steps {', '.join(f'{s:,.0f}' for s in steps)}; held = p99 ≤ 500 ms, "
            "no drop", extra={"ramp": ramp},
        ),
    ]  # fmt: skip
