"""What OpenTelemetry costs: the producer's hot path without and with a configured SDK,
and the worker's throughput without and with its telemetry.

Producer (each variant in a process of its own, since an application sets the
global providers once):

- ``none``: opentelemetry-api only, no SDK (rawtap's metrics are no-ops);
- ``sdk``: the host configured a TracerProvider (batch span processor) and a
  MeterProvider (periodic reader) exporting to nowhere; the call is made inside
  a recording span, so the tap captures a real trace context.

Medians of ``record()`` (2 KB body, real Recorder to Redis), of one tapped
request through an instant in-memory transport (the tap reads the current span
context), of the trace-context capture alone, and — off the hot path — of one
metric collection by the host's reader (where rawtap's observable callbacks run).

Worker: 20 000 records through a Worker into SQLite, telemetry off, then on
(batch span processor and periodic metric reader with exporters that drop).

Run ``python -m uv run python bench/otel_overhead.py`` (Redis on
``RAWTAP_REDIS_URL`` or 127.0.0.1:6379); it prints a Markdown report.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

REDIS_URL = os.environ.get("RAWTAP_REDIS_URL", "redis://127.0.0.1:6379/0")
N = 20_000
BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"' + b"x" * 1900 + b'"}}]}'


def _median_us(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    medians = []
    for _ in range(rounds):
        samples = []
        for _ in range(n // rounds):
            t = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t)
        medians.append(statistics.median(samples) / 1000)
    return statistics.median(medians)


# -- producer, one variant per process ------------------------------------------------


def _configure_sdk() -> Any:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        InMemoryMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class _Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Drop()))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def producer(variant: str) -> dict[str, float]:
    import httpx2

    from rawtap.producer import Recorder
    from rawtap.producer._tap._context import trace_context as _trace_context

    reader = _configure_sdk() if variant == "sdk" else None
    from opentelemetry import trace

    span_cm: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if variant == "sdk":
        span_cm = trace.get_tracer("bench").start_as_current_span("request")
    out: dict[str, float] = {}
    prefix = f"rawtap-bench-otel-{os.getpid()}"
    with tempfile.TemporaryDirectory() as spill, span_cm:
        recorder = Recorder(redis_url=REDIS_URL, stream_prefix=prefix, spill_dir=spill)
        recorder.record("openai", BODY)  # start the writer thread outside the timing
        out["record_us"] = _median_us(lambda: recorder.record("openai", BODY), N)
        assert (_trace_context() is not None) == (variant == "sdk")
        out["trace_context_us"] = _median_us(_trace_context, N)
        inner = httpx2.MockTransport(lambda request: httpx2.Response(200, content=BODY))
        client = httpx2.Client(
            transport=recorder.transport(inner, provider="openai"), base_url="http://api.test"
        )
        out["tapped_call_us"] = _median_us(
            lambda: client.post("/v1/chat/completions", content=b"{}").read(), N // 4
        )
        client.close()
        recorder.flush(30)
        if reader is not None:
            out["collect_us"] = _median_us(reader.collect, 200)
        stats = recorder.stats()
        out["accepted"] = stats.accepted
        out["dropped"] = sum(stats.dropped.values())
        recorder.close()
    import redis

    client_r = redis.Redis.from_url(REDIS_URL)
    keys = list(client_r.scan_iter(match=f"{prefix}:*"))
    if keys:
        client_r.delete(*keys)
    client_r.close()
    return out


# -- worker -------------------------------------------------------------------------------


def worker(telemetry_on: bool, records: int = N) -> float:
    """Records per second through a Worker into SQLite."""
    import redis
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from rawtap.consumer import SqliteSink, Worker
    from rawtap.consumer.telemetry import WorkerTelemetry
    from rawtap.shared import Record, StreamNames, encode_entry, make_record_id

    class _DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class _DropMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **kw: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kw: Any) -> None:
            return None

    prefix = f"rawtap-bench-worker-{os.getpid()}-{int(telemetry_on)}"
    client = redis.Redis.from_url(REDIS_URL)
    stream = StreamNames(prefix).shard(0)
    now = time.time_ns()
    pipe = client.pipeline(transaction=False)
    for seq in range(records):
        record = Record(
            record_id=make_record_id(now, "e" * 16, seq),
            producer_id="e" * 16,
            seq=seq,
            provider="openai",
            url="https://api.openai.com/v1/chat/completions",
            request_body=b'{"model":"gpt-4o"}',
            body=b'{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[],'
            b'"usage":{"prompt_tokens":10,"completion_tokens":20}}',
            status=200,
            started_at_ns=now,
            first_byte_ns=1000,
            ended_ns=2000,
            captured_at_ns=now,
            traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
        )
        pipe.xadd(stream, encode_entry(record))  # type: ignore[arg-type]
    pipe.execute()
    if telemetry_on:
        telemetry = WorkerTelemetry(
            span_processors=[BatchSpanProcessor(_DropSpans(), max_queue_size=100_000)],
            metric_readers=[
                PeriodicExportingMetricReader(_DropMetrics(), export_interval_millis=1000)
            ],
        )
    else:
        telemetry = WorkerTelemetry()
    with tempfile.TemporaryDirectory() as tmp, SqliteSink(os.path.join(tmp, "b.db")) as sink:
        w = Worker(
            redis_url=REDIS_URL,
            stream_prefix=prefix,
            consumer="bench",
            sink=sink,
            block_ms=50,
            telemetry=telemetry,
        )
        import threading

        thread = threading.Thread(target=w.run)
        started = time.perf_counter()
        thread.start()
        while w.stats.acked < records:
            time.sleep(0.005)
        took = time.perf_counter() - started
        w.stop()
        thread.join()
    telemetry.close()
    client.delete(stream, StreamNames(prefix).dead_letters)
    client.close()
    return records / took


def _child(variant: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--producer", variant],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _report(rows: Iterator[str]) -> None:
    for row in rows:
        print(row)


def main() -> None:
    runs = {v: [_child(v) for _ in range(3)] for v in ("none", "sdk")}
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    worker_off = statistics.median(worker(False) for _ in range(3))
    worker_on = statistics.median(worker(True) for _ in range(3))
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}"
        for p in ("opentelemetry-api", "opentelemetry-sdk", "redis", "httpx2")
    )
    none, sdk = med["none"], med["sdk"]
    _report(
        iter(
            [
                "# OpenTelemetry overhead",
                "",
                f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores,"
                f" Linux {platform.release()}",
                f"- Python {platform.python_version()}; {versions}",
                f"- producer: medians of 3 processes per variant, 5 batches each; "
                f"records accepted per process: {int(none['accepted'])}, "
                f"dropped {int(none['dropped'] + sdk['dropped'])}",
                "",
                "## Producer hot path (µs per call)",
                "",
                "| what | no SDK (API no-op) | SDK configured, inside a span | difference |",
                "|---|---:|---:|---:|",
                f"| `record()` 2 KB | {none['record_us']:.2f} | {sdk['record_us']:.2f} |"
                f" {sdk['record_us'] - none['record_us']:+.2f} |",
                f"| trace-context capture (tap) | {none['trace_context_us']:.2f} |"
                f" {sdk['trace_context_us']:.2f} |"
                f" {sdk['trace_context_us'] - none['trace_context_us']:+.2f} |",
                f"| tapped request, instant transport | {none['tapped_call_us']:.1f} |"
                f" {sdk['tapped_call_us']:.1f} |"
                f" {sdk['tapped_call_us'] - none['tapped_call_us']:+.1f} |",
                "",
                f"Off the hot path: one metric collection by the host's reader, where rawtap's"
                f" observable instruments read `Recorder.stats()`: {sdk['collect_us']:.0f} µs.",
                "",
                "## Worker (records/s into SQLite, 20 000 records, median of 3)",
                "",
                "| telemetry off | telemetry on (span per record, batch span, metrics) | ratio |",
                "|---:|---:|---:|",
                f"| {worker_off:,.0f} | {worker_on:,.0f} | {worker_on / worker_off:.2f} |",
            ]
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--producer":
        print(json.dumps(producer(sys.argv[2])))
    else:
        main()
