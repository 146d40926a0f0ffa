"""A whole pipeline under fault injection: private Redis, worker processes, reconciliation.

The Redis is a private ``redis-server`` or a local Redis Cluster
(:mod:`tests.support.cluster`); with ``shards`` > 1 the lag and pending
figures cover every shard's stream.

Every chaos test ends with :meth:`Chaos.reconcile`, which checks, per producer,
``P = D + Q + L`` with the three parts disjoint (accepted = stored +
dead-lettered + lost with a reason) and one row per ``(producer_id, seq)``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from rawtap.consumer import SqliteSink
from rawtap.producer import Recorder
from rawtap.shared import SeqRange, StreamNames, open_redis
from tests.support.pipeline import rawtap_command, wait_until
from tests.support.services import RedisServer

if TYPE_CHECKING:
    from tests.support.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
GROUP = "rawtap"


@dataclass
class Outcome:
    """What happened to the records of all producers in one scenario."""

    accepted: int
    stored: int
    dead_lettered: int
    lost: int
    lost_by_reason: dict[str, int]

    def line(self) -> str:
        """The figures for the test log and the issue's closing note."""
        return (
            f"accepted {self.accepted} = stored {self.stored} + dead-lettered "
            f"{self.dead_lettered} + lost {self.lost} {self.lost_by_reason}"
        )


@dataclass
class Chaos:
    """One scenario's pipeline."""

    redis: RedisServer | LocalCluster
    prefix: str
    tmp: Path
    shards: int = 1
    workers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    recorders: list[Recorder] = field(default_factory=list)

    @property
    def server(self) -> RedisServer:
        """The single Redis server, for scenarios that kill or pause it (never a cluster)."""
        assert isinstance(self.redis, RedisServer), "this scenario needs a single Redis server"
        return self.redis

    @property
    def stream(self) -> str:
        """The stream key of shard 0 (the only one unless ``shards`` > 1)."""
        return StreamNames(self.prefix).shard(0)

    @property
    def streams(self) -> list[str]:
        """Every shard's stream key."""
        return StreamNames(self.prefix).shards(self.shards)

    @property
    def db(self) -> Path:
        """The SQLite file the workers commit to."""
        return self.tmp / "chaos.db"

    def client(self) -> Any:
        """A client on the scenario's Redis (a cluster client for a cluster)."""
        if self.redis.url.startswith("redis+cluster://"):
            return open_redis(
                self.redis.url, cluster=True, socket_timeout=10, connect_timeout=5, name="test"
            )
        return redis.Redis.from_url(self.redis.url, socket_timeout=10)

    def env(self, consumer: str, **settings: object) -> dict[str, str]:
        """Environment of a worker process."""
        env = {
            **os.environ,
            "RAWTAP_REDIS_URL": self.redis.url,
            "RAWTAP_STREAM_PREFIX": self.prefix,
            "RAWTAP_SINK_URL": f"sqlite:///{self.db}",
            "RAWTAP_CONSUMER": consumer,
            "RAWTAP_BLOCK_MS": "100",
            "RAWTAP_CLAIM_IDLE_MS": "60000",
            "RAWTAP_SHARDS": str(self.shards),
        }
        env.update(
            {
                k if k.startswith("CHAOS_") else f"RAWTAP_{k.upper()}": str(v)
                for k, v in settings.items()
            }
        )
        return env

    def stats(self, *args: str, store: bool = True, code: int = 0) -> str:
        """``rawtap stats`` on this pipeline (with or without the store); its output.

        Asserts its exit code: 0 ok, 5 records lost, … (docs/cli.md).
        """
        env = self.env("cli")
        if not store:
            del env["RAWTAP_SINK_URL"]
        done = subprocess.run(
            rawtap_command("stats", *args), env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
        return done.stdout

    def start_worker(self, consumer: str, **settings: object) -> subprocess.Popen[str]:
        """Start a real worker process (failpoints: ``CHAOS_*`` keys)."""
        with open(self.tmp / f"{consumer}.log", "a") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.chaos_worker"],
                env=self.env(consumer, **settings),
                cwd=ROOT,
                stdout=log,
                stderr=log,
                text=True,
            )
        self.workers[consumer] = proc
        return proc

    def signal_worker(self, consumer: str, sig: signal.Signals) -> None:
        """Send ``sig`` to a worker process."""
        self.workers[consumer].send_signal(sig)

    def kill_worker(self, consumer: str) -> None:
        """``kill -9`` a worker and reap it."""
        proc = self.workers[consumer]
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    def stop_worker(self, consumer: str, timeout: float = 20) -> int:
        """SIGTERM a worker and return its exit code."""
        proc = self.workers[consumer]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def worker_log(self, consumer: str) -> str:
        """What a worker wrote to stdout/stderr so far."""
        return (self.tmp / f"{consumer}.log").read_text()

    def recorder(self, **settings: Any) -> Recorder:
        """A producer on this scenario's stream, spilling into the scenario's directory."""
        settings.setdefault("spill_dir", str(self.tmp / "spill"))
        settings.setdefault("shards", self.shards)
        recorder = Recorder(redis_url=self.redis.url, stream_prefix=self.prefix, **settings)
        self.recorders.append(recorder)
        return recorder

    def pending(self, consumer: str | None = None, shards: list[int] | None = None) -> int:
        """Entries pending in the group over the shards (for one consumer, if named)."""
        total = 0
        with self.client() as client:
            for k in range(self.shards) if shards is None else shards:
                try:
                    info = client.xpending(self.streams[k], GROUP)
                except redis.ResponseError:
                    continue
                if consumer is None:
                    total += int(info["pending"])
                else:
                    total += sum(
                        int(c["pending"])
                        for c in info["consumers"]
                        if c["name"] == consumer.encode()
                    )
        return total

    def lag(self, shards: list[int] | None = None) -> int:
        """Entries the group has not read yet, over the shards (0 once each delivered its newest)."""
        total = 0
        with self.client() as client:
            for k in range(self.shards) if shards is None else shards:
                stream = self.streams[k]
                if not client.exists(stream):
                    continue
                info = client.xinfo_stream(stream)
                groups = client.xinfo_groups(stream)
                if not groups:
                    total += int(info["length"])
                    continue
                behind = [g for g in groups if g["last-delivered-id"] != info["last-generated-id"]]
                total += max(
                    (min(int(g["lag"] or 0), int(info["length"])) or 1 for g in behind), default=0
                )
        return total

    def drain(self, timeout: float = 60) -> None:
        """Wait until every record reached its end: recorders flushed, lag and pending 0."""
        for r in self.recorders:
            r.close(timeout)
        wait_until(self.drained, timeout, "lag and pending to reach 0")

    def drained(self, shards: list[int] | None = None) -> bool:
        """Lag and pending are 0 (False while Redis does not answer, e.g. mid-failover)."""
        try:
            return self.lag(shards) == 0 and self.pending(shards=shards) == 0
        except redis.RedisError:
            return False

    def stored_seqs(self, producer_id: str) -> list[int]:
        """Seqs of one producer in the sink (with repeats, if any)."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT seq FROM records WHERE producer_id = ?", (producer_id,))
            return [int(s) for (s,) in rows]

    def reconcile(self) -> Outcome:
        """Check ``P = D + Q + L`` (disjoint) for every recorder; return the totals."""
        total = Outcome(0, 0, 0, 0, {})
        with SqliteSink(self.db) as sink:
            balances = {b.producer_id: b for b in sink.reconcile()}
        for recorder in self.recorders:
            stats = recorder.stats()
            pid = recorder.producer_id
            accepted = set(range(stats.accepted))
            stored = self.stored_seqs(pid)
            assert len(stored) == len(set(stored)), f"{pid}: a seq is stored twice"
            balance = balances.get(pid)
            assert balance is not None or not accepted, f"{pid}: the sink never heard of it"
            if balance is None:
                continue
            assert balance.accepted == stats.accepted, (
                f"{pid}: the producer's report says {balance.accepted}, it accepted "
                f"{stats.accepted}"
            )
            dead = _dead_seqs(self.db, pid)
            lost = set(_expand(balance.missing))
            for reason, n in balance.dropped.items():
                total.lost_by_reason[reason] = total.lost_by_reason.get(reason, 0) + n
            dropped: set[int] = set()
            for reason, count in stats.dropped.items():
                if reason != "buffer_full":  # refused at the door: never accepted
                    assert balance.dropped.get(reason) == count, (pid, reason, balance.dropped)
            for lo, hi in _drop_ranges(self.db, pid):
                dropped.update(range(lo, hi + 1))
            parts = [set(stored), dead - set(stored), (dropped | lost) - set(stored) - dead]
            assert sum(map(len, parts)) == len(accepted), (pid, [len(p) for p in parts])
            assert set().union(*parts) == accepted
            assert balance.balanced, balance
            if balance.missing:
                total.lost_by_reason["missing"] = total.lost_by_reason.get("missing", 0) + len(lost)
            total.accepted += len(accepted)
            total.stored += len(parts[0])
            total.dead_lettered += len(parts[1])
            total.lost += len(parts[2])
        return total

    def close(self) -> None:
        """Stop every process the scenario started."""
        for r in self.recorders:
            r.close(1)
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(10)


def _dead_seqs(db: Path, producer_id: str) -> set[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT seq FROM dead_letters WHERE producer_id = ? AND seq IS NOT NULL", (producer_id,)
        )
        return {int(s) for (s,) in rows}


def _drop_ranges(db: Path, producer_id: str) -> list[SeqRange]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT first_seq, last_seq FROM producer_drops WHERE producer_id = ?", (producer_id,)
        )
        return [(int(a), int(b)) for a, b in rows]


def _expand(ranges: list[SeqRange]) -> list[int]:
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


def produce(
    recorder: Recorder,
    count: int,
    *,
    size: int = 2000,
    sessions: int = 50,
    rate_per_s: float | None = None,
    poison: set[int] | None = None,
) -> None:
    """Record ``count`` records of about ``size`` bytes (optionally paced)."""
    body = b"y" * size
    started = time.monotonic()
    for i in range(count):
        meta: dict[str, object] = {"i": i}
        if poison and i in poison:
            meta["poison"] = True
        recorder.record("openai", body, meta, f"session-{i % sessions}")
        if rate_per_s and i % 100 == 99:
            ahead = (i + 1) / rate_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
