"""Memory: producer RSS with Redis down, and worker RSS over many records.

**Producer** (``bench._producer flood``, its own process): Redis is down (a port
nobody listens on) and the service records 2 KB responses at 50k/s — ten times
the 5k/s of the end-to-end figure, and infinitely faster than it can send. The
RSS growth over the process's RSS before the Recorder existed is compared with
``max_memory_mb`` (64, the default); the goal is ≤ limit + 30 MB and flat: the
second half of the run must not grow. Two cases: without a spill journal
(records wait in memory until the bound refuses them) and with one (the
writer spills to disk, fsync per batch, up to 256 MB, then drops). A third:
a Redis of its own that is SIGSTOPped (it accepts connections and answers
nothing) a fifth into the run, resumed at half time, so the journal is
replayed while the flood goes on, and stopped again a tenth later: stalled
during the replay, until the end.

**Worker**: one rawtap worker process commits many 2 KB records into SQLite
while this process keeps its stream fed (backlog ≤ 20k); its RSS, sampled every
0.2 s, after the first 10 % of the records is the baseline of its RSS at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from bench._common import (
    BODY_BYTES,
    EntryFactory,
    Figure,
    delete_keys,
    free_port,
    private_redis,
    time_figure,
)
from bench._pipeline import _ROOT, consumers, create_group, go, group_progress, stop, stream_of
from bench.worker import fresh_sink

LIMIT_MB = 64.0


def producer_flood(
    seconds: float,
    spill: bool,
    redis_url: str | None = None,
    stalls: Sequence[tuple[float, int]] = (),
) -> dict[str, Any]:
    """One flood run; RSS samples and the recorder's counters.

    ``redis_url`` default: a port nobody listens on. ``stalls``: ``(at_s, signal)`` sent to
    that Redis's process during the run.
    """
    url = redis_url or f"redis://127.0.0.1:{free_port()}/0"
    pid = _server_pid(url) if stalls else 0
    with tempfile.TemporaryDirectory(prefix="rawtap-bench-spill-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench._producer", "flood", "--redis",
             url, "--prefix", "rawtap-bench-mem", "--rate",
             "50000", "--seconds", str(seconds), "--max-memory-mb", str(LIMIT_MB),
             "--spill-dir", tmp if spill else ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_ROOT,
        )  # fmt: skip
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise RuntimeError("producer did not start")
        try:
            if stalls:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
                started = time.monotonic()
                for at, sig in stalls:
                    time.sleep(max(0.0, started + at - time.monotonic()))
                    os.kill(pid, sig)
            out, _ = proc.communicate("" if stalls else "go\n", timeout=seconds + 60)
        finally:
            if stalls:
                os.kill(pid, signal.SIGCONT)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    rss = [mb for _, mb in result["rss"]]
    half = rss[len(rss) // 2 :] or rss
    result["peak_growth"] = max(rss) - result["baseline_rss"]
    result["second_half_growth"] = max(half) - half[0]
    return result


def _server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def worker_rss(redis_url: str, total: int) -> dict[str, Any]:
    """Feed ``total`` records through one rawtap worker into SQLite; its RSS over time."""
    prefix = f"rawtap-bench-rss-{uuid.uuid4().hex[:8]}"
    stream = stream_of(prefix)
    factory = EntryFactory(BODY_BYTES)
    create_group(redis_url, prefix)
    client = redis.Redis.from_url(redis_url)
    progress: list[tuple[float, int]] = []
    try:
        with (
            fresh_sink("sqlite", None) as sink_url,
            consumers("rawtap", redis_url, prefix, sink_url) as procs,
        ):
            started = time.monotonic()
            go(procs)
            added = 0
            while True:
                read, pending = group_progress(client, stream)
                progress.append((time.monotonic() - started, read))
                if read >= total and pending == 0:
                    break
                if added < total and added - read < 20_000:
                    batch = factory.make(min(5_000, total - added))
                    pipe = client.pipeline(transaction=False)
                    for e in batch:
                        pipe.xadd(stream, e, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
                    pipe.execute()
                    added += len(batch)
                else:
                    time.sleep(0.05)
            (result,) = stop(procs)
    finally:
        client.close()
        delete_keys(redis_url, prefix)
    # RSS when 10 % of the records were read, and at the end.
    tenth = next(t for t, read in progress if read >= total // 10)
    samples = result["rss"]
    at_tenth = next((mb for t, mb in samples if t >= tenth), samples[0][1])
    return {
        "stored": result["stored"],
        "rss_at_10pct": at_tenth,
        "rss_end": samples[-1][1],
        "rss_max": max(mb for _, mb in samples),
        "seconds": progress[-1][0],
    }


def run(redis_url: str, quick: bool, **_: Any) -> list[Figure]:
    """Both producer cases, then the worker run."""
    seconds = 2.0 if quick else 20.0
    total = 5_000 if quick else 1_000_000
    figures = []
    for spill in (False, True):
        r = producer_flood(seconds, spill)
        label = "journal on (default)" if spill else "no journal"
        figures.append(
            time_figure(
                "memory", f"producer RSS growth, Redis down, 50k/s for {seconds:g} s, {label}",
                [r["peak_growth"]], [LIMIT_MB], "max_memory_mb", unit="MB",
                goal=LIMIT_MB + 30,
                note=f"second half grew {r['second_half_growth']:+.1f} MB; "
                f"{r['offered']:,} offered, {r['accepted']:,} accepted, "
                f"{r['spilled']:,} spilled, {sum(r['dropped'].values()):,} dropped",
                extra={k: v for k, v in r.items() if k != "rss"} | {"rss": r["rss"]},
            )
        )  # fmt: skip
    with private_redis() as stalled_url:
        stalls = [
            (seconds * 0.2, signal.SIGSTOP),
            (seconds * 0.5, signal.SIGCONT),
            (seconds * 0.6, signal.SIGSTOP),
        ]
        r = producer_flood(seconds, True, stalled_url, stalls)
    figures.append(
        time_figure(
            "memory", f"producer RSS growth, Redis stalled during replay, 50k/s for {seconds:g} s",
            [r["peak_growth"]], [LIMIT_MB], "max_memory_mb", unit="MB", goal=LIMIT_MB + 30,
            note=f"SIGSTOP at 20 %, SIGCONT at 50 % (replay), SIGSTOP at 60 %; "
            f"second half grew {r['second_half_growth']:+.1f} MB; {r['offered']:,} offered, "
            f"{r['accepted']:,} accepted, {r['spilled']:,} spilled, {r['sent']:,} sent, "
            f"{sum(r['dropped'].values()):,} dropped",
            extra={k: v for k, v in r.items() if k != "rss"} | {"rss": r["rss"]},
        )
    )  # fmt: skip
    w = worker_rss(redis_url, total)
    figures.append(
        time_figure(
            "memory", f"worker RSS after {total:,} records (SQLite)", [w["rss_end"]],
            [w["rss_at_10pct"]], "its RSS after the first 10 %", unit="MB", ratio_goal=0.9,
            note=f"max {w['rss_max']:.0f} MB, {w['stored']:,} stored in {w['seconds']:.0f} s",
            extra=w,
        )
    )  # fmt: skip
    return figures
