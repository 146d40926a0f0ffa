"""rawtap on a local Redis Cluster (3 primaries, 3 replicas), 8 shards, several workers.

* every record stored exactly once while a worker is ``kill -9``'d and the
  primary of some shards is ``kill -9``'d (its replica promoted): what is lost
  is only what the docs say may be (writes acknowledged by the dead primary
  but not yet replicated), each named by reconciliation on the killed node's
  shards;
* a ``MONITOR`` log of every node shows no command over two slots;
* a shard's slot migrated to another primary under load: clients follow
  ``ASK`` and ``MOVED`` (counted by the server) and nothing is lost.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from redis.crc import key_slot

from rawtap.consumer import SqliteSink
from rawtap.shared import shard_for
from tests.support.chaos import Chaos, produce
from tests.support.cluster import ClusterNode, CommandLog, LocalCluster
from tests.support.pipeline import wait_until

pytestmark = pytest.mark.cluster

SESSIONS = 64
WORKER = {"batch_size": 100, "claim_idle_ms": 1000, "socket_timeout_s": 1}


def _stored(chaos: Chaos) -> int:
    if not chaos.db.exists():
        return 0
    with SqliteSink(chaos.db) as sink:
        return sink.count()


def _groups_ready(cluster: LocalCluster, chaos: Chaos) -> bool:
    for stream in chaos.streams:
        with cluster.primary_of(stream).client() as node:
            if not node.exists(stream):
                return False
    return True


def _errorstats(node: ClusterNode) -> dict[str, int]:
    with node.client() as c:
        info = c.info("errorstats")
    return {k.removeprefix("errorstat_"): int(v["count"]) for k, v in info.items()}


def test_exactly_once_through_a_worker_kill_and_a_primary_failover(
    cluster: LocalCluster, cluster_chaos: Chaos, tmp_path: Path
) -> None:
    chaos = cluster_chaos
    log = CommandLog([n.port for n in cluster.nodes], tmp_path)
    try:
        recorders = [chaos.recorder(socket_timeout_s=0.5) for _ in range(2)]
        for name in ("w1", "w2", "w3"):
            chaos.start_worker(name, **WORKER)
        wait_until(lambda: _groups_ready(cluster, chaos), 30, "the workers' groups on every shard")
        feeders = [
            threading.Thread(
                target=produce, args=(r, 6000), kwargs={"rate_per_s": 1000, "sessions": SESSIONS}
            )
            for r in recorders
        ]
        for f in feeders:
            f.start()
        wait_until(lambda: all(r.stats().accepted > 2000 for r in recorders), 30, "load")
        wait_until(lambda: _stored(chaos) > 0, 30, "rows")
        chaos.kill_worker("w2")  # it held a batch or two: the others reclaim them
        victim = cluster.primary_of(chaos.streams[0])
        victim_shards = {
            k for k, s in enumerate(chaos.streams) if cluster.primary_of(s).port == victim.port
        }
        assert all(f.is_alive() for f in feeders)  # under load
        victim.kill()  # its replica is promoted after the node timeout
        cluster.wait_ok(timeout=30)
        for f in feeders:
            f.join()
        chaos.drain(60)
        outcome = chaos.reconcile()
    finally:
        log.stop()
    assert chaos.workers["w1"].poll() is None
    assert chaos.workers["w3"].poll() is None
    assert cluster.primary_of(chaos.streams[0]).port != victim.port
    assert outcome.accepted == 12_000
    assert outcome.dead_lettered == 0
    # Replication is asynchronous: only writes the dead primary acknowledged and had not yet
    # passed to its replica may be missing, and reconciliation names them by seq.
    assert set(outcome.lost_by_reason) <= {"missing"}
    for recorder in recorders:
        stored = set(chaos.stored_seqs(recorder.producer_id))
        for seq in set(range(6000)) - stored:  # produce() gave record i session i % SESSIONS
            assert shard_for(f"session-{seq % SESSIONS}", seq, 8) in victim_shards, seq
    assert outcome.lost <= 1000, outcome.line()
    assert sum(r.stats().spilled for r in recorders) > 0  # the failover went to the journal
    counts = log.check_single_slot()
    for command in ("XADD", "XREADGROUP", "XACK", "XAUTOCLAIM", "XPENDING"):
        assert counts.get(command, 0) > 0, (command, counts)
    print(
        f"\n[cluster failover] {outcome.line()}; shards on the killed primary "
        f"{sorted(victim_shards)}; commands {counts}"
    )


def test_a_shard_migrated_to_another_primary_under_load(
    cluster: LocalCluster, cluster_chaos: Chaos
) -> None:
    chaos = cluster_chaos
    recorder = chaos.recorder()
    chaos.start_worker("w1", **WORKER)
    feeder = threading.Thread(
        target=produce, args=(recorder, 6000), kwargs={"rate_per_s": 2000, "sessions": SESSIONS}
    )
    feeder.start()
    wait_until(lambda: _stored(chaos) > 500, 30, "rows")
    stream = chaos.streams[5]
    source = cluster.primary_of(stream)
    target = next(n for n in cluster.primaries() if n.port != source.port)
    before = _errorstats(source)
    _migrate_slot(cluster, key_slot(stream.encode()), stream, source, target)
    feeder.join()
    chaos.drain(60)
    assert cluster.primary_of(stream).port == target.port
    after = _errorstats(source)
    redirected = {k: after.get(k, 0) - before.get(k, 0) for k in ("MOVED", "ASK")}
    assert redirected["MOVED"] > 0, after  # the clients were sent on, and followed
    outcome = chaos.reconcile()
    assert outcome.stored == 6000
    assert outcome.lost == 0
    assert "Traceback" not in chaos.worker_log("w1")
    print(f"\n[cluster slot migration] {outcome.line()}; redirections {redirected}")


def _migrate_slot(
    cluster: LocalCluster, slot: int, key: str, source: ClusterNode, target: ClusterNode
) -> None:
    """Move ``slot`` (holding ``key``) from ``source`` to ``target``, as redis-cli would."""
    with source.client() as src, target.client() as dst:
        source_id = src.execute_command("CLUSTER", "MYID").decode()
        target_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        asked = _errorstats(source).get("ASK", 0)
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", key)
        # The key has moved, the slot not yet: the clients meet ASK and follow it.
        wait_until(lambda: _errorstats(source).get("ASK", 0) > asked, 30, "a client to meet ASK")
        for node in cluster.primaries():
            with node.client() as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    cluster.wait_ok()


def test_sigterm_on_a_cluster_worker_exits_zero_with_nothing_pending(
    cluster_chaos: Chaos,
) -> None:
    chaos = cluster_chaos
    recorder = chaos.recorder()
    chaos.start_worker("w1", CHAOS_SLEEP_BEFORE_COMMIT_S=0.2, **WORKER)
    produce(recorder, 2000, sessions=SESSIONS)
    wait_until(lambda: chaos.pending("w1") > 0, 20, "a batch in hand")
    chaos.signal_worker("w1", signal.SIGTERM)
    assert chaos.workers["w1"].wait(10) == 0
    assert chaos.pending("w1") == 0
    chaos.start_worker("w2", **WORKER)
    chaos.drain()
    assert chaos.reconcile().stored == 2000
