"""RELIABILITY.md's properties, one test each, every one injecting its fault.

Each scenario ends with ``Chaos.reconcile()``: per producer, accepted =
stored + dead-lettered + lost-with-reason, disjoint, one row per seq. The
figures each scenario printed are collected in docs/reliability.md.
"""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from rawtap.consumer import SqliteSink
from rawtap.consumer.store import ProducerBalance
from rawtap.shared import Record, encode_entry
from tests.support.chaos import Chaos, produce
from tests.support.pipeline import PROCESS_EXIT_S, rawtap_command, wait_until

pytestmark = pytest.mark.chaos
N = 10_000


def _report(name: str, chaos: Chaos) -> None:
    outcome = chaos.reconcile()
    print(f"\n[{name}] {outcome.line()}")


def _stored(chaos: Chaos) -> int:
    if not chaos.db.exists():
        return 0
    with SqliteSink(chaos.db) as sink:
        return sink.count()


def _when_final(chaos: Chaos, producer_ids: list[str], rows: int) -> dict[str, ProducerBalance]:
    """Balances once ``rows`` are stored and each producer's final report is accounted.

    A report is an entry of its own, committed in a batch of its own, possibly after
    the last row: waiting for the rows alone reads the ledger too early.
    """
    balances: dict[str, ProducerBalance] = {}

    def final() -> bool:
        nonlocal balances
        if _stored(chaos) != rows:
            return False
        with SqliteSink(chaos.db) as sink:
            balances = {b.producer_id: b for b in sink.reconcile()}
        return all(pid in balances and balances[pid].final for pid in producer_ids)

    wait_until(final, 60, f"{rows} rows and the final reports of {producer_ids}")
    return balances


def test_p01a_no_loss_on_worker_crash(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    feeder = threading.Thread(target=produce, args=(recorder, N), kwargs={"rate_per_s": 8000})
    feeder.start()
    # w1 dies right after a commit, before its XACK; w2 is kill -9'd at random moments.
    chaos.start_worker("w1", CHAOS_CRASH_AFTER_COMMITS=3, batch_size=100)
    chaos.start_worker("w2", batch_size=100)
    rng = random.Random(1)
    for _ in range(3):
        wait_until(lambda: _stored(chaos) > 0, 30, "some rows")
        time.sleep(rng.uniform(0.05, 0.4))
        chaos.kill_worker("w2")
        chaos.start_worker("w2", batch_size=100)
    assert chaos.workers["w1"].wait(30) == -signal.SIGKILL
    assert chaos.pending("w1") > 0  # it committed a batch it never acknowledged
    chaos.start_worker("w1", batch_size=100)  # same name: reads its pending list first
    feeder.join()
    chaos.drain()
    assert chaos.pending() == 0
    _report("p01 worker crash", chaos)


def test_p02_exactly_once_in_the_sink(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    chaos.start_worker("w1", CHAOS_SLEEP_BEFORE_COMMIT_S=0.05, batch_size=200)
    chaos.start_worker("w2", batch_size=200)
    produce(recorder, N)
    wait_until(lambda: chaos.pending("w1") > 0, 20, "w1 holding entries")
    client = chaos.client()
    # Force redelivery: hand w1's pending entries to w2 while w1 still works on them,
    # batch after batch, until 3 batches were forced or there is nothing left to force.
    forced = 0

    def force() -> bool:
        nonlocal forced
        pending = client.xpending_range(chaos.stream, "rawtap", "-", "+", 200, "w1")
        ids = [p["message_id"] for p in pending]
        if ids:
            forced += len(client.xclaim(chaos.stream, "rawtap", "w2", 0, ids))
        return forced >= 600 or chaos.drained()

    wait_until(force, 60, "w1's entries forced to w2")
    client.close()
    assert forced > 0
    chaos.drain()
    with sqlite3.connect(chaos.db) as conn:
        ((rows, ids),) = conn.execute("SELECT count(*), count(DISTINCT record_id) FROM records")
    assert rows == ids == N
    _report("p02 forced redelivery", chaos)


def test_p03_ack_only_after_commit(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    chaos.start_worker("w1", CHAOS_FAIL_FIRST_COMMIT_PCT=5, batch_size=50)
    produce(recorder, N // 2)
    chaos.drain()
    assert "chaos: simulated commit failure" in chaos.worker_log("w1")
    assert "nothing acknowledged" in chaos.worker_log("w1")
    assert _stored(chaos) == N // 2
    _report("p03 failed commits", chaos)


def test_p04_dead_consumer_reclaimed(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    # w1 reads a batch, then sits in a slow commit: freeze it there.
    chaos.start_worker("w1", CHAOS_SLEEP_BEFORE_COMMIT_S=2, batch_size=300)
    produce(recorder, 1000)
    wait_until(lambda: chaos.pending("w1") >= 300, 20, "w1 holding entries")
    chaos.signal_worker("w1", signal.SIGSTOP)
    held = chaos.pending("w1")
    chaos.start_worker("w2", claim_idle_ms=1000, batch_size=300)
    wait_until(lambda: chaos.pending("w1") == 0 and chaos.lag() == 0, 30, "reclaim")
    assert "reclaimed" in chaos.worker_log("w2")
    chaos.signal_worker("w1", signal.SIGCONT)  # w1 wakes up and commits the same rows again
    wait_until(
        lambda: re.search(r"committed [1-9]\d* records, 0 new", chaos.worker_log("w1")) is not None,
        30,
        "w1's late commit of rows w2 already stored",
    )
    chaos.drain()
    assert held >= 300
    assert len(chaos.stored_seqs(recorder.producer_id)) == 1000  # no duplicate rows
    _report("p04 SIGSTOP reclaim", chaos)


def test_p05_poison_goes_to_dead_letters_without_a_hot_loop(chaos: Chaos) -> None:
    client = chaos.client()
    client.xadd(chaos.stream, {b"v": b"1", b"env": b"{broken", b"req": b"", b"body": b""})
    client.xadd(
        chaos.stream,
        {b"v": b"1", b"env": orjson.dumps({"seq": "x"}), b"req": b"", b"body": b"", b"rid": b"r"},
    )
    recorder = chaos.recorder()
    produce(recorder, 500, poison={250})  # crashes whichever worker commits it
    recorder.close()
    max_deliveries = 3
    restarts = 0
    chaos.start_worker("w1", CHAOS_CRASH_ON_POISON=1, batch_size=1, max_deliveries=max_deliveries)
    while restarts < 10:
        proc = chaos.workers["w1"]
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            if chaos.lag() == 0 and chaos.pending() == 0:
                break
            continue
        restarts += 1  # crashed on the poison record: restart it, as a supervisor would
        chaos.start_worker(
            "w1", CHAOS_CRASH_ON_POISON=1, batch_size=1, max_deliveries=max_deliveries
        )
    chaos.drain()
    assert restarts == max_deliveries  # then it was dead-lettered, not retried forever
    letters = client.xrange(f"{chaos.prefix}:{{dead}}")
    errors = [f[b"error"].decode() for _, f in letters]
    assert len(letters) == 3
    assert any("not valid JSON" in e for e in errors)
    assert any("invalid record" in e for e in errors)
    assert any(f"delivered {max_deliveries + 1} times" in e for e in errors)
    client.close()
    outcome = chaos.reconcile()
    assert (outcome.stored, outcome.dead_lettered) == (499, 1)
    _report("p05 poison", chaos)


@pytest.mark.parametrize("backpressure", [True, False], ids=["backpressure", "no-backpressure"])
def test_p06a_trimming_is_never_silent(chaos: Chaos, backpressure: bool) -> None:
    cap = 1000
    recorder = chaos.recorder(
        maxlen=cap, backpressure=backpressure, backlog_check_s=0.05, send_batch_size=50
    )
    # A group exists but its consumers are stopped: 3x the cap goes in.
    with chaos.client() as client:
        client.xgroup_create(chaos.stream, "rawtap", id="0", mkstream=True)
    produce(recorder, 3 * cap, size=200, rate_per_s=3000)
    if backpressure:
        wait_until(lambda: recorder.stats().spilled > 0, 10, "spilling")
        assert recorder.stats().backpressured
    else:
        recorder.flush()
        early = chaos.stats(store=False)  # no worker yet: no store either
        assert "entries were trimmed by MAXLEN before a group read them" in early
    chaos.start_worker("w1")
    chaos.drain()
    outcome = chaos.reconcile()
    if backpressure:
        assert outcome.lost == 0
        assert outcome.stored == 3 * cap
    else:
        assert outcome.lost > 0
        assert outcome.lost == outcome.lost_by_reason["missing"] == 3 * cap - outcome.stored
        stats = chaos.stats(code=5)  # lost records: the monitor's exit code
        assert f"lost {outcome.lost} (missing {outcome.lost})" in stats
    _report(f"p06 trimming, backpressure={backpressure}", chaos)


def test_p07_trimmed_pending_entries_are_tolerated(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    produce(recorder, 300, size=100)
    recorder.flush()  # in Redis; its report comes at close, after the trim
    with chaos.client() as client:
        client.xgroup_create(chaos.stream, "rawtap", id="0")
        client.xreadgroup("rawtap", "w1", {chaos.stream: ">"}, count=100)  # w1 read 100, died
        client.xtrim(chaos.stream, maxlen=0, approximate=False)  # and they were trimmed
        client.xadd(chaos.stream, encode_entry(_late_record()))
    recorder.close()
    chaos.start_worker("w1")
    wait_until(lambda: chaos.pending() == 0 and chaos.lag() == 0, 20, "drain")
    assert chaos.stop_worker("w1") == 0
    assert "trimmed_lost=100" in chaos.worker_log("w1")
    with SqliteSink(chaos.db) as sink:
        assert sink.ledger_counts()["trimmed"] == 100
    outcome = chaos.reconcile()
    assert outcome.lost == 300
    assert outcome.stored == 0
    _report("p07 trimmed pending", chaos)


def _late_record() -> Record:
    from rawtap.shared import Record, make_record_id

    now = time.time_ns()
    return Record(
        record_id=make_record_id(now, "e" * 16, 0),
        producer_id="e" * 16,
        seq=0,
        provider="openai",
        started_at_ns=now,
        captured_at_ns=now,
    )


def test_p08a_bounded_memory_in_the_service(chaos: Chaos, tmp_path: Path) -> None:
    redis_proc = chaos.server.proc
    assert redis_proc is not None
    script = textwrap.dedent(
        f"""
        import os, signal, time, resource
        from rawtap.producer import Recorder
        def rss_mb():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        r = Recorder(redis_url={chaos.redis.url!r}, stream_prefix={chaos.prefix!r},
                     max_memory_mb=8, spill_dir={str(tmp_path / "spill")!r}, spill_max_mb=16,
                     socket_timeout_s=0.5)
        body = b"z" * 2000
        for i in range(5000):
            r.record("openai", body)
        r.flush(10)
        base = rss_mb()
        os.kill({redis_proc.pid}, signal.SIGSTOP)
        slowest, peak = 0.0, base
        for i in range(100_000):  # ~200 MB offered: 10x what memory and journal may hold
            t0 = time.perf_counter()
            r.record("openai", body)
            slowest = max(slowest, time.perf_counter() - t0)
            if i % 5000 == 0:
                peak = max(peak, rss_mb())
            if i % 1000 == 999:
                time.sleep(0.03)  # ~3 s of load: the writer gets to spill meanwhile
        time.sleep(1.0)
        peak = max(peak, rss_mb())
        os.kill({redis_proc.pid}, signal.SIGCONT)
        s = r.stats()
        print(base, peak, slowest, s.accepted, s.spilled, dict(s.dropped))
        r.close(30)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    ).stdout.split(maxsplit=5)
    base, peak, slowest = float(out[0]), float(out[1]), float(out[2])
    dropped = eval(out[5])  # noqa: S307 - our own script's dict repr
    assert peak - base <= 8 + 30, f"RSS grew {peak - base:.1f} MB over an 8 MB bound"
    assert slowest < 0.1, f"a record() call took {slowest * 1000:.1f} ms"
    assert int(out[4]) > 0  # the overflow spilled first …
    assert dropped.get("journal_full", 0) + dropped.get("buffer_full", 0) > 0  # … then counted
    print(
        f"\n[p08 memory] rss +{peak - base:.1f} MB, slowest call {slowest * 1e6:.0f} us, "
        f"spilled {out[4]}, dropped {dropped}"
    )


@pytest.mark.redis_args("--enable-debug-command", "yes")
@pytest.mark.parametrize("journal", [True, False])
def test_p09_producer_retry_is_idempotent(chaos: Chaos, journal: bool) -> None:
    recorder = chaos.recorder(socket_timeout_s=0.3, **({} if journal else {"spill_dir": ""}))
    chaos.start_worker("w1")
    produce(recorder, 1000, size=500)

    def stall() -> None:
        with redis.Redis.from_url(chaos.redis.url, socket_timeout=10) as client:
            client.execute_command("DEBUG", "SLEEP", "2")

    def asleep() -> bool:  # Redis does not answer a PING: DEBUG SLEEP has begun
        with redis.Redis.from_url(chaos.redis.url, socket_timeout=0.2) as probe:
            try:
                probe.ping()
            except redis.TimeoutError:
                return True
            return False

    staller = threading.Thread(target=stall)
    staller.start()
    wait_until(asleep, 10, "Redis asleep")
    produce(recorder, 1000, size=500)  # these batches time out, yet Redis runs them later
    staller.join()
    chaos.drain()
    assert recorder.stats().send_failures > 0  # the stall hit the producer
    with chaos.client() as client:
        entries = client.xlen(chaos.stream)  # may hold a timed-out batch twice
    outcome = chaos.reconcile()
    assert outcome.stored == 2000
    assert outcome.lost == 0
    print(f"\n[p09 DEBUG SLEEP, journal={journal}] stream entries {entries} for 2000 records")
    _report(f"p09 retry, journal={journal}", chaos)


def test_p10_idle_is_quiet(chaos: Chaos) -> None:
    chaos.start_worker("w1", block_ms=200)
    with chaos.client() as client:

        def reads() -> int:  # XREADGROUP calls the server has answered so far
            stats = client.info("commandstats").get("cmdstat_xreadgroup", {})
            return int(stats.get("calls", 0))

        wait_until(lambda: client.exists(chaos.stream) == 1, 10, "the group")
        settled = reads() + 2
        wait_until(lambda: reads() >= settled, 30, "the worker's first idle reads")
        before = int(client.info("stats")["total_connections_received"])
        idle = reads() + 5
        wait_until(lambda: reads() >= idle, 30, "5 more idle reads")  # 5 blocking rounds
        after = int(client.info("stats")["total_connections_received"])
    assert chaos.stop_worker("w1") == 0
    log = chaos.worker_log("w1")
    assert "WARNING" not in log, log
    assert "ERROR" not in log, log
    assert after == before  # no reconnect churn while idle


@pytest.mark.redis_args("--appendonly", "yes", "--appendfsync", "everysec")
def test_p11_redis_crash_with_aof(chaos: Chaos) -> None:
    recorder = chaos.recorder(socket_timeout_s=0.5)
    chaos.start_worker("w1")
    produce(recorder, N // 2, rate_per_s=5000)
    # Everything sent so far is consumed: what AOF everysec may lose is then only
    # delivery state (redelivered, absorbed by the sink), never an unread record.
    wait_until(lambda: _stored(chaos) == N // 2, 90, "the first half stored")
    chaos.server.kill()
    fed = N // 2
    deadline = time.monotonic() + 60
    while recorder.stats().spilled == 0:  # decided by the event, not by a sleep
        assert time.monotonic() < deadline, "nothing spilled while Redis was down"
        assert fed < N, "every record was fed and none spilled while Redis was down"
        produce(recorder, 10, size=2000)
        fed += 10
        recorder.flush(5)
    chaos.redis.start()
    produce(recorder, N - fed)
    chaos.drain(120)
    outcome = chaos.reconcile()
    assert recorder.stats().spilled > 0  # the outage went to the journal
    assert outcome.accepted == N
    assert outcome.stored == N, outcome.line()  # nothing lost, exactly
    _report("p11 kill -9 redis (AOF everysec)", chaos)


def _group_creations(log: list[str], stream: str) -> list[tuple[int, str]]:
    """(line number, level) of each "created consumer group rawtap on ``stream``" log line."""
    pattern = re.compile(r" (INFO|WARNING) [\w.]+: created consumer group rawtap on (\S+)$")
    return [
        (i, m[1]) for i, line in enumerate(log) if (m := pattern.search(line)) and m[2] == stream
    ]


def test_p12_group_or_stream_lost(chaos: Chaos) -> None:
    recorder = chaos.recorder(socket_timeout_s=0.5)
    chaos.start_worker("w1")
    produce(recorder, 1000)
    wait_until(lambda: _stored(chaos) == 1000, 30, "rows")
    before_restart = len(chaos.worker_log("w1").splitlines())
    chaos.server.kill()
    chaos.redis.start()  # no persistence: the stream and the group are gone
    produce(recorder, 1000)
    chaos.drain()
    # The first creation is routine (INFO); the recreation after the restart is
    # called out (WARNING), once.
    created = _group_creations(chaos.worker_log("w1").splitlines(), chaos.stream)
    assert [level for _, level in created] == ["INFO", "WARNING"], created
    assert created[0][0] < before_restart <= created[1][0]
    with chaos.client() as client:
        assert [g["name"] for g in client.xinfo_groups(chaos.stream)] == [b"rawtap"]
    assert chaos.workers["w1"].poll() is None  # no crash loop
    outcome = chaos.reconcile()
    assert outcome.stored == 2000
    _report("p12 redis restarted empty", chaos)


def test_p13_graceful_stop(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    chaos.start_worker("w1", CHAOS_SLEEP_BEFORE_COMMIT_S=0.3, batch_size=500)
    produce(recorder, 2000)
    wait_until(lambda: chaos.pending("w1") > 0, 20, "a batch in hand")
    t0 = time.monotonic()
    assert chaos.stop_worker("w1", timeout=10) == 0
    assert time.monotonic() - t0 < 5
    assert chaos.pending("w1") == 0
    assert "SIGTERM received" in chaos.worker_log("w1")
    chaos.start_worker("w2")
    chaos.drain()
    _report("p13 SIGTERM", chaos)


def test_p14_restart_replays_own_pending_first(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    chaos.start_worker("w1", CHAOS_SLEEP_BEFORE_COMMIT_S=5, batch_size=300)
    produce(recorder, 300)
    wait_until(lambda: chaos.pending("w1") == 300, 20, "w1 holding 300")
    chaos.kill_worker("w1")
    recorder.flush()
    produce(recorder, 300)  # new entries after the crash
    chaos.start_worker("w1", batch_size=300)
    chaos.drain()
    with sqlite3.connect(chaos.db) as conn:
        rows = conn.execute("SELECT seq, persisted_at_ns FROM records").fetchall()
    old = [at for seq, at in rows if seq < 300]
    new = [at for seq, at in rows if seq >= 300]
    assert max(old) <= min(new)
    _report("p14 restart with pending", chaos)


def test_p15_scale_in_drops_no_work(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    settings = {"batch_size": 200, "claim_idle_ms": 1000, "consumer_expiry_ms": 1500}
    for name in ("w2", "w3"):  # the two that will be scaled away, slow to commit
        chaos.start_worker(name, CHAOS_SLEEP_BEFORE_COMMIT_S=3, **settings)
    produce(recorder, 3000)
    wait_until(lambda: chaos.pending("w2") > 0 and chaos.pending("w3") > 0, 20, "work in hand")
    chaos.start_worker("w1", **settings)
    chaos.kill_worker("w2")  # scale-in: 3 workers -> 1, with entries pending on the removed
    chaos.kill_worker("w3")
    chaos.drain()

    def consumers() -> set[str]:
        with chaos.client() as client:
            return {c["name"].decode() for c in client.xinfo_consumers(chaos.stream, "rawtap")}

    wait_until(lambda: consumers() == {"w1"}, 20, "dead consumers removed")
    outcome = chaos.reconcile()
    assert outcome.stored == 3000
    _report("p15 scale-in 3->1", chaos)


def test_p16_no_loss_before_any_worker(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    produce(recorder, N)
    recorder.flush()
    with chaos.client() as client:
        assert client.xinfo_groups(chaos.stream) == []
    chaos.start_worker("w1")
    chaos.drain()
    assert chaos.reconcile().stored == N
    _report("p16 before any worker", chaos)


def test_p17_order_per_session_with_one_worker(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    chaos.start_worker("w1", batch_size=50)
    produce(recorder, 3000, sessions=7)
    chaos.drain()
    with sqlite3.connect(chaos.db) as conn:
        rows = conn.execute(
            "SELECT session_id, seq FROM records ORDER BY persisted_at_ns, seq"
        ).fetchall()
    last: dict[str, int] = {}
    for session, seq in rows:
        assert seq > last.get(session, -1), f"{session}: {seq} committed after a later seq"
        last[session] = seq
    _report("p17 order", chaos)


def test_p20_stats_agree_with_xinfo(chaos: Chaos) -> None:
    recorder = chaos.recorder()
    produce(recorder, 1000)
    recorder.flush()
    with chaos.client() as client:
        client.xgroup_create(chaos.stream, "rawtap", id="0")
        client.xreadgroup("rawtap", "ghost", {chaos.stream: ">"}, count=123)
        info = client.xinfo_groups(chaos.stream)[0]
        length = client.xlen(chaos.stream)
    out = chaos.stats(store=False)
    assert f"length {length}," in out
    assert f"pending {info['pending']}, lag {info['lag']}" in out
    chaos.start_worker("w1", claim_idle_ms=100)
    chaos.drain()
    out = chaos.stats()
    assert "accepted 1000 = stored 1000 + dead-lettered 0 + lost 0" in out
    _report("p20 stats", chaos)


def test_p22a_never_breaks_the_host_when_the_disk_fails(chaos: Chaos, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spill directory should be")
    recorder = chaos.recorder(spill_dir=str(blocker / "spill"), socket_timeout_s=0.3)
    chaos.server.kill()  # Redis down and the disk unusable
    for i in range(2000):
        # Accepted (the buffer has room): a failing disk is counted later, never raised here.
        assert recorder.record("openai", b"x" * 100, {"i": i}) is True
    wait_until(lambda: recorder.stats().dropped.get("spill_failed", 0) > 0, 10, "spill failure")
    chaos.redis.start()
    chaos.start_worker("w1")
    chaos.drain()
    outcome = chaos.reconcile()
    assert outcome.lost_by_reason.get("spill_failed", 0) > 0  # counted, by reason, and reported
    _report("p22 disk failing", chaos)


def test_p22b_full_journal_directory(chaos: Chaos, tmp_path: Path) -> None:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tiny tmpfs (run as root): {done.stderr}"
    try:
        recorder = chaos.recorder(spill_dir=str(mount), spill_max_mb=64, socket_timeout_s=0.3)
        chaos.server.kill()
        # Decided by events: small batches until one is on disk, then until the disk is full
        # (one big batch under load could fail at once and leave nothing to replay).
        deadline = time.monotonic() + 60
        while recorder.stats().spilled == 0 or not recorder.stats().dropped.get("spill_failed"):
            assert time.monotonic() < deadline, recorder.stats()
            produce(recorder, 10 if recorder.stats().spilled == 0 else 200, size=500)
            recorder.flush(10)
        spilled = recorder.stats().spilled
        failed = recorder.stats().dropped["spill_failed"]
        chaos.redis.start()
        chaos.start_worker("w1")
        chaos.drain()
        outcome = chaos.reconcile()
        assert outcome.accepted == recorder.stats().accepted
        assert outcome.stored == spilled  # what reached the disk was replayed, all of it
        assert outcome.lost_by_reason["spill_failed"] == failed
        assert outcome.stored + outcome.lost == outcome.accepted
        assert "missing" not in outcome.lost_by_reason  # every loss has its reason
        _report("p22 disk full (tmpfs 256k)", chaos)
    finally:
        chaos.close()
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest"])
def test_p08b_journal_overflow_policy(chaos: Chaos, overflow: str) -> None:
    recorder = chaos.recorder(spill_max_mb=0.2, overflow=overflow, socket_timeout_s=0.3)
    chaos.server.kill()
    produce(recorder, 2000, size=500, rate_per_s=20_000)
    recorder.flush(5)
    wait_until(lambda: recorder.stats().buffered_records == 0, 10, "all spilled or dropped")
    # The journal is used up to its bound, not only by whole batches that happened to fit
    # (drop_oldest frees whole segments, a quarter of the bound at most, at a time).
    floor = 0.8 if overflow == "drop_newest" else 0.5
    assert recorder.stats().journal_bytes >= floor * 0.2 * 1024 * 1024
    chaos.redis.start()
    chaos.start_worker("w1")
    chaos.drain()
    stats = recorder.stats()
    reason = "journal_full" if overflow == "drop_newest" else "journal_overflow"
    assert stats.dropped.get(reason, 0) > 0
    stored = sorted(chaos.stored_seqs(recorder.producer_id))
    if overflow == "drop_newest":
        assert stored[0] == 0  # the oldest survived
    else:
        assert stored[-1] == stats.accepted - 1
        assert stored[0] > 0
    _report(f"p08 overflow {overflow}", chaos)


def test_p23_fork_safe(chaos: Chaos) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from rawtap.producer import Recorder
        r = Recorder(redis_url={chaos.redis.url!r}, stream_prefix={chaos.prefix!r})
        r.record("openai", b"parent-before-fork")
        r.flush(5)
        children = []
        for n in range(3):
            pid = os.fork()
            if pid == 0:
                for i in range(100):
                    r.record("openai", b"child", {{"child": n}})
                # Each child writes its own file: forked writers share one stdout pipe.
                with open(os.path.join(sys.argv[1], f"child-{{n}}"), "w") as out:
                    out.write(f"{{r.producer_id}} {{r.stats().accepted}}")
                r.close(10)
                os._exit(0)
            children.append(pid)
        for pid in children:
            assert os.waitpid(pid, 0)[1] == 0
        print(r.producer_id, r.stats().accepted, flush=True)
        r.close(10)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(chaos.tmp)],
        capture_output=True,
        text=True,
        timeout=PROCESS_EXIT_S,
        check=True,
    ).stdout.split()
    for n in range(3):
        out += (chaos.tmp / f"child-{n}").read_text().split()
    ids = out[0::2]
    assert len(set(ids)) == 4  # distinct producer ids
    chaos.start_worker("w1")
    chaos.drain()
    with SqliteSink(chaos.db) as sink:
        balances = {b.producer_id: b for b in sink.reconcile()}
    for pid, accepted in zip(ids, map(int, out[1::2]), strict=True):
        assert balances[pid].accepted == accepted == balances[pid].stored
        assert balances[pid].balanced


def test_p24a_flush_on_exit_and_sigterm(chaos: Chaos) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from rawtap.producer import Recorder
        r = Recorder(redis_url={chaos.redis.url!r}, stream_prefix={chaos.prefix!r},
                     spill_dir=sys.argv[2])
        for i in range(3000):
            r.record("openai", b"q" * 1000)
        print(r.producer_id, flush=True)
        if sys.argv[1] == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        """
    )
    ids = []
    for mode in ("exit", "sigterm"):
        proc = subprocess.run(
            [sys.executable, "-c", script, mode, str(chaos.tmp / "spill")],
            capture_output=True,
            text=True,
            timeout=PROCESS_EXIT_S,
            check=False,
        )
        assert proc.returncode == (0 if mode == "exit" else -signal.SIGTERM), proc.stderr
        ids.append(proc.stdout.strip())
    chaos.start_worker("w1")
    balances = _when_final(chaos, ids, rows=6000)
    for pid in ids:
        assert balances[pid].accepted == balances[pid].stored == 3000
        assert balances[pid].final


def test_p24b_restart_replays_what_an_earlier_run_left(chaos: Chaos) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from rawtap.producer import Recorder
        r = Recorder(redis_url=sys.argv[1], stream_prefix={chaos.prefix!r},
                     spill_dir={str(chaos.tmp / "spill")!r}, socket_timeout_s=0.3)
        for i in range(int(sys.argv[2])):
            r.record("openai", b"w" * 500)
        r.close(10)
        print(r.producer_id, r.stats().spilled, flush=True)
        """
    )
    chaos.server.kill()
    first = subprocess.run(
        [sys.executable, "-c", script, chaos.redis.url, "1000"],
        capture_output=True,
        text=True,
        timeout=PROCESS_EXIT_S,
        check=True,
    ).stdout.split()
    assert first[1] == "1000"  # all of it went to the journal
    chaos.redis.start()
    chaos.start_worker("w1")
    subprocess.run(
        [sys.executable, "-c", script, chaos.redis.url, "10"],
        capture_output=True,
        text=True,
        timeout=PROCESS_EXIT_S,
        check=True,
    )
    balance = _when_final(chaos, [first[0]], rows=1010)[first[0]]
    assert balance.balanced
    assert balance.stored == 1000


def test_p21_sink_outage(chaos: Chaos, postgres_url: str) -> None:
    import psycopg
    from psycopg import sql

    from rawtap.consumer.store.postgres import split_url
    from tests.support.tcpproxy import TcpProxy

    schema = f"rawtap_chaos_{chaos.prefix.replace('-', '_')}"
    base, _ = split_url(postgres_url)
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxied = base.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    assert proxied != base, f"the test expects PostgreSQL at 127.0.0.1:5432, got {base}"
    sink_url = f"{proxied}?schema={schema}"
    direct = psycopg.connect(postgres_url, autocommit=True)

    def stored() -> int:
        row = direct.execute(
            sql.SQL("SELECT count(*) FROM {}.records").format(sql.Identifier(schema))
        ).fetchone()
        assert row is not None
        return int(row[0])

    def acked() -> int:
        with chaos.client() as client:
            group = client.xinfo_groups(chaos.stream)[0]
        return int(group["entries-read"] or 0) - int(group["pending"])

    try:
        recorder = chaos.recorder()
        proc = subprocess.Popen(
            rawtap_command("worker"),
            env=chaos.env("pg", sink_url=sink_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        feeder = threading.Thread(target=produce, args=(recorder, N), kwargs={"rate_per_s": 400})
        feeder.start()
        wait_until(lambda: _pg_ready(direct, schema) and stored() > 200, 30, "rows in PostgreSQL")
        proxy.cut()  # PostgreSQL unreachable for 30 s under load
        cut_at = time.monotonic()
        while time.monotonic() - cut_at < 30:
            time.sleep(1)
            assert acked() <= stored(), "an entry was acknowledged before its commit"
            assert proc.poll() is None, "the worker died during the outage"
        during = stored()
        proxy.restore()
        feeder.join()
        recorder.close(30)
        wait_until(lambda: stored() == N, 60, "everything stored after the outage")
        wait_until(lambda: chaos.pending() == 0, 20, "nothing pending")
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=PROCESS_EXIT_S)
        assert proc.returncode == 0, log
        assert "nothing acknowledged" in log
        rows = direct.execute(
            sql.SQL(
                "SELECT count(*), count(DISTINCT record_id), count(DISTINCT seq) FROM {}.records"
            ).format(sql.Identifier(schema))
        ).fetchone()
        assert rows == (N, N, N)
        print(
            f"\n[p21 PostgreSQL cut 30 s] accepted {N} = stored {N} (stored {during} before "
            f"the link came back); acknowledged never ahead of committed"
        )
    finally:
        proxy.close()
        direct.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        direct.close()


def _pg_ready(conn: Any, schema: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.records",)).fetchone()
    return bool(row and row[0])


def test_p24c_sigterm_flushes_every_recorder_and_multiprocessing_children(chaos: Chaos) -> None:
    script = textwrap.dedent(
        f"""
        import multiprocessing, os, signal, sys, threading
        from rawtap.producer import Recorder
        url, prefix = {chaos.redis.url!r}, {chaos.prefix!r}
        first = Recorder(redis_url=url, stream_prefix=prefix)
        second = Recorder(redis_url=url, stream_prefix=prefix)

        def child() -> None:  # leaves through os._exit(): no atexit
            for i in range(300):
                first.record("openai", b"c" * 200)
            print("child", first.producer_id, flush=True)

        ctx = multiprocessing.get_context("fork")
        proc = ctx.Process(target=child)
        proc.start()
        proc.join()
        assert proc.exitcode == 0
        # The first record of `second` comes from another thread than the main one.
        t = threading.Thread(target=lambda: [second.record("openai", b"t" * 200) for _ in range(400)])
        t.start(); t.join()
        for i in range(500):
            first.record("openai", b"m" * 200)
        print("main", first.producer_id, second.producer_id, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=PROCESS_EXIT_S,
        check=False,
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    child_id = lines["child"]
    first_id, second_id = lines["main"].split()
    chaos.start_worker("w1")
    wait_until(lambda: _stored(chaos) == 1200, 30, "all three recorders' records")
    expected = {child_id: 300, first_id: 500, second_id: 400}

    def reconciled() -> dict[str, ProducerBalance]:
        with SqliteSink(chaos.db) as sink:
            return {b.producer_id: b for b in sink.reconcile()}

    # The final reports may be read after the records (another shard, or later in
    # the stream): wait for the ledger to hold each producer's final report.
    wait_until(
        lambda: all(b.final for b in reconciled().values()) and set(reconciled()) >= set(expected),
        30,
        "every producer's final report",
    )
    balances = reconciled()
    for pid, n in expected.items():
        assert balances[pid].stored == balances[pid].accepted == n, balances[pid]
        assert balances[pid].final


def test_p01b_pending_entries_of_a_dead_worker_are_not_trimmed_under_load(chaos: Chaos) -> None:
    recorder = chaos.recorder(maxlen=1000, backlog_check_s=0.05, send_batch_size=50)
    produce(recorder, 300, size=200)
    recorder.flush()
    with chaos.client() as client:
        client.xgroup_create(chaos.stream, "rawtap", id="0")
        client.xreadgroup("rawtap", "ghost", {chaos.stream: ">"}, count=200)  # then died
    chaos.start_worker("w2", claim_idle_ms=3_600_000)  # may not reclaim the ghost's entries
    # 3x the cap flows past the dead worker's 200 entries before anyone may reclaim them.
    produce(recorder, 3000, size=200, rate_per_s=1500)
    recorder.flush()
    assert chaos.pending("ghost") == 200  # still unclaimed after all 3,000 went past
    # kill -9: under load w2 may still be starting (no SIGTERM handler yet); what it
    # holds is reclaimed by w3 like the ghost's entries.
    chaos.kill_worker("w2")
    chaos.start_worker("w3", claim_idle_ms=100)  # now a worker may reclaim them
    chaos.drain(90)
    outcome = chaos.reconcile()
    assert outcome.lost == 0
    assert outcome.stored == 3300
    assert recorder.stats().spilled > 0  # the producer held back instead of letting MAXLEN trim
    with SqliteSink(chaos.db) as sink:
        assert sink.ledger_counts()["trimmed"] == 0
    _report("p01 dead worker's pending under load", chaos)
