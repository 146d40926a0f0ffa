"""Hot-path figures beyond the tight loop: paced calls, the first call, import, garbage collection.

* **paced**: ``record()`` at 1,000 and 10,000 calls/s (``time.sleep`` until the
  next call is due), the writer idle between calls; p50 and p99 as the caller
  sees them, against the floor of any enqueue paced the same way in the same run
  (a lock, a timestamp, a deque append: what a thread that just woke from a
  sleep pays on this machine, cold caches and all).
* **first record()**: a fresh interpreter builds a Recorder and times its first
  ``record()``; the baseline is the median of its next 100 calls.
* **import**: ``import rawtap.producer`` in a fresh interpreter, against
  ``import redis`` in another (what pulled in the OTel SDK before).
* **gc**: the mean ``record()`` of bursts with the default collector, against
  the same bursts with ``gc.freeze()`` done first (nothing old left to scan).
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bench._common import METADATA, Figure, percentile, time_figure

Record = Callable[..., bool]

_FIRST_RECORD = """
import json, sys, time
pc = time.perf_counter_ns
from rawtap.producer import Recorder
r = Recorder(redis_url=sys.argv[1], stream_prefix=sys.argv[2], spill_dir="")
body = b'{"id": "x"}' * 180
t = pc(); r.record("openai", body, {"endpoint": "/v1"}, "user-42"); first = pc() - t
rest = []
for _ in range(100):
    t = pc(); r.record("openai", body, {"endpoint": "/v1"}, "user-42"); rest.append(pc() - t)
rest.sort()
r.close(5)
print(json.dumps({"first_us": first / 1000, "next_us": rest[50] / 1000}))
"""

_IMPORT = """
import json, sys, time
t = time.perf_counter()
__import__(sys.argv[1])
took = time.perf_counter() - t
print(json.dumps({"ms": took * 1000, "redis": "redis" in sys.modules,
                  "otel_sdk": "opentelemetry.sdk.metrics" in sys.modules,
                  "pydantic": "pydantic" in sys.modules}))
"""


def paced(record: Record, body: bytes, rate: float, calls: int) -> list[int]:
    """``calls`` timed ``record()`` calls, one every ``1/rate`` s (slept, not spun); sorted ns."""
    pc = time.perf_counter_ns
    period = int(1e9 / rate)
    samples = [0] * calls
    due = pc()
    for i in range(calls):
        due += period
        left = due - pc()
        if left > 0:
            time.sleep(left / 1e9)
        t = pc()
        record("openai", body, METADATA, "user-42")
        samples[i] = pc() - t
    samples.sort()
    return samples


def _floor() -> Record:
    """The floor of any enqueue, paced the same way: a lock, a timestamp, a deque append."""
    lock = threading.Lock()
    queue: deque[tuple[Any, ...]] = deque(maxlen=100_000)

    def enqueue(provider: str, raw: bytes, metadata: object, session: str) -> bool:
        with lock:
            queue.append((time.time_ns(), provider, raw, session))
        return True

    return enqueue


def paced_figures(
    record: Record, flush: Callable[[], object], body: bytes, tight_p50: list[float], quick: bool
) -> list[Figure]:
    """p50/p99 at 1k/s and 10k/s vs the paced floor; rounds interleaved, flushed in between."""
    figures = []
    floor = _floor()
    for rate in (1_000, 10_000):
        calls = (500 if rate == 1_000 else 3_000) if quick else (3_000 if rate == 1_000 else 20_000)
        rounds = 2 if quick else 4
        p50s, p99s, f50s, f99s, every = [], [], [], [], []
        for r in range(rounds):
            for which in ("subject", "floor") if r % 2 == 0 else ("floor", "subject"):
                if which == "floor":
                    f = paced(floor, body, rate, calls)
                    f50s.append(percentile(f, 0.5) / 1000)
                    f99s.append(percentile(f, 0.99) / 1000)
                    continue
                s = paced(record, body, rate, calls)
                flush()
                p50s.append(percentile(s, 0.5) / 1000)
                p99s.append(percentile(s, 0.99) / 1000)
                every += s
        every.sort()
        note = (
            f"{len(every):,} calls; p99.9 {percentile(every, 0.999) / 1000:.1f} µs; "
            f"tight-loop p50 {statistics.median(tight_p50):.2f} µs"
        )
        figures += [
            time_figure(
                "hot_path", f"record() p50, paced at {rate:,}/s", p50s, f50s,
                "lock + deque append paced the same way (p50)", goal=1.0, note=note,
            ),
            time_figure(
                "hot_path", f"record() p99, paced at {rate:,}/s", p99s, f99s,
                "lock + deque append paced the same way (p99)", goal=5.0,
            ),
        ]  # fmt: skip
    return figures


def _fresh(script: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
        timeout=120,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def first_record_figure(redis_url: str, prefix: str, quick: bool) -> Figure:
    """The first ``record()`` of fresh processes vs their next calls."""
    runs = [_fresh(_FIRST_RECORD, redis_url, prefix) for _ in range(3 if quick else 7)]
    return time_figure(
        "hot_path", "first record() in a fresh process", [r["first_us"] for r in runs],
        [r["next_us"] for r in runs], "its next 100 calls (p50)", goal=100.0,
        note=f"{len(runs)} processes; max {max(r['first_us'] for r in runs):.0f} µs",
    )  # fmt: skip


def import_figure(quick: bool) -> Figure:
    """``import rawtap.producer`` vs ``import redis``, each in fresh interpreters."""
    ours, theirs = [], []
    for _ in range(2 if quick else 5):
        ours.append(_fresh(_IMPORT, "rawtap.producer"))
        theirs.append(_fresh(_IMPORT, "redis"))
    last = ours[-1]
    return time_figure(
        "hot_path", "import rawtap.producer", [r["ms"] for r in ours], [r["ms"] for r in theirs],
        "import redis (pulls in the OTel SDK metrics when installed)", unit="ms",
        note=f"imports redis: {last['redis']}, OTel SDK metrics: {last['otel_sdk']}, "
        f"pydantic (settings, via rawtap.shared): {last['pydantic']}",
        extra={"ours": ours, "redis": theirs},
    )  # fmt: skip


def gc_figure(record: Record, flush: Callable[[], object], body: bytes, quick: bool) -> Figure:
    """Mean ``record()`` in bursts, default GC vs after ``gc.freeze()``, interleaved."""
    burst = 2_000 if quick else 20_000
    pc = time.perf_counter_ns

    def one() -> float:
        t = pc()
        for _ in range(burst):
            record("openai", body, METADATA, "user-42")
        took = (pc() - t) / burst / 1000
        flush()
        return took

    default, frozen = [], []
    for _ in range(2 if quick else 5):
        gc.collect()
        default.append(one())
        gc.collect()
        gc.freeze()
        frozen.append(one())
        gc.unfreeze()
    return time_figure(
        "hot_path", f"record() mean in {burst:,}-call bursts, default GC", default, frozen,
        "the same bursts after gc.freeze()", ratio_goal=0.8,
        note=f"max mean {max(default):.2f} µs (default) vs {max(frozen):.2f} µs (frozen); "
        f"median {statistics.median(default):.2f}",
    )  # fmt: skip
