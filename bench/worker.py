"""Worker: records/s of one worker process into SQLite and into PostgreSQL.

The stream is pre-filled with N 2 KB entries exactly as the producer writes
them; a fresh sink (new SQLite file, new PostgreSQL schema, created by rawtap's
migrations before the clock starts) per run, so every run stores the same N
records. Per round, interleaved (ABCD, DCBA, …), each a process of its own:

* **rawtap**: one ``Worker`` (batches of 500, ack after commit);
* **bare, own table**: the hand-written loop of ``bench/_bare.py`` — XREADGROUP,
  ``orjson.loads`` of envelope and body, the same columns picked by key,
  ``executemany`` (SQLite) or a binary ``COPY`` straight into the table
  (PostgreSQL), commit, XACK — nothing validated, nothing derived beyond five keys;
* **bare, narrow table**: the same loop into ``(record_id, envelope,
  request_body, body)`` with no other index: own ÷ narrow is the schema's cost;
* **FastStream**: a ``StreamSub`` batch subscriber doing rawtap's work per batch
  (decode, derive, commit to the same sink) — the peer a user might pick;
* PostgreSQL only: **two rawtap workers** in one group.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench._common import (
    BODY_BYTES,
    EntryFactory,
    Figure,
    delete_keys,
    fill_stream,
    interleave,
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


def _variants(
    redis_url: str, sink_kind: str, postgres_url: str | None, entries: Sequence[dict[bytes, bytes]]
) -> dict[str, Callable[[], float]]:
    def consumer(kind: str, workers: int = 1) -> Callable[[], float]:
        return lambda: consume_rate(
            kind, redis_url, sink_kind, postgres_url, entries, workers=workers
        )

    variants = {
        "rawtap": consumer("rawtap"),
        "bare-own": consumer("bare-own"),
        "bare-narrow": consumer("bare-narrow"),
        "faststream": consumer("faststream"),
    }
    if sink_kind == "postgresql":
        variants["rawtap-2"] = consumer("rawtap", workers=2)
    return variants


def run(redis_url: str, quick: bool, postgres_url: str | None, **_: Any) -> list[Figure]:
    """Both sinks (PostgreSQL when reachable), interleaved rounds of every variant."""
    n = 1_000 if quick else 20_000
    rounds = 1 if quick else 5
    entries = EntryFactory(BODY_BYTES).make(n)
    figures = []
    note = f"{n:,} records per run"
    for sink_kind in ("sqlite", "postgresql"):
        if sink_kind == "postgresql" and postgres_url is None:
            continue
        variants = _variants(redis_url, sink_kind, postgres_url, entries)
        got = dict(zip(variants, interleave(list(variants.values()), rounds), strict=True))
        label = "SQLite" if sink_kind == "sqlite" else "PostgreSQL"
        bare = "executemany" if sink_kind == "sqlite" else "binary COPY straight in"
        figures += [
            rate_figure(
                "worker", f"worker → {label} vs a bare loop into its own table", got["rawtap"],
                got["bare-own"], f"XREADGROUP, orjson, {bare}, commit, XACK",
                ratio_goal=0.8 if sink_kind == "sqlite" else 0.85, note=note,
            ),
            rate_figure(
                "worker", f"bare loop, rawtap's table vs a narrow table ({label}: the schema's "
                "cost)", got["bare-own"], got["bare-narrow"],
                "the same loop into (record_id, envelope, request_body, body)",
                ratio_goal=0.8 if sink_kind == "sqlite" else None,
            ),
            rate_figure(
                "worker", f"worker → {label} vs FastStream", got["rawtap"], got["faststream"],
                "FastStream StreamSub batch 500, same sink", note=note,
            ),
        ]  # fmt: skip
        if "rawtap-2" in got:
            figures.append(
                rate_figure(
                    "worker",
                    f"2 workers → {label} vs one",
                    got["rawtap-2"],
                    got["rawtap"],
                    "one worker, same run",
                    ratio_goal=1.7,
                    note=note,
                )
            )
    return figures
