"""The Worker against real Redis and SQLite: idempotence, pending first, signals, bad entries."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from rawtap.consumer import SinkError, SqliteSink, Worker
from rawtap.consumer.derivation import Derived
from rawtap.producer import Recorder
from rawtap.shared import Record, StreamNames, encode_entry, make_record_id
from tests.support.pipeline import PROCESS_EXIT_S, drain, spawn_worker, wait_until, worker_thread
from tests.support.streams import xadd_entry, xrange_entries


def _record(seq: int, producer_id: str = "f" * 16, body: bytes = b"{}") -> Record:
    now = time.time_ns()
    return Record(
        record_id=make_record_id(now, producer_id, seq),
        producer_id=producer_id,
        seq=seq,
        provider="openai",
        body=body,
        started_at_ns=now,
        captured_at_ns=now,
    )


def _worker(redis_url: str, prefix: str, sink: SqliteSink, **kw: Any) -> Worker:
    return Worker(
        redis_url=redis_url,
        stream_prefix=prefix,
        consumer=kw.pop("consumer", "w1"),
        block_ms=50,
        sink=sink,
        **kw,
    )


def _pending(client: redis.Redis, stream: str, consumer: str | None = None) -> int:
    info = client.xpending(stream, "rawtap")
    if consumer is None:
        return int(info["pending"])
    return sum(int(c["pending"]) for c in info["consumers"] if c["name"] == consumer.encode())


def test_same_entry_twice_makes_one_row(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    rec = _record(0)
    xadd_entry(redis_client, stream, encode_entry(rec))
    xadd_entry(redis_client, stream, encode_entry(rec))  # producer retry
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _worker(redis_url, stream_prefix, sink)
        with worker_thread(worker):
            wait_until(lambda: worker.stats.acked == 2, what="both entries acknowledged")
        assert sink.count() == 1
        assert (worker.stats.stored, worker.stats.duplicates) == (1, 1)
        assert sink.get(rec.record_id) == rec
    assert _pending(redis_client, stream) == 0


def test_records_written_before_any_worker_existed_are_consumed(
    redis_url: str,
    stream_prefix: str,
    tmp_path: Path,
) -> None:
    with Recorder(redis_url=redis_url, stream_prefix=stream_prefix) as recorder:
        for i in range(300):
            recorder.record("openai", b"%d" % i)
    with (
        SqliteSink(tmp_path / "s.db") as sink,
        worker_thread(_worker(redis_url, stream_prefix, sink)),
    ):
        drain(sink, recorder.producer_id, 300)


def test_restarted_worker_processes_its_pending_entries_before_new_ones(
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    redis_client.xgroup_create(stream, "rawtap", id="0", mkstream=True)
    old = [_record(i) for i in range(5)]
    for rec in old:
        xadd_entry(redis_client, stream, encode_entry(rec))
    # A worker named w-crash read them and died before committing.
    redis_client.xreadgroup("rawtap", "w-crash", {stream: ">"}, count=10)
    new = [_record(i) for i in range(5, 10)]
    for rec in new:
        xadd_entry(redis_client, stream, encode_entry(rec))
    assert _pending(redis_client, stream, "w-crash") == 5

    with SqliteSink(tmp_path / "s.db") as sink:
        with worker_thread(_worker(redis_url, stream_prefix, sink, consumer="w-crash")):
            drain(sink, "f" * 16, 10)
        persisted = {rec.seq: at for rec, at in sink.iter_stored()}
    assert max(persisted[r.seq] for r in old) < min(persisted[r.seq] for r in new)
    assert _pending(redis_client, stream) == 0


class _FlakySink(SqliteSink):
    """A real SQLite sink whose first ``failures`` commits fail."""

    def __init__(self, path: str, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
        *,
        envelopes: Sequence[bytes] | None = None,
    ) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise SinkError("simulated commit failure")
        return super().write(records, persisted_at_ns, derived, envelopes=envelopes)


def test_failed_commits_acknowledge_nothing_and_are_retried(
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    sink = _FlakySink(str(tmp_path / "s.db"), failures=3)
    worker = _worker(redis_url, stream_prefix, sink, batch_size=20)
    for i in range(50):
        xadd_entry(redis_client, stream, encode_entry(_record(i)))
    pending_seen: list[int] = []
    with worker_thread(worker):
        wait_until(lambda: worker.stats.sink_errors >= 1, what="a failed commit")
        pending_seen.append(_pending(redis_client, stream))
        drain(sink, "f" * 16, 50)
        wait_until(lambda: _pending(redis_client, stream) == 0, what="nothing pending")
    assert pending_seen[0] > 0  # the failed batch stayed pending, unacknowledged
    assert worker.stats.sink_errors == 3
    assert sink.count() == 50
    sink.close()


def test_undecodable_entries_are_dead_lettered_and_others_keep_flowing(
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    names = StreamNames(stream_prefix)
    good = _record(0)
    bad_id = redis_client.xadd(
        names.shard(0), {b"v": b"1", b"env": b"\xff not json", b"req": b"", b"body": b""}
    )
    xadd_entry(redis_client, names.shard(0), encode_entry(good))
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _worker(redis_url, stream_prefix, sink)
        with worker_thread(worker):
            drain(sink, good.producer_id, 1)
            wait_until(lambda: worker.stats.dead_lettered == 1, what="a dead letter")
    ((_letter_id, letter),) = xrange_entries(redis_client, names.dead_letters)
    assert letter[b"origin_id"] == bad_id
    assert b"not valid JSON" in letter[b"error"]
    assert letter[b"f:env"] == b"\xff not json"  # the original bytes, kept for requeue
    assert _pending(redis_client, names.shard(0)) == 0


def test_lost_group_is_recreated_and_new_records_flow(
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _worker(redis_url, stream_prefix, sink)
        with worker_thread(worker):
            xadd_entry(redis_client, stream, encode_entry(_record(0)))
            drain(sink, "f" * 16, 1)
            redis_client.delete(stream)  # what a Redis restarted without persistence looks like
            wait_until(lambda: worker.stats.groups_created == 2, 20, "the group recreated")
            xadd_entry(redis_client, stream, encode_entry(_record(1)))
            drain(sink, "f" * 16, 2)
        assert worker.stats.groups_created == 2


def test_sigterm_mid_stream_commits_the_batch_in_hand_and_exits_zero(
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    db = tmp_path / "w.db"
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 200_000:
            recorder.record("openai", b"x" * 500, {"i": i})
            i += 1
            if i % 500 == 0:
                time.sleep(0.005)

    producer = threading.Thread(target=produce)
    producer.start()
    proc = spawn_worker(
        {
            "RAWTAP_REDIS_URL": redis_url,
            "RAWTAP_STREAM_PREFIX": stream_prefix,
            "RAWTAP_SINK_URL": f"sqlite:///{db}",
            "RAWTAP_CONSUMER": "w-term",
            "RAWTAP_BATCH_SIZE": "100",
        },
    )
    try:
        wait_until(lambda: db.exists() and SqliteSink(db).count() > 500, 30, "rows stored")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=PROCESS_EXIT_S)
    finally:
        stop.set()
        producer.join()
        recorder.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "SIGTERM received" in stderr
    assert "stopped after" in stderr
    assert "acked=" in stderr
    assert _pending(redis_client, stream, "w-term") == 0
    with SqliteSink(db) as sink:
        stored = sink.count()
        acked = int(stderr.split("acked=")[1].split()[0])
        assert stored == acked  # every acknowledged entry was committed, nothing more
    assert stored > 500


@pytest.mark.parametrize("block_ms", [50])
def test_idle_worker_reports_idle_and_logs_nothing(
    redis_url: str,
    stream_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    block_ms: int,
) -> None:
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _worker(redis_url, stream_prefix, sink)
        with caplog.at_level("DEBUG", logger="rawtap"), worker_thread(worker):
            wait_until(lambda: worker.idle, what="idle")
            time.sleep(block_ms * 3 / 1000)
        warnings = [r for r in caplog.records if r.levelname in {"WARNING", "ERROR"}]
        assert warnings == []
        assert worker.stats.redis_errors == 0


def test_garbage_that_the_ledger_cannot_hold_never_stops_the_worker(
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    import orjson

    names = StreamNames(stream_prefix)
    # Schema-invalid, with a seq no 64-bit column holds and a NUL in its id.
    envelope = orjson.dumps({"producer_id": "p\x00", "seq": 2**64 - 1, "record_id": 7})
    redis_client.xadd(
        names.shard(0),
        {b"v": b"1", b"env": envelope, b"req": b"", b"body": b"", b"rid": b"r\x00id"},
    )
    good = _record(0)
    xadd_entry(redis_client, names.shard(0), encode_entry(good))
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _worker(redis_url, stream_prefix, sink)
        with worker_thread(worker):
            drain(sink, good.producer_id, 1)
            wait_until(lambda: worker.stats.dead_lettered == 1, what="the dead letter")
        assert sink.ledger_counts()["dead_lettered"] == 1
    assert _pending(redis_client, names.shard(0)) == 0
