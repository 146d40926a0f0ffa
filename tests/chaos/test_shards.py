"""RELIABILITY.md property 18 and per-shard backpressure, on one private redis-server.

With N shard keys every Redis command touches one key (checked on a
``MONITOR`` log of everything the producers, workers and CLI sent), and when
every worker of shard k is down only shard k lags, and ``rawtap stats`` names
it. The cluster scenarios are in tests/cluster/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rawtap.consumer import SqliteSink
from rawtap.shared import is_report, shard_for
from tests.support.chaos import Chaos, produce
from tests.support.cluster import CommandLog
from tests.support.pipeline import rawtap_command, wait_until

pytestmark = pytest.mark.chaos


def _per_shard(count: int, sessions: int, shards: int, start: int = 0) -> list[int]:
    """How many of ``produce``'s records go to each shard (its session is ``i % sessions``)."""
    out = [0] * shards
    for i in range(start, start + count):
        out[shard_for(f"session-{i % sessions}", i, shards)] += 1
    return out


def _unread(chaos: Chaos, shard: int) -> list[dict[bytes, bytes]]:
    """The entries of ``shard``'s stream after its group's last delivered id."""
    with chaos.client() as client:
        stream = chaos.streams[shard]
        (group,) = client.xinfo_groups(stream)
        last = group["last-delivered-id"].decode()
        return [fields for _id, fields in client.xrange(stream, min=f"({last}", max="+")]


def _idle_ms(chaos: Chaos, shard: int) -> int:
    """How long the most recently active consumer of ``shard``'s group has not read."""
    with chaos.client() as client:
        consumers = client.xinfo_consumers(chaos.streams[shard], "rawtap")
        return min(int(c["idle"]) for c in consumers)  # the figure `rawtap stats` reads


def _stored(chaos: Chaos) -> int:
    if not chaos.db.exists():
        return 0
    with SqliteSink(chaos.db) as sink:
        return sink.count()


def test_p18_only_the_shard_without_workers_lags_and_stats_names_it(
    chaos: Chaos, tmp_path: Path
) -> None:
    chaos.shards = 4
    log = CommandLog([chaos.server.port], tmp_path)
    try:
        recorder = chaos.recorder()
        chaos.start_worker("w01", read_shards="0-1")
        chaos.start_worker("w2", read_shards="2")
        chaos.start_worker("w3", read_shards="3")
        produce(recorder, 2000, sessions=40)
        recorder.flush()
        wait_until(lambda: chaos.lag() == 0 and chaos.pending() == 0, 30, "first drain")
        chaos.kill_worker("w3")  # every worker of shard 3 is gone
        produce(recorder, 4000, sessions=40)
        recorder.flush()
        wait_until(
            lambda: chaos.lag([0, 1, 2]) == 0 and chaos.pending(shards=[0, 1, 2]) == 0,
            30,
            "shards 0-2 drained",
        )
        # Close the producer so nothing more is written: its periodic reports
        # (every report_interval_s) would otherwise land on shard 3 at any moment.
        assert recorder.close(30)
        wait_until(lambda: chaos.drained([0, 1, 2]), 30, "shards 0-2 read the final report")
        expected = _per_shard(4000, 40, 4)  # the same session → shard map as the producer
        unread = _unread(chaos, 3)
        assert sum(not is_report(f) for f in unread) == expected[3] > 0
        assert chaos.lag([3]) == len(unread)  # the records and the producer's reports
        # --stall-s 1 names a shard whose consumers have not read for 1 s: wait for that state.
        wait_until(lambda: _idle_ms(chaos, 3) >= 1100, 30, "shard 3's consumer idle for 1.1 s")
        stats = subprocess.run(
            rawtap_command("stats", "--lag-warn", "1000000", "--stall-s", "1"),
            env=chaos.env("cli"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"WARNING: shard 3 ({chaos.streams[3]}) lags: {len(unread)} entries unread" in stats
        assert "lagging shards: 3\n" in stats
        for k in range(3):
            assert f"stream {chaos.streams[k]}: length" in stats
            assert f"shard {k} (" not in stats
        chaos.start_worker("w3", read_shards="3")
        chaos.drain()
        outcome = chaos.reconcile()
        assert outcome.stored == 6000
        assert outcome.lost == 0
    finally:
        log.stop()
    counts = log.check_single_slot()
    for command in ("XADD", "XREADGROUP", "XACK", "XAUTOCLAIM", "XINFO GROUPS", "XGROUP CREATE"):
        assert counts.get(command, 0) > 0, (command, counts)
    print(f"\n[p18 shards isolated] {outcome.line()}; commands {counts}")


def test_p06b_backpressure_is_per_shard(chaos: Chaos) -> None:
    """One shard's consumers lag towards the cap: only its records spill; the others flow."""
    chaos.shards = 2
    cap = 500
    recorder = chaos.recorder(maxlen=cap, backlog_check_s=0.05, send_batch_size=50)
    chaos.start_worker("w0", read_shards="0")
    with chaos.client() as client:  # shard 1 has a group whose consumers are all stopped
        client.xgroup_create(chaos.streams[1], "rawtap", id="0", mkstream=True)
        # Before shard 0's worker made its group, all of shard 0 would count as undelivered.
        wait_until(lambda: bool(client.exists(chaos.streams[0])), 10, "shard 0's group")
    produce(recorder, 3000, size=200, sessions=60, rate_per_s=3000)
    expected = _per_shard(3000, 60, 2)
    wait_until(lambda: recorder.stats().spilled > 0, 10, "shard 1 spilling")
    writer = recorder._writer
    assert writer is not None
    assert writer.backpressured_shards == [1]
    wait_until(lambda: chaos.lag([0]) == 0 and chaos.pending(shards=[0]) == 0, 20, "shard 0")
    wait_until(lambda: _stored(chaos) == expected[0], 20, "all of shard 0 stored")
    assert recorder.stats().spilled <= expected[1]  # only shard 1's records waited
    chaos.start_worker("w1", read_shards="1")
    chaos.drain()
    outcome = chaos.reconcile()
    assert outcome.lost == 0
    assert outcome.stored == 3000
    print(f"\n[p06 per-shard backpressure] {outcome.line()}")
