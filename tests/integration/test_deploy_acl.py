"""deploy/kubernetes/redis-acl.conf, loaded by a real ``redis-server --aclfile``, is enough
for each of rawtap's users, and only just.

The file is loaded as it is (only its ``CHANGE-ME`` passwords replaced, and one admin
user appended for the test itself): a comment or an unknown rule would make Redis
refuse to start. A Recorder runs as ``rawtap-producer``, a worker (with its
telemetry's stream probes) as ``rawtap-worker`` through reclaiming, dead-lettering and
removing dead consumers, and KEDA's redis-streams scaler's exact command sequence as
``rawtap-keda``. Redis's ACL log must stay empty, and each user must be refused what
it does not need; the ``default`` user is off.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rawtap.consumer import SqliteSink, Worker
from rawtap.producer import Recorder
from rawtap.shared import StreamNames
from rawtap.tools import redis_binary
from tests.support.otel import memory_telemetry, value
from tests.support.pipeline import wait_until, worker_thread
from tests.support.services import free_port

ACL = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "redis-acl.conf"
PASSWORD = "acl-test-password"
ADMIN = "rawtap-test-admin"


class AclServer:
    """A private redis-server started with ``--aclfile`` (its default user is off)."""

    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def url(self) -> str:
        """The server's URL, without a user."""
        return f"redis://127.0.0.1:{self.port}/0"

    def as_user(self, user: str) -> str:
        """The server's URL for ``user``."""
        return self.url.replace("redis://", f"redis://{user}:{PASSWORD}@")


@contextlib.contextmanager
def acl_server() -> Iterator[AclServer]:
    """redis-server with the deploy file as its aclfile, plus an admin user for the test."""
    binary = redis_binary("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH (apt-get install redis-server)", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="rawtap-acl-") as workdir:
        aclfile = Path(workdir) / "users.acl"
        text = ACL.read_text().replace(">CHANGE-ME", f">{PASSWORD}")
        aclfile.write_text(text + f"user {ADMIN} on >{PASSWORD} ~* &* +@all\n")
        log = Path(workdir) / "redis.log"
        port = free_port()
        proc = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                *("--dir", workdir, "--aclfile", str(aclfile), "--logfile", str(log)),
            ],
        )
        server = AclServer(port)
        admin = redis.Redis.from_url(server.as_user(ADMIN), socket_timeout=1)
        try:
            deadline = time.monotonic() + 10
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server refused the aclfile: {log.read_text()}")
                with contextlib.suppress(redis.ConnectionError):
                    admin.ping()
                    break
                assert time.monotonic() < deadline, "redis-server with --aclfile did not start"
                time.sleep(0.02)
            yield server
        finally:
            admin.close()
            proc.kill()
            proc.wait(10)


def _command(client: redis.Redis, *args: str) -> Any:
    """One raw command (redis-py leaves ``execute_command`` untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _denied(admin: redis.Redis) -> list[Any]:
    # redis-py's and go-redis's CLIENT SETINFO at connect (Redis 7.2+) is refused harmlessly.
    entries: list[Any] = _command(admin, "ACL", "LOG")
    return [e for e in entries if e[b"object"] != b"setinfo"]


def test_worker_and_producer_work_with_least_privileges(tmp_path: Path) -> None:
    prefix = "rawtap"
    names = StreamNames(prefix)
    with acl_server() as server:
        admin = redis.Redis.from_url(server.as_user(ADMIN))
        # A consumer that died holding an entry, and an entry no one can decode.
        admin.xgroup_create(names.shard(0), "rawtap", id="0", mkstream=True)
        admin.xadd(names.shard(0), {b"v": b"1", b"env": b"not json"})
        recorder = Recorder(
            redis_url=server.as_user("rawtap-producer"),
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
                redis_url=server.as_user("rawtap-worker"),
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
        assert _denied(admin) == []
        # ...and no more than needed.
        for user in ("rawtap-worker", "rawtap-producer"):
            client = redis.Redis.from_url(server.as_user(user))
            with pytest.raises(redis.exceptions.NoPermissionError):
                _command(client, "FLUSHALL")
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.set(f"{prefix}:other", b"x")
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.xlen("someone-else:{0}")
            client.close()
        admin.close()


# What KEDA's redis-streams scaler sends (kedacore/keda pkg/scalers/redis_streams_scaler.go
# with go-redis v9): at connect HELLO 3 AUTH and CLIENT SETINFO (errors ignored), then PING;
# for a lagCount trigger INFO (it refuses Redis < 7 by redis_version), XINFO GROUPS and,
# while the group does not exist yet, XLEN; for a pendingEntriesCount trigger XPENDING; the
# redis-cluster-streams type adds CLUSTER SLOTS.
KEDA_COMMANDS: list[tuple[str, ...]] = [
    ("PING",),
    ("INFO",),
    ("XINFO", "GROUPS", "rawtap:{0}"),
    ("XLEN", "rawtap:{0}"),
    ("XPENDING", "rawtap:{0}", "rawtap"),
    ("CLUSTER", "SLOTS"),
]


def test_keda_user_runs_the_scalers_commands_and_nothing_else() -> None:
    with acl_server() as server:
        admin = redis.Redis.from_url(server.as_user(ADMIN))
        admin.xgroup_create("rawtap:{0}", "rawtap", id="0", mkstream=True)
        admin.xadd("rawtap:{0}", {b"v": b"1"})
        keda = redis.Redis(
            port=server.port, username="rawtap-keda", password=PASSWORD, protocol=3
        )  # HELLO 3 AUTH, as go-redis connects
        for command in KEDA_COMMANDS:
            try:
                _command(keda, *command)
            except redis.exceptions.NoPermissionError:
                raise AssertionError(f"rawtap-keda may not run {command}") from None
            except redis.exceptions.ResponseError as e:
                # Allowed, but this is not a cluster: the ACL let it through.
                if command != ("CLUSTER", "SLOTS"):
                    raise AssertionError(f"{command}: {e}") from e
        info = keda.info("server")
        assert int(str(info["redis_version"]).split(".")[0]) >= 7  # KEDA's lag needs 7+
        assert keda.xpending("rawtap:{0}", "rawtap")["pending"] == 0
        for command in (
            ("XADD", "rawtap:{0}", "*", "a", "b"),
            ("XRANGE", "rawtap:{0}", "-", "+"),
            ("XREADGROUP", "GROUP", "rawtap", "keda", "STREAMS", "rawtap:{0}", ">"),
            ("KEYS", "*"),
            ("CONFIG", "GET", "*"),
            ("XLEN", "other:{0}"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                _command(keda, *command)
        keda.close()
        _command(admin, "ACL", "LOG", "RESET")
        # The default user is off: without a user nothing is allowed, not even PING.
        anonymous = redis.Redis(port=server.port)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        admin.close()


def test_the_aclfile_holds_only_user_lines_redis_accepts() -> None:
    # Redis refuses anything else in an aclfile (comments included) and does not start;
    # acl_server() above fails with Redis's own message in that case.
    lines = [line for line in ACL.read_text().splitlines() if line.strip()]
    assert all(line.startswith("user ") for line in lines), lines
    users = {line.split()[1] for line in lines}
    assert users == {"default", "rawtap-worker", "rawtap-producer", "rawtap-keda"}
    with acl_server() as server:
        admin = redis.Redis.from_url(server.as_user(ADMIN))
        listed = {str(u, "utf-8") if isinstance(u, bytes) else u for u in admin.acl_users()}
        assert listed == users | {ADMIN}
        default: Any = admin.acl_getuser("default")
        assert "off" in default["flags"]
        admin.close()
