"""Insert throughput of the sinks: 2 KB records, batches of 500, one writer.

    python bench/sink_throughput.py [--records 20000] [--batch 500]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Measures, in one run on the same machine (compare ratios, not absolutes):
SQLite (WAL, synchronous=NORMAL), PostgreSQL with COPY into a staging table and
with executemany (pipelined INSERT … ON CONFLICT DO NOTHING), both unpartitioned
and partitioned by day; with and without derived fields; and the cost of
derivation itself. Each PostgreSQL case runs in a schema of its own, dropped after.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable

import orjson
import psycopg

from rawtap.consumer import Derived, derive, open_sink
from rawtap.shared import Record

BODY_BYTES = 2048


def make_records(count: int) -> list[Record]:
    """``count`` records of an OpenAI chat completion padded to 2 KB, spread over two days."""
    text = "the quick brown fox jumps over the lazy dog " * 60
    now = time.time_ns()
    out = []
    for i in range(count):
        doc = {
            "id": f"chatcmpl-{i:012d}",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ""},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100 + i % 50, "completion_tokens": 300, "total_tokens": 400},
        }
        bare = len(orjson.dumps(doc))
        doc["choices"][0]["message"]["content"] = text[: BODY_BYTES - bare]  # type: ignore[index]
        body = orjson.dumps(doc)
        started = now - (i % 2) * 86_400_000_000_000 - i * 1000
        out.append(
            Record(
                record_id=f"{started // 1_000_000:012x}{uuid.uuid4().hex[:16]}{i:012x}",
                producer_id="bench0000000000",
                seq=i,
                session_id=f"user-{i % 100}",
                service="bench",
                provider="openai",
                method="POST",
                url="https://api.openai.com/v1/chat/completions",
                request_headers=[
                    ("content-type", "application/json"),
                    ("authorization", "[redacted]"),
                ],
                request_body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
                metadata={"endpoint": "/v1/chat/completions"},
                status=200,
                response_headers=[
                    ("content-type", "application/json"),
                    ("x-request-id", f"req_{i}"),
                ],
                body=body,
                started_at_ns=started,
                first_byte_ns=120_000_000,
                ended_ns=900_000_000,
                captured_at_ns=started + 900_000_000,
            )
        )
    return out


def run(
    label: str,
    url: str,
    records: list[Record],
    batch: int,
    derived: list[Derived] | None,
    rows: list[str],
) -> None:
    with open_sink(url) as sink:
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            part = records[i : i + batch]
            sink.write(part, time.time_ns(), None if derived is None else derived[i : i + batch])
        elapsed = time.perf_counter() - started
        assert sink.count() == len(records), label
    rate = len(records) / elapsed
    rows.append(f"| {label} | {rate:,.0f} | {rate * BODY_BYTES / 1e6:,.1f} |")
    print(rows[-1], flush=True)


def drop_schema(base: str, schema: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "RAWTAP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    records = make_records(args.records)
    derive_s = timed(lambda: [derive(r) for r in records[:5000]], 1)
    derived = [derive(r) for r in records]
    rows = ["| sink | records/s | MB/s (2 KB bodies) |", "|---|---:|---:|"]
    print("\n".join(rows), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite WAL", f"sqlite:///{tmp}/a.db", records, args.batch, None, rows)
        run(
            "SQLite WAL, with derived columns",
            f"sqlite:///{tmp}/b.db",
            records,
            args.batch,
            derived,
            rows,
        )
    for insert in ("copy", "executemany"):
        for partition in ("none", "day"):
            for with_derived in (False, True):
                schema = f"rawtap_bench_{uuid.uuid4().hex[:8]}"
                url = f"{args.postgres}?schema={schema}&insert={insert}&partition={partition}"
                label = f"PostgreSQL {insert}, partition={partition}" + (
                    ", with derived columns" if with_derived else ""
                )
                try:
                    run(label, url, records, args.batch, derived if with_derived else None, rows)
                finally:
                    drop_schema(args.postgres, schema)
    with psycopg.connect(args.postgres) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg_version = row[0] if row else "?"
    print()
    print(f"derivation (openai.chat, 2 KB JSON): {derive_s / 5000 * 1e6:.1f} µs per record")
    print(
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"psycopg {psycopg.__version__}, PostgreSQL {pg_version}, {os.cpu_count()} cores, "
        f"{args.records} records in batches of {args.batch}"
    )


if __name__ == "__main__":
    main()
