"""A local Redis Cluster for tests: 3 primaries and 3 replicas on free ports.

Started with the real binaries (``redis-server --cluster-enabled yes``, then
``redis-cli --cluster create … --cluster-replicas 1 --cluster-yes``) and waited
for until every node reports ``cluster_state:ok`` with all 16384 slots
assigned and every replica attached. A short node timeout (1 s) makes a
failover take a few seconds.

Also here: :class:`CommandLog`, which attaches ``redis-cli monitor`` to every
node and checks that no command touched keys in two slots.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from rawtap.tools import redis_binary
from tests.support.services import REDIS_HOW_TO

NODE_TIMEOUT_MS = 1000


def _free_cluster_port() -> int:
    """A port free for the server and for its cluster bus (port + 10000)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class ClusterNode:
    """One redis-server of the cluster."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = redis_binary("redis-server")
        if binary is None:
            pytest.fail(f"redis-server is not on PATH; {REDIS_HOW_TO}", pytrace=False)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def client(self, timeout: float = 5) -> redis.Redis:
        """A plain (non-cluster) client on this node."""
        return redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def kill(self) -> None:
        """``kill -9`` the node."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalCluster:
    """Six nodes: after :meth:`start`, the first three are the primaries."""

    workdir: Path
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming every node as a startup node."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"redis+cluster://{hosts}/0"

    def start(self, size: int = 6, replicas: int = 1) -> LocalCluster:
        for _ in range(size):
            node = ClusterNode(_free_cluster_port(), self.workdir)
            node.start()
            self.nodes.append(node)
        for node in self.nodes:
            _wait_ping(node)
        done = subprocess.run(
            [
                redis_binary("redis-cli") or "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas", str(replicas), "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        self.wait_ok(timeout=60, replicas_expected=size // (replicas + 1) * replicas)
        return self

    def alive_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive]

    def wait_ok(self, timeout: float = 30, replicas_expected: int | None = None) -> None:
        """Wait until every live node says ``cluster_state:ok`` and sees the same primaries."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self._ok(replicas_expected):
                    return
            time.sleep(0.1)
        raise AssertionError(f"cluster not ok after {timeout}s")

    def _ok(self, replicas_expected: int | None) -> bool:
        views = set()
        for node in self.alive_nodes():
            with node.client(1) as c:
                raw = c.execute_command("CLUSTER", "INFO")
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                if "cluster_state:ok" not in text or "cluster_slots_ok:16384" not in text:
                    return False
                views.add(tuple(sorted(self._primaries(c))))
        if len(views) != 1:
            return False
        return replicas_expected is None or self._replica_count() >= replicas_expected

    @staticmethod
    def _primaries(client: redis.Redis) -> list[int]:
        raw = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        out = []
        for line in text.splitlines():
            parts = line.split()
            if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8:
                out.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return out

    def _replica_count(self) -> int:
        count = 0
        for node in self.alive_nodes():
            with node.client(1) as c:
                role = c.execute_command("ROLE")
                if role[0] in (b"slave", "slave") and role[3] in (b"connected", "connected"):
                    count += 1
        return count

    def primary_of(self, key: str) -> ClusterNode:
        """The live node that serves ``key``'s slot now."""
        slot = key_slot(key.encode())
        for node in self.alive_nodes():
            with node.client(1) as c:
                for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        port = int(primary[1])
                        return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no node serves {key}")

    def primaries(self) -> list[ClusterNode]:
        with self.alive_nodes()[0].client(1) as c:
            ports = set(self._primaries(c))
        return [n for n in self.nodes if n.port in ports and n.alive]

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _wait_ping(node: ClusterNode) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError), node.client(0.5) as c:
            c.ping()
            return
        time.sleep(0.02)
    pytest.fail(f"cluster node on port {node.port} did not start", pytrace=False)


@contextlib.contextmanager
def local_cluster() -> Iterator[LocalCluster]:
    """A fresh 3-primary, 3-replica cluster, killed afterwards."""
    with tempfile.TemporaryDirectory(prefix="rawtap-cluster-") as workdir:
        cluster = LocalCluster(Path(workdir))
        try:
            yield cluster.start()
        finally:
            cluster.stop()


# -- the command log ------------------------------------------------------------------

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)")
_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}


def _unescape(raw: bytes) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        if code.startswith(b"x") and len(code) == 3:
            return bytes([int(code[1:], 16)])
        return _SIMPLE_ESCAPES.get(code, code)

    return _ESCAPE.sub(one, raw)


def parse_monitor_line(line: bytes) -> list[bytes]:
    """The arguments of one ``MONITOR`` line (``ts [db addr] "CMD" "arg" …``)."""
    _, _, rest = line.partition(b"] ")
    return [_unescape(m.group(1)) for m in _ARG.finditer(rest)]


def command_keys(args: list[bytes]) -> list[bytes]:
    """The keys a command touches, for every command rawtap (and its tests) send."""
    name = args[0].upper()
    if name in (b"XADD", b"XACK", b"XAUTOCLAIM", b"XCLAIM", b"XPENDING", b"XLEN", b"XRANGE",
                b"XREVRANGE", b"XDEL", b"XTRIM", b"TYPE"):  # fmt: skip
        return [args[1]]
    if name in (b"XINFO", b"XGROUP"):
        return [args[2]] if len(args) > 2 and args[1].upper() != b"HELP" else []
    if name in (b"XREADGROUP", b"XREAD"):
        upper = [a.upper() for a in args]
        at = upper.index(b"STREAMS") + 1
        rest = args[at:]
        return rest[: len(rest) // 2]
    if name in (b"EXISTS", b"DEL", b"UNLINK", b"MGET"):
        return args[1:]
    return []  # keyless: PING, CLIENT, CLUSTER, INFO, COMMAND, HELLO, READONLY, …


class CommandLog:
    """``redis-cli monitor`` on every node, into files, for the whole block."""

    def __init__(self, ports: list[int], workdir: Path) -> None:
        self.files = [workdir / f"monitor-{p}.log" for p in ports]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port, path in zip(ports, self.files, strict=True):
            with path.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [redis_binary("redis-cli") or "redis-cli", "-p", str(port), "monitor"],
                        stdout=out,
                    )
                )
        # redis-cli prints OK once MONITOR is attached: wait for that before any traffic.
        deadline = time.monotonic() + 30
        while not all(f.read_bytes().startswith(b"OK") for f in self.files):
            if time.monotonic() > deadline:
                raise AssertionError("a redis-cli MONITOR did not attach within 30 s")
            time.sleep(0.01)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    def commands(self) -> Iterator[list[bytes]]:
        for path in self.files:
            with path.open("rb") as f:
                for line in f:
                    if line.startswith(b"OK"):
                        continue
                    args = parse_monitor_line(line.rstrip(b"\n"))
                    if args:
                        yield args

    def check_single_slot(self) -> dict[str, int]:
        """Assert no command touched two slots; return how many of each command ran."""
        counts: dict[str, int] = {}
        for args in self.commands():
            name = args[0].upper().decode()
            if name in {"XINFO", "XGROUP"}:
                name += " " + args[1].upper().decode()
            counts[name] = counts.get(name, 0) + 1
            keys = command_keys(args)
            slots = {key_slot(k) for k in keys}
            assert len(slots) <= 1, f"a command spans slots {sorted(slots)}: {args[:6]}"
            if name == "XREADGROUP":
                assert len(keys) == 1, f"XREADGROUP over {len(keys)} streams: {args}"
        return counts
