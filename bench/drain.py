"""Producer drain: records/s from one process into Redis.

Subject: a Recorder in this process, ``record()`` called N times as fast as the
loop goes, then ``flush()``; the rate is N over the whole time, so it includes
the hot path, the writer thread's serialization (envelope, record id) and its
pipelined ``XADD … MAXLEN ~`` batches of 500.

Baselines, interleaved round by round, on the same data:

* **ceiling**: redis-py's own pipelined ``XADD`` loop (batches of 500, same
  MAXLEN) over *pre-built* entries identical to the writer's, i.e. with no
  serialization at all — the issue's reference;
* **same work**: the same loop building each entry from the same arguments
  (orjson envelope, record id) inside the loop, as a hand-written exporter would;
* **rawtap's serialization inline**: the same loop calling rawtap's own
  ``serialize()`` per record (envelope, credential redaction, truncation) — the
  floor of the writer's machinery (buffer, threads, hand-packed batches), since
  the bare loop does no redaction at all.

The writer's CPU per record (its thread and the Redis I/O thread, from
``/proc/self/task/*/schedstat``) is reported too.
"""

from __future__ import annotations

import tempfile
import threading
import time
from typing import Any

import orjson
import redis

from bench._common import (
    BODY_BYTES,
    DETAILS,
    METADATA,
    EntryFactory,
    Figure,
    body_of_size,
    delete_keys,
    rate_figure,
    time_figure,
)


def run(redis_url: str, quick: bool, **_: Any) -> list[Figure]:
    """Interleaved rounds of the Recorder and both baselines."""
    from rawtap.producer import Recorder

    n = 2_000 if quick else 20_000
    rounds = 2 if quick else 7
    prefix = f"rawtap-bench-drain-{time.time_ns()}"
    body = body_of_size(BODY_BYTES)
    entries = EntryFactory(BODY_BYTES).make(n)
    client = redis.Redis.from_url(redis_url)
    stream = f"{prefix}:baseline"
    maxlen = 1_000_000
    spill = tempfile.TemporaryDirectory()
    recorder = Recorder(redis_url=redis_url, stream_prefix=prefix, spill_dir=spill.name)
    subject: list[float] = []
    ceiling: list[float] = []
    same_work: list[float] = []
    writer_cpu: list[float] = []
    inline: list[float] = []

    def run_recorder() -> None:
        record = recorder.record
        cpu = _writer_cpu_ns()
        started = time.perf_counter()
        for _ in range(n):
            record("openai", body, METADATA, "user-42", **DETAILS)
        if not recorder.flush(120):
            raise RuntimeError("the recorder did not drain in 120 s")
        subject.append(n / (time.perf_counter() - started))
        writer_cpu.append((_writer_cpu_ns() - cpu) / n / 1000)
        delete_keys(redis_url, prefix)

    def run_ceiling() -> None:
        started = time.perf_counter()
        for i in range(0, n, 500):
            pipe = client.pipeline(transaction=False)
            for e in entries[i : i + 500]:
                pipe.xadd(stream, e, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.execute()
        ceiling.append(n / (time.perf_counter() - started))
        client.delete(stream)

    def run_inline() -> None:
        inline.append(_inline_rate(client, stream, n, body, maxlen))

    def run_same_work() -> None:
        started = time.perf_counter()
        seq = 0
        for _ in range(0, n, 500):
            pipe = client.pipeline(transaction=False)
            for _ in range(500):
                now = time.time_ns()
                rid = f"{now // 1_000_000:012x}bench0000000000{seq:012x}"
                envelope = orjson.dumps(
                    {"record_id": rid, "seq": seq, "provider": "openai", "session_id": "user-42",
                     "metadata": METADATA, "captured_at_ns": now, "status": DETAILS["status"],
                     "method": DETAILS["method"], "url": DETAILS["url"],
                     "request_headers": DETAILS["request_headers"],
                     "response_headers": DETAILS["response_headers"]}
                )  # fmt: skip
                fields = {b"rid": rid.encode(), b"env": envelope, b"req": DETAILS["request_body"],
                          b"body": body}  # fmt: skip
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
                seq += 1
            pipe.execute()
        same_work.append(n / (time.perf_counter() - started))
        client.delete(stream)

    try:
        for _ in range(500):  # start the writer thread
            recorder.record("openai", body, METADATA, "user-42", **DETAILS)
        recorder.flush(30)
        variants = [run_recorder, run_ceiling, run_same_work, run_inline]
        for r in range(rounds):
            for v in variants if r % 2 == 0 else reversed(variants):
                v()
        dropped = sum(recorder.stats().dropped.values())
    finally:
        recorder.close()
        spill.cleanup()
        delete_keys(redis_url, prefix)
        client.close()
    note = f"{n:,} records per round, {dropped} dropped"
    return [
        rate_figure(
            "drain", "producer drain vs pipelined XADD of pre-built entries", subject, ceiling,
            "redis-py pipeline of 500, no serialization", note=note,
        ),
        rate_figure(
            "drain", "producer drain vs pipelined XADD building the entry", subject, same_work,
            "redis-py pipeline of 500, orjson envelope in the loop", ratio_goal=0.8,
        ),
        rate_figure(
            "drain", "producer drain vs the same loop calling rawtap's serialize()", subject,
            inline, "redis-py pipeline of 500, rawtap's envelope and redaction in the loop",
            ratio_goal=0.8,
        ),
        time_figure(
            "drain", "writer CPU per record (writer + Redis I/O threads)", writer_cpu,
            [1e6 / r for r in same_work], "wall time per record of the same-work loop",
            note="schedstat of the rawtap-writer and rawtap-redis-io threads",
        ),
    ]  # fmt: skip


def _inline_rate(client: redis.Redis, stream: str, n: int, body: bytes, maxlen: int) -> float:
    """Records/s of the pipelined loop calling rawtap's ``serialize()`` for each entry."""
    from rawtap.producer._serialize import serialize

    started = time.perf_counter()
    seq = 0
    for _ in range(0, n, 500):
        pipe = client.pipeline(transaction=False)
        for _ in range(500):
            item = (seq, 0, (time.time_ns(), "openai", body, METADATA, "user-42", DETAILS))
            entry = serialize(item, "bench0000000000x", None, 8 << 20).entry
            pipe.xadd(stream, entry, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            seq += 1
        pipe.execute()
    rate = n / (time.perf_counter() - started)
    client.delete(stream)
    return rate


def _writer_cpu_ns() -> int:
    """CPU time so far of this process's rawtap writer and Redis I/O threads (schedstat, ns)."""
    total = 0
    for t in threading.enumerate():
        if t.name in ("rawtap-writer", "rawtap-redis-io") and t.native_id is not None:
            try:
                with open(f"/proc/self/task/{t.native_id}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    return total
