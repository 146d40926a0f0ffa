"""The worker ↔ telemetry seam: the ledger gauges read the sink off the worker's thread.

The reconcile behind ``rawtap.sink.gaps`` is a window scan on a large PostgreSQL
store: it runs in the observable callback, on the thread that collects, at most
every ``telemetry_ledger_interval_s``; a failure is counted and never raised.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from rawtap.consumer import SqliteSink, Worker
from rawtap.consumer.store import PostgresSink
from rawtap.shared import StreamNames, encode_entry
from tests.support.otel import memory_telemetry, value
from tests.support.pipeline import wait_until, worker_thread
from tests.support.records import make_record
from tests.support.streams import xadd_entry


def test_the_ledger_is_read_on_the_collecting_thread(
    sink_url: str,
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, bool]] = []
    for cls in (SqliteSink, PostgresSink):
        original = cls.reconcile

        def spy(self: Any, _original: Any = original) -> Any:
            calls.append((threading.current_thread().name, getattr(self, "_read_only", False)))
            return _original(self)

        monkeypatch.setattr(cls, "reconcile", spy)
    stream = StreamNames(stream_prefix).shard(0)
    for seq in (0, 2):  # seq 1 never arrives: a gap
        xadd_entry(redis_client, stream, encode_entry(make_record(seq=seq)))
    memory = memory_telemetry(telemetry_ledger_interval_s=0.001)
    worker = Worker(
        redis_url=redis_url,
        stream_prefix=stream_prefix,
        consumer="w-seam",
        block_ms=50,
        sink_url=sink_url,
        telemetry=memory.telemetry,
    )
    with worker_thread(worker):
        wait_until(lambda: worker.stats.acked >= 2 and worker.idle, what="two records acked")
        assert calls == []  # handling batches never reconciled
        data = memory.metrics()
    memory.telemetry.close()
    assert value(data, "rawtap.sink.gaps") == 1
    assert calls
    assert {name for name, _ in calls} == {threading.current_thread().name}
    if sink_url.startswith("postgresql"):
        # A handle of its own, read-only: the worker's connection (and lock) stays free.
        assert all(read_only for _, read_only in calls)


class _BrokenLedger(SqliteSink):
    def reconcile(self) -> Any:
        raise RuntimeError("the store is down")


def test_a_failing_ledger_read_is_counted_and_never_raised(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Any
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    xadd_entry(redis_client, stream, encode_entry(make_record(seq=0)))
    memory = memory_telemetry(telemetry_ledger_interval_s=60)
    with _BrokenLedger(tmp_path / "s.db") as sink:
        worker = Worker(
            redis_url=redis_url,
            stream_prefix=stream_prefix,
            consumer="w-broken",
            block_ms=50,
            sink=sink,
            telemetry=memory.telemetry,
        )
        with worker_thread(worker):
            wait_until(lambda: worker.stats.acked >= 1 and worker.idle, what="one record acked")
            memory.metrics()
            data = memory.metrics()  # within the interval: not read again
            assert worker.stats.stored == 1
    memory.telemetry.close()
    assert memory.telemetry.errors == 1
    assert value(data, "rawtap.worker.errors", rawtap__error__source="telemetry") == 1
    assert value(data, "rawtap.worker.records.stored") == 1
