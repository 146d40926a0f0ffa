"""Finding the services tests need, and failing loudly when they are missing."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from rawtap.tools import redis_binary

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

REDIS_HOW_TO = (
    "start it with `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
    '--save "" --appendonly no` or set RAWTAP_TEST_REDIS_URL'
)
POSTGRES_HOW_TO = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "or set RAWTAP_TEST_POSTGRES_URL"
)


def docker_engine_answers() -> bool:
    """True when a Docker engine responds (then testcontainers is used)."""
    if os.environ.get("RAWTAP_TEST_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not os.path.exists("/var/run/docker.sock"):
        return False  # no engine configured: skip the client, which leaks a socket on failure
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()  # collect the docker client's sockets while the warning is silenced


def require_redis(url: str) -> str:
    """Return ``url`` if Redis answers PING there, else fail the test saying how to start it."""
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"Redis is not reachable at {url} ({e}); {REDIS_HOW_TO}", pytrace=False)
    finally:
        client.close()
    return url


def require_postgres(url: str) -> str:
    """Return ``url`` if PostgreSQL accepts a connection there, else fail saying how to start it."""
    try:
        import psycopg
    except ImportError:
        pytest.fail("psycopg is not installed; run the README's test command", pytrace=False)
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        pytest.fail(f"PostgreSQL is not reachable at {url} ({e}); {POSTGRES_HOW_TO}", pytrace=False)
    return url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A private ``redis-server`` a test may kill, stall and restart."""

    port: int
    workdir: str
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart) the server and wait until it answers."""
        binary = redis_binary("redis-server")
        if binary is None:
            pytest.fail(f"redis-server is not on PATH; {REDIS_HOW_TO}", pytrace=False)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
                "--daemonize",
                "no",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.ConnectionError):
                    client.ping()
                    return self
                time.sleep(0.02)
        finally:
            client.close()
        pytest.fail(f"private redis-server on port {self.port} did not start", pytrace=False)

    def kill(self) -> None:
        """``kill -9`` the server and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the server gracefully."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def private_redis(*extra_args: str) -> Iterator[RedisServer]:
    """A private redis-server on a free port, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="rawtap-redis-") as workdir:
        server = RedisServer(free_port(), workdir, list(extra_args)).start()
        try:
            yield server
        finally:
            server.kill()
