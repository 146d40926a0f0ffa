"""Worker: records/s of one worker process into SQLite and into PostgreSQL.

The stream is pre-filled with N 2 KB entries exactly as the producer writes
them; a fresh sink (new SQLite file, new PostgreSQL schema) per run, so every
run stores the same N records. Per round, interleaved:

* **rawtap**: one ``Worker`` process (batches of 500, ack after commit);
* **FastStream**: one process with a FastStream ``StreamSub`` batch subscriber
  (batches of 500) doing the same work per batch — decode, derive, commit to
  the same sink — the peer a user might pick instead (see ``bench/_consumer.py``);
* **sink alone** (in this process, no Redis): decode + derive + ``sink.write``
  of the same entries in batches of 500 — the ceiling a worker can approach.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench._common import (
    BODY_BYTES,
    EntryFactory,
    Figure,
    delete_keys,
    fill_stream,
    postgres_schema,
    rate_figure,
)
from bench._pipeline import create_group, stream_of, timed_consume


@contextlib.contextmanager
def fresh_sink(kind: str, postgres_url: str | None) -> Iterator[str]:
    """A sink URL nobody has written to: a new SQLite file or a new PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="rawtap-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
    else:
        assert postgres_url is not None
        with postgres_schema(postgres_url) as url:
            # Create the schema now: a worker's first batch must not pay for migrations.
            from rawtap.consumer import open_sink

            open_sink(url).close()
            yield url


def sink_alone(sink_url: str, entries: Sequence[dict[bytes, bytes]], batch: int) -> float:
    """Records/s of decode + derive + write in batches, in this process."""
    from rawtap.consumer import derive_all, open_sink
    from rawtap.shared import decode_entry

    with open_sink(sink_url) as sink:
        started = time.perf_counter()
        for i in range(0, len(entries), batch):
            records = [decode_entry(e) for e in entries[i : i + batch]]
            sink.write(records, time.time_ns(), derive_all(records))
        return len(entries) / (time.perf_counter() - started)


def consume_rate(
    kind: str,
    redis_url: str,
    sink_kind: str,
    postgres_url: str | None,
    entries: Sequence[dict[bytes, bytes]],
    *,
    workers: int = 1,
    batch: int = 500,
) -> float:
    """Fill a fresh stream with ``entries`` and time ``workers`` ``kind`` consumers over it."""
    prefix = f"rawtap-bench-{uuid.uuid4().hex[:8]}"
    try:
        fill_stream(redis_url, stream_of(prefix), entries)
        create_group(redis_url, prefix)
        with fresh_sink(sink_kind, postgres_url) as sink_url:
            rate, results = timed_consume(
                kind, redis_url, prefix, sink_url, len(entries), count=workers, batch=batch
            )
        stored = sum(r["stored"] for r in results)
        if stored != len(entries):
            raise RuntimeError(f"{kind} stored {stored} of {len(entries)} records")
        return rate
    finally:
        delete_keys(redis_url, prefix)


def run(redis_url: str, quick: bool, postgres_url: str | None, **_: Any) -> list[Figure]:
    """Both sinks (PostgreSQL when reachable), interleaved rounds of the three variants."""
    n = 1_000 if quick else 20_000
    rounds = 1 if quick else 5
    entries = EntryFactory(BODY_BYTES).make(n)
    figures = []
    for sink_kind, goal in (("sqlite", 30_000.0), ("postgresql", 20_000.0)):
        if sink_kind == "postgresql" and postgres_url is None:
            continue
        rawtap: list[float] = []
        peer: list[float] = []
        alone: list[float] = []

        def sink_only(sink_kind: str = sink_kind) -> float:
            with fresh_sink(sink_kind, postgres_url) as url:
                return sink_alone(url, entries, 500)

        def consumer(kind: str, sink_kind: str = sink_kind) -> Callable[[], float]:
            return lambda: consume_rate(kind, redis_url, sink_kind, postgres_url, entries)

        variants: list[tuple[list[float], Callable[[], float]]] = [
            (rawtap, consumer("rawtap")),
            (peer, consumer("faststream")),
            (alone, sink_only),
        ]
        for r in range(rounds):
            for out, fn in variants if r % 2 == 0 else reversed(variants):
                out.append(fn())
        label = "SQLite" if sink_kind == "sqlite" else "PostgreSQL"
        note = f"{n:,} records per run"
        figures += [
            rate_figure(
                "worker", f"worker → {label} vs FastStream", rawtap, peer,
                "FastStream StreamSub batch 500, same sink", goal=goal, ratio_goal=1.5, note=note,
            ),
            rate_figure(
                "worker", f"worker → {label} vs the sink alone", rawtap, alone,
                "decode + derive + write in-process, no Redis",
            ),
        ]  # fmt: skip
    return figures
