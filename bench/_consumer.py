"""One consumer process for the worker benchmarks: rawtap's Worker or a FastStream peer.

    python -m bench._consumer {rawtap,faststream,bare-own,bare-narrow} --redis URL --prefix P
        --sink URL [--group G] [--name C] [--batch 500]

Everything that is not consuming (imports, opening the sink and the Redis
connection) happens first; it then prints ``ready`` and waits for ``go`` on
stdin, consumes until ``stop`` arrives, and prints one JSON line of figures
(records handled, peak RSS). The orchestrator times the run from ``go`` to the
moment the group has read and acknowledged everything (``XINFO GROUPS``).

The FastStream peer is what a user would write instead of rawtap's worker: a
``StreamSub`` batch subscriber in a consumer group whose handler decodes the
entries, derives, and commits them to the *same* sink in one transaction, then
lets FastStream acknowledge the batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import Any

from bench._common import rss_mb


def _wait_for(word: str) -> None:
    for line in sys.stdin:
        if line.strip() == word:
            return
    raise SystemExit(f"stdin closed before {word!r}")


class _RssSampler(threading.Thread):
    """Samples this process's RSS every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.samples.append((time.monotonic() - self.started_at, rss_mb()))


def run_rawtap(args: argparse.Namespace) -> dict[str, Any]:
    """The rawtap Worker, with the sink and Redis client opened before ``go``."""
    from rawtap.consumer import Worker, open_sink
    from rawtap.consumer.worker import connect
    from rawtap.shared import WorkerSettings

    settings = WorkerSettings(
        redis_url=args.redis, stream_prefix=args.prefix, sink_url=args.sink, group=args.group,
        consumer=args.name, batch_size=args.batch, block_ms=100,
    )  # fmt: skip
    sink = open_sink(args.sink)
    client = connect(settings, name=f"bench:{args.name}")
    client.ping()
    worker = Worker(settings, sink=sink, client=client)
    print("ready", flush=True)
    _wait_for("go")
    sampler = _RssSampler()
    sampler.start()
    threading.Thread(target=lambda: (_wait_for("stop"), worker.stop()), daemon=True).start()
    stats = worker.run()
    sampler.stop.set()
    sink.close()
    client.close()
    return {"stored": stats.stored, "read": stats.read, "rss": sampler.samples}


def run_faststream(args: argparse.Namespace) -> dict[str, Any]:
    """A FastStream batch stream subscriber committing to the same sink."""
    from faststream.redis import RedisBroker, StreamSub
    from faststream.redis.annotations import RedisBatchStreamMessage

    from rawtap.consumer import derive_all, open_sink
    from rawtap.shared import decode_entry, is_report

    sink = open_sink(args.sink)
    broker = RedisBroker(args.redis, logger=None)
    stream = f"{args.prefix}:{{0}}"
    stored = 0

    @broker.subscriber(
        stream=StreamSub(stream, group=args.group, consumer=args.name, batch=True,
                         max_records=args.batch, polling_interval=100),
    )  # fmt: skip
    async def handle(msg: RedisBatchStreamMessage) -> None:
        nonlocal stored
        records = [decode_entry(f) for f in msg.raw_message["data"] if not is_report(f)]
        stored += sink.write(records, time.time_ns(), derive_all(records))

    async def main() -> None:
        await broker.connect()
        print("ready", flush=True)
        await asyncio.to_thread(_wait_for, "go")
        sampler = _RssSampler()
        sampler.start()
        await broker.start()
        await asyncio.to_thread(_wait_for, "stop")
        await broker.stop()
        sampler.stop.set()
        result.update(rss=sampler.samples)

    result: dict[str, Any] = {}
    asyncio.run(main())
    sink.close()
    return {"stored": stored, "read": stored, **result}


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    """A bare loop (``bench/_bare.py``) into rawtap's own table or the narrow one."""
    import redis

    from bench._bare import PostgresWriter, SqliteWriter, bare_loop, narrow_row, own_row, pg_own_row
    from rawtap.consumer import open_sink

    table = "narrow" if args.kind == "bare-narrow" else "records"
    open_sink(args.sink).close()  # rawtap's schema, by its migrations
    writer: SqliteWriter | PostgresWriter
    if args.sink.startswith("sqlite:///"):
        writer = SqliteWriter(args.sink.removeprefix("sqlite:///"), table)
        make_row = narrow_row if table == "narrow" else own_row
    else:
        writer = PostgresWriter(args.sink, table)
        make_row = narrow_row if table == "narrow" else pg_own_row
    client = redis.Redis.from_url(args.redis)
    client.ping()
    print("ready", flush=True)
    _wait_for("go")
    stop = threading.Event()
    threading.Thread(target=lambda: (_wait_for("stop"), stop.set()), daemon=True).start()
    stored = bare_loop(
        client, f"{args.prefix}:{{0}}", args.group, args.name, args.batch, make_row, writer,
        stop.is_set,
    )  # fmt: skip
    writer.close()
    client.close()
    return {"stored": stored, "read": stored, "rss": []}


def main() -> None:
    """Parse the arguments and run one consumer."""
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["rawtap", "faststream", "bare-own", "bare-narrow"])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--group", default="rawtap")
    parser.add_argument("--name", default="bench-0")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    runners = {"rawtap": run_rawtap, "faststream": run_faststream}
    result = runners.get(args.kind, run_bare)(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
