"""What every benchmark shares: figures and ratios, statistics, services, data.

A :class:`Figure` is one line of the results table: a subject measured against a
baseline *in the same run*, as the median of per-round ratios with their spread
(min–max), since these machines are shared and noisy. Services: a private
``redis-server`` on a free port (no interference from other users of the
machine's Redis), PostgreSQL schemas created and dropped per case. Data: the
same 2 KB (or any size) OpenAI chat completions, as ``Recorder.record``
arguments or as the stream entries the writer thread makes of them.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis

from rawtap.tools import redis_binary

POSTGRES_URL = os.environ.get(
    "RAWTAP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BODY_BYTES = 2048
_TEXT = "the quick brown fox jumps over the lazy dog while rawtap records every byte "


@dataclass(slots=True)
class Figure:
    """One measured figure: subject vs baseline, as a ratio with its spread over rounds.

    ``ratio`` is oriented so that **higher is better for rawtap** (a time ratio is
    baseline/subject, a rate ratio subject/baseline); ``ratio_goal`` is the goal on
    that ratio, ``goal`` a goal on the subject's own value (``higher`` says which way).
    """

    bench: str
    name: str
    unit: str
    subject: float
    baseline: float | None
    baseline_name: str
    ratio: float | None
    ratio_min: float | None = None
    ratio_max: float | None = None
    rounds: int = 1
    goal: float | None = None
    higher: bool = True
    ratio_goal: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True/False when the figure has a goal, None otherwise."""
        checks = []
        if self.goal is not None:
            checks.append(self.subject >= self.goal if self.higher else self.subject <= self.goal)
        if self.ratio_goal is not None and self.ratio is not None:
            checks.append(self.ratio >= self.ratio_goal)
        return all(checks) if checks else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, with ``met`` resolved."""
        out = asdict(self)
        out["met"] = self.met
        return out


def rate_figure(
    bench: str,
    name: str,
    subject: Sequence[float],
    baseline: Sequence[float] | None,
    baseline_name: str,
    *,
    unit: str = "records/s",
    goal: float | None = None,
    ratio_goal: float | None = None,
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> Figure:
    """A rate (higher is better) from paired per-round values; ratio = subject / baseline."""
    ratios = [s / b for s, b in zip(subject, baseline or (), strict=False) if b > 0]
    return _figure(
        bench, name, unit, subject, baseline, baseline_name, ratios, goal, True, ratio_goal, note,
        extra,
    )  # fmt: skip


def time_figure(
    bench: str,
    name: str,
    subject: Sequence[float],
    baseline: Sequence[float] | None,
    baseline_name: str,
    *,
    unit: str = "µs",
    goal: float | None = None,
    ratio_goal: float | None = None,
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> Figure:
    """A time (lower is better) from paired per-round values; ratio = baseline / subject."""
    ratios = [b / s for s, b in zip(subject, baseline or (), strict=False) if s > 0]
    return _figure(
        bench, name, unit, subject, baseline, baseline_name, ratios, goal, False, ratio_goal, note,
        extra,
    )  # fmt: skip


def _figure(
    bench: str,
    name: str,
    unit: str,
    subject: Sequence[float],
    baseline: Sequence[float] | None,
    baseline_name: str,
    ratios: list[float],
    goal: float | None,
    higher: bool,
    ratio_goal: float | None,
    note: str,
    extra: dict[str, Any] | None,
) -> Figure:
    return Figure(
        bench=bench,
        name=name,
        unit=unit,
        subject=statistics.median(subject),
        baseline=statistics.median(baseline) if baseline else None,
        baseline_name=baseline_name,
        ratio=statistics.median(ratios) if ratios else None,
        ratio_min=min(ratios) if ratios else None,
        ratio_max=max(ratios) if ratios else None,
        rounds=len(subject),
        goal=goal,
        higher=higher,
        ratio_goal=ratio_goal,
        note=note,
        extra=extra or {},
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0–1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return float(sorted_values[index])


def interleave(variants: Sequence[Callable[[], float]], rounds: int) -> list[list[float]]:
    """Run each variant once per round, alternating the order; per-variant lists of results.

    Alternating (ABC, CBA, …) spreads slow drift of a shared machine over all variants.
    """
    out: list[list[float]] = [[] for _ in variants]
    order = list(range(len(variants)))
    for r in range(rounds):
        for i in order if r % 2 == 0 else reversed(order):
            out[i].append(variants[i]())
    return out


# -- services ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A ``redis-server`` of our own on a free port (no persistence); yields its URL."""
    binary = redis_binary("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH; install it (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rawtap-bench-redis-") as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", tmp, "--logfile", os.path.join(tmp, "redis.log")],
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            client.close()
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def redis_version(url: str) -> str:
    """The server's version string."""
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def postgres_reachable(url: str = POSTGRES_URL) -> bool:
    """True when PostgreSQL accepts a connection at ``url``."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


@contextlib.contextmanager
def postgres_schema(base: str = POSTGRES_URL) -> Iterator[str]:
    """A sink URL on a schema of our own, dropped afterwards."""
    import psycopg

    schema = f"rawtap_bench_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{base}?schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix:``."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- data -----------------------------------------------------------------------------------


def body_of_size(size: int, i: int = 0) -> bytes:
    """An OpenAI chat completion of about ``size`` bytes (exactly, from ~200 B up)."""
    doc: dict[str, Any] = {
        "id": f"chatcmpl-{i:012d}",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 100 + i % 50, "completion_tokens": 300, "total_tokens": 400},
    }
    bare = len(orjson.dumps(doc))
    want = max(0, size - bare)
    doc["choices"][0]["message"]["content"] = (_TEXT * (want // len(_TEXT) + 1))[:want]
    return orjson.dumps(doc)


REQUEST_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something."}]}'
METADATA = {"endpoint": "/v1/chat/completions", "user_tier": "pro"}
DETAILS: dict[str, Any] = {
    "status": 200,
    "method": "POST",
    "url": "https://api.openai.com/v1/chat/completions",
    "request_headers": [("content-type", "application/json"), ("authorization", "[redacted]")],
    "response_headers": [("content-type", "application/json"), ("x-request-id", "req_0123")],
    "request_body": REQUEST_BODY,
}


class EntryFactory:
    """Stream entries exactly as a Recorder's writer thread makes them, with unique ids."""

    def __init__(self, size: int = BODY_BYTES, producer_id: str | None = None) -> None:
        from rawtap.shared import new_producer_id

        self.body = body_of_size(size)
        self.producer_id = producer_id or new_producer_id()
        self.seq = 0

    def make(self, n: int) -> list[dict[bytes, bytes]]:
        """The next ``n`` entries (seq continues across calls)."""
        from rawtap.producer._serialize import serialize

        out = []
        now = time.time_ns()
        for _ in range(n):
            item = (self.seq, 0, (now, "openai", self.body, METADATA, "user-42", DETAILS))
            out.append(serialize(item, self.producer_id, "bench", 8 * 1024 * 1024).entry)
            self.seq += 1
        return out


def fill_stream(url: str, stream: str, entries: Sequence[dict[bytes, bytes]]) -> None:
    """XADD ``entries`` to ``stream`` in pipelined batches of 1000."""
    client = redis.Redis.from_url(url)
    try:
        for i in range(0, len(entries), 1000):
            pipe = client.pipeline(transaction=False)
            for e in entries[i : i + 1000]:
                pipe.xadd(stream, e)  # type: ignore[arg-type]
            pipe.execute()
    finally:
        client.close()


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of ``pid`` (default: this process) in MB, from /proc."""
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan
