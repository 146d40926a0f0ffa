"""The Redis ACL lines of deploy/kubernetes/redis-acl.conf are enough, and only just.

A private redis-server gets the two users; a Recorder runs as ``rawtap-producer``,
a worker (with its telemetry's stream probes) as ``rawtap-worker``, through
reclaiming, dead-lettering and removing dead consumers. Redis's ACL log must
stay empty, and the users must be refused what they do not need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from rawtap.consumer import SqliteSink, Worker
from rawtap.producer import Recorder
from rawtap.shared import StreamNames
from tests.support.otel import memory_telemetry, value
from tests.support.pipeline import wait_until, worker_thread
from tests.support.services import private_redis

ACL = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "redis-acl.conf"
PASSWORD = "acl-test-password"


def _users() -> dict[str, list[str]]:
    users = {}
    for line in ACL.read_text().splitlines():
        if line.startswith("user "):
            _, name, *rules = line.split()
            users[name] = [f">{PASSWORD}" if r.startswith(">") else r for r in rules]
    return users


def _url(server_url: str, user: str) -> str:
    return server_url.replace("redis://", f"redis://{user}:{PASSWORD}@")


def test_worker_and_producer_work_with_least_privileges(tmp_path: Path) -> None:
    prefix = "rawtap"
    names = StreamNames(prefix)
    with private_redis() as server:
        admin = redis.Redis.from_url(server.url)
        for name, rules in _users().items():
            admin.execute_command("ACL", "SETUSER", name, "reset", *rules)
        # A consumer that died holding an entry, and an entry no one can decode.
        admin.xgroup_create(names.shard(0), "rawtap", id="0", mkstream=True)
        admin.xadd(names.shard(0), {b"v": b"1", b"env": b"not json"})
        recorder = Recorder(
            redis_url=_url(server.url, "rawtap-producer"),
            stream_prefix=prefix,
            spill_dir=str(tmp_path / "spill"),
            backlog_check_s=0.05,
        )
        for i in range(20):
            assert recorder.record("openai", b'{"n": %d}' % i)
        assert recorder.flush(10)
        admin.xreadgroup("rawtap", "dead-one", {names.shard(0): ">"}, count=1)
        memory = memory_telemetry(telemetry_ledger_interval_s=0.001)
        with SqliteSink(tmp_path / "acl.db") as sink:
            worker = Worker(
                redis_url=_url(server.url, "rawtap-worker"),
                stream_prefix=prefix,
                consumer="w-acl",
                block_ms=50,
                claim_idle_ms=1,
                consumer_expiry_ms=1,
                sink=sink,
                telemetry=memory.telemetry,
            )
            with worker_thread(worker):
                wait_until(lambda: sink.count() == 20 and worker.idle, what="20 records stored")
                wait_until(lambda: worker.stats.consumers_removed >= 1, what="dead consumer gone")
            data = memory.metrics()
        recorder.close()
        memory.telemetry.close()
        stats: Any = worker.stats
        assert stats.dead_lettered == 1
        assert stats.claimed >= 1
        assert stats.redis_errors == 0
        assert value(data, "rawtap.stream.length", messaging__destination__name=names.shard(0))
        assert (
            value(data, "rawtap.stream.pending", messaging__destination__name=names.shard(0)) == 0
        )
        assert recorder.stats().send_failures == 0
        # redis-py's CLIENT SETINFO at connect (Redis 7.2+) is refused harmlessly.
        denied = [e for e in admin.execute_command("ACL", "LOG") if e[b"object"] != b"setinfo"]
        assert denied == [], denied
        # ...and no more than needed.
        for user in ("rawtap-worker", "rawtap-producer"):
            client = redis.Redis.from_url(_url(server.url, user))
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command("FLUSHALL")
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.set(f"{prefix}:other", b"x")
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.xlen("someone-else:{0}")
            client.close()
        admin.close()
