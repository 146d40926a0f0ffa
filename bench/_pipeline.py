"""Running consumer processes (``bench._consumer``) and timing them from outside.

A run is timed from ``go`` to the moment the consumer group has read and
acknowledged the expected number of entries (``XINFO GROUPS``: ``entries-read``
and ``pending``). Both rawtap and the FastStream peer acknowledge only after
their commit, so that moment is also when the sink holds everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis

_ROOT = Path(__file__).resolve().parent.parent


def stream_of(prefix: str) -> str:
    """The stream rawtap's producer and worker use under ``prefix``."""
    return f"{prefix}:{{0}}"


def create_group(url: str, prefix: str, group: str = "rawtap") -> None:
    """Create the consumer group at the start of the stream (both consumers then read it all)."""
    client = redis.Redis.from_url(url)
    try:
        client.xgroup_create(stream_of(prefix), group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    finally:
        client.close()


def group_progress(client: redis.Redis, stream: str, group: str = "rawtap") -> tuple[int, int]:
    """(entries read by the group, entries pending) — (0, 0) before the group exists."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0, 0
    for g in groups:
        name = g["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            read = g.get("entries-read")
            return int(read or 0), int(g["pending"])
    return 0, 0


@contextlib.contextmanager
def consumers(
    kind: str,
    redis_url: str,
    prefix: str,
    sink_url: str,
    *,
    count: int = 1,
    batch: int = 500,
    env: dict[str, str] | None = None,
) -> Iterator[list[subprocess.Popen[str]]]:
    """Start ``count`` consumer processes and wait until each says ``ready``."""
    procs: list[subprocess.Popen[str]] = []
    try:
        argv = [sys.executable, "-m", "bench._consumer", kind, "--redis", redis_url,
                "--prefix", prefix, "--sink", sink_url, "--batch", str(batch)]  # fmt: skip
        procs.extend(
            subprocess.Popen(
                [*argv, "--name", f"bench-{i}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=_ROOT,
                env={**os.environ, **(env or {})},
            )
            for i in range(count)
        )
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"{kind} consumer did not start (said {line!r})")
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def go(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Tell every consumer to start."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def stop(procs: Sequence[subprocess.Popen[str]], timeout: float = 30) -> list[dict[str, Any]]:
    """Tell every consumer to stop; their JSON results."""
    out = []
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("stop\n")
        p.stdin.flush()
    for p in procs:
        stdout, _ = p.communicate(timeout=timeout)
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            raise RuntimeError(f"consumer exited {p.returncode}: {stdout[-500:]!r}")
        out.append(json.loads(lines[-1]))
    return out


def wait_consumed(
    redis_url: str, prefix: str, expected: int, timeout: float, procs: Sequence[Any] = ()
) -> float:
    """Block until the group read and acknowledged ``expected`` entries; the time it took."""
    client = redis.Redis.from_url(redis_url)
    stream = stream_of(prefix)
    started = time.perf_counter()
    try:
        while True:
            read, pending = group_progress(client, stream)
            if read >= expected and pending == 0:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"consumed {read}/{expected} ({pending} pending) in {timeout} s")
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a consumer exited early ({p.returncode})")
            time.sleep(0.005)
    finally:
        client.close()


def timed_consume(
    kind: str,
    redis_url: str,
    prefix: str,
    sink_url: str,
    expected: int,
    *,
    count: int = 1,
    batch: int = 500,
    timeout: float = 600,
) -> tuple[float, list[dict[str, Any]]]:
    """Records/s of ``count`` ``kind`` consumers over a pre-filled stream, and their results."""
    with consumers(kind, redis_url, prefix, sink_url, count=count, batch=batch) as procs:
        go(procs)
        elapsed = wait_consumed(redis_url, prefix, expected, timeout, procs)
        results = stop(procs)
    return expected / elapsed, results
