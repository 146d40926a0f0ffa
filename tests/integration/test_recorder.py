"""The Recorder against real Redis: never blocks, never raises, bounded, flushes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from rawtap.producer import Failed, MemoryWarning, Recorded, Recorder
from rawtap.producer._writer import journal_dir
from rawtap.shared import (
    ProducerSettings,
    StreamNames,
    decode_entry,
    decode_report,
    is_report,
    shard_for,
)
from tests.support.pipeline import PROCESS_EXIT_S, wait_until
from tests.support.services import RedisServer, free_port, private_redis
from tests.support.streams import xrange_entries

BODY_2K = b'{"choices":[{"text":"' + b"x" * 2000 + b'"}]}'


def _entries(client: redis.Redis, prefix: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Record entries of the stream (producer reports left out)."""
    entries = xrange_entries(client, StreamNames(prefix).shard(0))
    return [(i, f) for i, f in entries if not is_report(f)]


def test_import_is_light_and_the_writer_starts_dozing_at_construction() -> None:
    script = textwrap.dedent(
        """
        import sys, threading, socket, time
        opened = []
        real = socket.socket.connect
        socket.socket.connect = lambda self, *a: opened.append(a) or real(self, *a)
        import rawtap.producer
        print("redis" in sys.modules, len(threading.enumerate()))
        from rawtap.producer import Recorder
        r = Recorder(redis_url="redis://127.0.0.1:1/0")
        time.sleep(0.2)
        print(sorted(t.name for t in threading.enumerate()), len(opened))
        r.record("openai", b"x")
        deadline = time.monotonic() + 30
        while not opened and time.monotonic() < deadline:
            time.sleep(0.01)
        r.close(0.1)
        print(len(opened) > 0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out[0] == "False 1"  # importing imports no Redis client and starts nothing
    # Construction starts the writer thread (off the first record()'s path); it dozes,
    # connecting to nothing, until a record comes.
    assert out[1] == "['MainThread', 'rawtap-writer'] 0"
    assert out[2] == "True"  # the record did make it try


@pytest.mark.parametrize("journal", [False, True], ids=["memory-only", "journal"])
def test_stalled_redis_never_blocks_the_caller_and_memory_stays_bounded(
    stream_prefix: str, journal: bool, tmp_path: Path
) -> None:
    with private_redis() as server:
        events: list[object] = []
        recorder = Recorder(
            redis_url=server.url,
            stream_prefix=stream_prefix,
            max_memory_mb=1,
            socket_timeout_s=1.0,
            close_timeout_s=10,
            spill_dir=str(tmp_path / "spill") if journal else "",
        )
        recorder.subscribe(events.append)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            slowest = 0.0
            offered = 3000  # ~6 MB offered against a 1 MB bound
            for i in range(offered):
                t0 = time.perf_counter()
                recorder.record("openai", BODY_2K, {"i": i}, "s")
                slowest = max(slowest, time.perf_counter() - t0)
                if i % 100 == 0:
                    time.sleep(0.01)  # give the writer a chance to spill
            stats = recorder.stats()
            # A call that waited on Redis would take the 1 s socket timeout; half
            # of it is slack for a loaded machine.
            assert slowest < 0.5, f"record() blocked for {slowest:.3f}s"
            assert stats.buffered_bytes <= 1024 * 1024
            refused = stats.dropped.get("buffer_full", 0)
            assert stats.accepted + refused == offered
            if journal:
                wait_until(
                    lambda: recorder.stats().spilled == recorder.stats().accepted,
                    20,
                    "everything accepted spilled",
                )
                assert recorder.stats().buffered_bytes == 0
            else:
                assert refused > 0
                wait_until(
                    lambda: any(isinstance(e, MemoryWarning) for e in events),
                    10,
                    "a memory warning",
                )
        finally:
            server.proc.send_signal(signal.SIGCONT)
        client = redis.Redis.from_url(server.url)
        accepted = recorder.stats().accepted
        wait_until(lambda: len(_entries(client, stream_prefix)) >= accepted, 30, "delivery")
        seqs = {decode_entry(f).seq for _, f in _entries(client, stream_prefix)}
        assert seqs == set(range(accepted))  # a retried batch may repeat, none is lost
        assert any(isinstance(e, Failed) and e.reason == "send_failed" for e in events)
        client.close()
        recorder.close()


def test_unreachable_redis_spills_and_replays_everything_once_it_comes_back(
    stream_prefix: str,
) -> None:
    port = free_port()
    recorder = Recorder(redis_url=f"redis://127.0.0.1:{port}/0", stream_prefix=stream_prefix)
    for i in range(200):
        assert recorder.record("anthropic", BODY_2K, {"i": i})
    wait_until(lambda: recorder.stats().spilled == 200, 10, "200 records spilled")
    assert recorder.stats().buffered_bytes == 0  # memory is free: the records are on disk
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(port, workdir).start()
        try:
            client = redis.Redis.from_url(server.url)
            wait_until(lambda: len(_entries(client, stream_prefix)) == 200, 20, "the replay")
            seqs = sorted(decode_entry(f).seq for _, f in _entries(client, stream_prefix))
            assert seqs == list(range(200))
            # The segment is deleted after its last entry is acknowledged: wait for that.
            wait_until(
                lambda: recorder.stats().replayed == 200 and recorder.stats().journal_bytes == 0,
                20,
                "the replayed segment removed",
            )
            client.close()
        finally:
            recorder.close()
            server.kill()


class _Exploding:
    def __len__(self) -> int:
        raise RuntimeError("boom")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def test_garbage_input_and_internal_failures_never_raise(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rawtap.producer._buffer import RecordBuffer

    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    assert recorder.record(None, _Exploding()) is True  # type: ignore[arg-type]
    assert recorder.record("openai", b"x", object(), 123) is True  # type: ignore[arg-type]
    assert recorder.record("openai", b"x", chunks=[1, 2]) is False  # type: ignore[list-item]
    assert recorder.record("openai", b"x", bogus_detail=1) is True  # type: ignore[call-arg]
    assert recorder.record("openai", b"x", end_state="weird") is True
    assert recorder.stats().internal_errors == 1  # the chunks of ints

    def broken_put(*_a: object) -> int:
        raise MemoryError("simulated")

    with monkeypatch.context() as patch:
        patch.setattr(RecordBuffer, "put", broken_put)
        assert recorder.record("openai", b"x") is False
    assert recorder.stats().internal_errors == 2
    assert recorder.flush(10)
    entries = [decode_entry(f) for _, f in _entries(redis_client, stream_prefix)]
    assert len(entries) == 4
    assert entries[0].body.startswith(b"<unrepresentable _Exploding")
    assert entries[0].provider == "unknown"
    assert entries[1].session_id == "123"
    assert entries[1].metadata["value"].startswith("<object object")
    assert entries[2].error == "unknown record details ignored: bogus_detail"
    assert entries[3].end_state.value == "error"
    recorder.close()


def test_disabled_and_not_allowed_providers_are_no_ops(redis_url: str, stream_prefix: str) -> None:
    off = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, enabled=False)
    assert off.record("openai", b"x") is False
    assert off._writer is None  # no thread either
    assert off.stats().skipped == 1
    assert off.stats().accepted == 0
    only = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, providers="anthropic")
    assert only.record("openai", b"x") is False
    assert only.record("anthropic", b"x") is True
    assert only.close(10)
    assert only.stats().sent == 1


def test_hooks_get_events_off_the_hot_path_and_their_errors_are_swallowed(
    redis_url: str, stream_prefix: str
) -> None:
    seen: list[Recorded] = []
    threads: set[str] = set()

    def good(event: object) -> None:
        threads.add(threading.current_thread().name)
        if isinstance(event, Recorded):
            seen.append(event)

    def bad(event: object) -> None:
        raise ValueError("observer bug")

    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    recorder.subscribe(bad)
    recorder.subscribe(good)
    for _ in range(10):
        recorder.record("gemini", b"{}")
    assert recorder.close(10)
    assert sum(len(e.record_ids) for e in seen) == 10
    assert threads == {"rawtap-writer"}
    assert recorder.stats().hook_errors >= 1


def test_seq_is_gapless_across_threads(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)

    def produce() -> None:
        for i in range(1000):
            recorder.record("openai", b"%d" % i)

    threads = [threading.Thread(target=produce) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert recorder.close(20)
    seqs = sorted(decode_entry(f).seq for _, f in _entries(redis_client, stream_prefix))
    assert seqs == list(range(6000))


def test_close_and_context_manager_flush_and_async_interface_records(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    with Recorder(redis_url=redis_url, stream_prefix=stream_prefix) as recorder:
        for _ in range(1000):
            recorder.record("openai", BODY_2K)
    assert len(_entries(redis_client, stream_prefix)) == 1000
    assert recorder.close() is True  # idempotent
    assert recorder.record("openai", b"late") is False  # closed: a no-op, not an error

    async def story_interface() -> bool:
        async with Recorder(redis_url=redis_url, stream_prefix=stream_prefix) as r:
            return await r.record_response("anthropic", b"{}", {"endpoint": "/v1/messages"}, "u1")

    assert asyncio.run(story_interface()) is True
    last = decode_entry(_entries(redis_client, stream_prefix)[-1][1])
    assert (last.provider, last.session_id, last.metadata) == (
        "anthropic",
        "u1",
        {"endpoint": "/v1/messages"},
    )


def test_close_with_redis_down_and_no_journal_returns_within_its_bound_and_counts() -> None:
    recorder = Recorder(redis_url=f"redis://127.0.0.1:{free_port()}/0", spill_dir="")
    for _ in range(50):
        recorder.record("openai", b"x")
    t0 = time.monotonic()
    assert recorder.close(0.5) is False
    assert time.monotonic() - t0 < 3
    stats = recorder.stats()
    assert stats.dropped["unsent_at_close"] == 50
    assert stats.buffered_bytes == 0


def test_process_exit_flushes_what_was_accepted(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    script = textwrap.dedent(
        f"""
        from rawtap.producer import Recorder
        r = Recorder(redis_url={redis_url!r}, stream_prefix={stream_prefix!r})
        for i in range(500):
            r.record("openai", b"x" * 2000, {{"i": i}})
        """  # exits without close(): the atexit hook must flush
    )
    subprocess.run(
        [sys.executable, "-c", script], check=True, timeout=PROCESS_EXIT_S, env={**os.environ}
    )
    assert len(_entries(redis_client, stream_prefix)) == 500


def test_oversized_bodies_are_truncated_with_a_marker(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, max_record_bytes=4096)
    recorder.record("openai", b"a" * 10_000, request_body=b"r" * 100)
    recorder.record("openai", None, chunks=[b"b" * 3000, b"c" * 3000], request_body=b"q" * 9000)
    assert recorder.close(10)
    first, second = (decode_entry(f) for _, f in _entries(redis_client, stream_prefix))
    assert first.truncated
    assert first.original_size == 10_000
    assert len(first.body) + len(first.request_body) == 4096
    assert first.request_body == b"r" * 100
    assert second.truncated
    assert (second.original_size, second.original_request_size) == (6000, 9000)
    assert len(second.request_body) == 2048
    assert [c.size for c in second.chunks] == [2048]
    assert recorder.stats().truncated == 2


@pytest.mark.parametrize(
    "bad",
    [{"max_memory_mb": 0}, {"redis_url": "mysql://x"}, {"redis_url": "redis://127.0.0.1:63x9/0"}],
)
def test_invalid_settings_fail_at_construction_not_later(bad: dict[str, Any]) -> None:
    from rawtap.shared import ConfigError

    with pytest.raises(ConfigError):
        Recorder(**bad)


def test_reports_go_out_under_sustained_load_not_only_when_idle(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    # One record per round trip: the writer stays busy for seconds, never idle.
    recorder = Recorder(
        redis_url=redis_url, stream_prefix=stream_prefix, report_interval_s=0.1, send_batch_size=1
    )
    for _ in range(50_000):
        recorder.record("openai", b"x" * 100)
    stream = StreamNames(stream_prefix).shard(0)

    def reports() -> list[dict[bytes, bytes]]:
        return [f for _, f in xrange_entries(redis_client, stream) if is_report(f)]

    # A report naming every accepted record, while the writer still had records to send.
    wait_until(
        lambda: any(b'"next_seq":50000' in f[b"env"] for f in reports()), 30, "a report of 50000"
    )
    still_busy = recorder.stats().buffered_records
    recorder.close(30)
    assert still_busy > 0, "the writer went idle: the test proves nothing"
    # They repeat only when something changed (the final one at close aside).
    states = [(r.next_seq, r.dropped) for r in map(decode_report, reports()) if not r.final]
    assert all(a != b for a, b in itertools.pairwise(states)), states


def test_a_version1_journal_left_by_an_earlier_release_replays_to_each_records_shard(
    redis_url: str, stream_prefix: str, tmp_path: Path
) -> None:
    """Frames written before they carried their route: the shard comes from the envelope."""
    settings = ProducerSettings(
        redis_url=redis_url, stream_prefix=stream_prefix, spill_dir=str(tmp_path), shards=2
    )
    directory = journal_dir(settings)
    assert directory is not None
    directory.mkdir(parents=True)
    frames = b""
    for i in range(20):
        entry = {b"v": b"1", b"env": orjson.dumps({"session_id": f"s{i}", "seq": i})}
        payload = struct.pack("<H", len(entry)) + b"".join(
            struct.pack("<HI", len(k), len(v)) + k + v for k, v in entry.items()
        )
        frames += struct.pack("<IIq", len(payload), zlib.crc32(payload), i) + payload
    (directory / ("e" * 16 + "-0.seg")).write_bytes(frames)
    names = StreamNames(stream_prefix)
    with Recorder(settings) as recorder, redis.Redis.from_url(redis_url) as client:
        recorder.record("openai", b"{}")  # starts the writer, which replays the segment

        def left_over(shard: int) -> list[str]:
            """Sessions of the old segment's entries on ``shard`` (not the new record's)."""
            envelopes = [
                orjson.loads(f[b"env"]) for _, f in xrange_entries(client, names.shard(shard))
            ]
            return sorted(e["session_id"] for e in envelopes if e.get("session_id"))

        wait_until(lambda: len(left_over(0) + left_over(1)) == 20, 10, "the old segment replayed")
        for shard in (0, 1):
            want = sorted(f"s{i}" for i in range(20) if shard_for(f"s{i}", i, 2) == shard)
            assert left_over(shard) == want
