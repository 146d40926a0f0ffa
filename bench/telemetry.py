"""Telemetry: one worker process into SQLite with its OpenTelemetry on (OTLP/HTTP) vs off.

The stream is pre-filled with N 2 KB entries exactly as the producer writes
them, each with a caller's ``traceparent``; a fresh SQLite file per run. Per
round, interleaved:

* **on**: one ``Worker`` process (``bench._consumer rawtap``) configured by
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` only, exporting spans and metrics over
  OTLP/HTTP to a collector sink in this process;
* **off**: the same worker with ``RAWTAP_TELEMETRY=off``.

Both are timed from ``go`` until the group has acknowledged every entry and
the worker, told to stop, has exited: a stopping worker flushes its telemetry
first, so spans still queued on the exporter's thread count; afterwards the
collector must hold every span (N CLIENT spans, one per record id, and the
batch spans). The collector (a small HTTP server accepting ``/v1/traces`` and
``/v1/metrics``) decodes each protobuf request and counts spans; a run in
which a span is missing, or a metric request never arrived, fails.

Reported besides the ratio: telemetry's µs per record (``1/on − 1/off``),
and in this process, per record, the floor of encoding the OTLP protobuf
request alone (the SDK's own ``encode_spans`` of the same spans).
"""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench._common import BODY_BYTES, EntryFactory, Figure, delete_keys, fill_stream, rate_figure
from bench._pipeline import consumers, create_group, go, stop, stream_of, wait_consumed
from bench.worker import fresh_sink

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Collector:
    """An OTLP/HTTP sink on 127.0.0.1: counts the spans (by record id) and metric requests."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.lock = threading.Lock()
        self.record_ids: set[str] = set()
        self.client_spans = 0
        self.batch_spans = 0
        self.metric_requests = 0
        collector = self
        replies = {
            "/v1/traces": ExportTraceServiceResponse().SerializeToString(),
            "/v1/metrics": ExportMetricsServiceResponse().SerializeToString(),
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                reply = replies.get(self.path)
                if reply is None:
                    self.send_error(404)
                    return
                if self.path == "/v1/traces":
                    collector.take(ExportTraceServiceRequest.FromString(body))
                else:
                    with collector.lock:
                        collector.metric_requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """The base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: Any) -> None:
        """Count the spans of one ``ExportTraceServiceRequest``."""
        ids: list[str] = []
        clients = batches = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if span.kind == span.SPAN_KIND_CLIENT:
                        clients += 1
                        ids.extend(
                            kv.value.string_value
                            for kv in span.attributes
                            if kv.key == "rawtap.record_id"
                        )
                    elif span.kind == span.SPAN_KIND_CONSUMER:
                        batches += 1
        with self.lock:
            self.client_spans += clients
            self.batch_spans += batches
            self.record_ids.update(ids)

    def reset(self) -> None:
        """Forget what was counted."""
        with self.lock:
            self.record_ids.clear()
            self.client_spans = self.batch_spans = self.metric_requests = 0

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


def _run(
    redis_url: str, entries: Sequence[dict[bytes, bytes]], collector: Collector | None
) -> float:
    """Records/s of one worker process over a fresh stream of ``entries``."""
    n = len(entries)
    prefix = f"rawtap-bench-{uuid.uuid4().hex[:8]}"
    if collector is None:
        env = {"RAWTAP_TELEMETRY": "off"}
    else:
        collector.reset()
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "RAWTAP_TELEMETRY": "auto",
        }
    try:
        fill_stream(redis_url, stream_of(prefix), entries)
        create_group(redis_url, prefix)
        with (
            fresh_sink("sqlite", None) as sink_url,
            consumers("rawtap", redis_url, prefix, sink_url, env=env) as procs,
        ):
            started = time.perf_counter()
            go(procs)
            wait_consumed(redis_url, prefix, n, 600, procs)
            results = stop(procs)  # the worker flushes its telemetry before it exits
            elapsed = time.perf_counter() - started
        if sum(r["stored"] for r in results) != n:
            raise RuntimeError(f"stored {sum(r['stored'] for r in results)} of {n}")
        if collector is not None:
            got, clients = len(collector.record_ids), collector.client_spans
            if got != n or clients != n or collector.batch_spans == 0:
                raise RuntimeError(
                    f"collector got {got} record ids in {clients} CLIENT spans of {n}, "
                    f"{collector.batch_spans} batch spans"
                )
            if collector.metric_requests == 0:
                raise RuntimeError("collector got no metrics")
        return n / elapsed
    finally:
        delete_keys(redis_url, prefix)


def encode_floor_us(entries: Sequence[dict[bytes, bytes]]) -> float:
    """µs per record of the SDK's OTLP encoding of spans like the worker's (this process)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from rawtap.consumer import derive_all
    from rawtap.consumer.telemetry._genai import gen_ai_attributes, record_attributes
    from rawtap.shared import decode_entry

    records = [decode_entry(e) for e in entries[:500]]
    derived = derive_all(records, with_request_model=True)
    tracer = TracerProvider().get_tracer("bench")
    spans = []
    for record, fields in zip(records, derived, strict=True):
        attrs = {**gen_ai_attributes(record, fields)[0], **record_attributes(record, fields)}
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attrs)
        span.end()
        spans.append(span)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        encode_spans(spans).SerializeToString()
        best = min(best, time.perf_counter() - t)
    return best / len(spans) * 1e6


def run(redis_url: str, quick: bool, **_: Any) -> list[Figure]:
    """Interleaved rounds of the worker with telemetry on and off."""
    n = 2_000 if quick else 20_000
    rounds = 1 if quick else 5
    factory = EntryFactory(BODY_BYTES)
    on: list[float] = []
    off: list[float] = []
    collector = Collector()
    try:
        entries = _traced(factory.make(n))
        for r in range(rounds):
            order = [(on, collector), (off, None)]
            for out, sink in order if r % 2 == 0 else reversed(order):
                out.append(_run(redis_url, entries, sink))
    finally:
        collector.close()
    per_record = [1e6 / a - 1e6 / b for a, b in zip(on, off, strict=True)]
    per_record.sort()
    floor = encode_floor_us(entries)
    return [
        rate_figure(
            "telemetry", "worker → SQLite, telemetry on vs off", on, off,
            "same worker, RAWTAP_TELEMETRY=off", ratio_goal=0.8,
            note=f"{n:,} records per run; on = OTLP/HTTP to a local collector, every span counted",
            extra={
                "telemetry_us_per_record": per_record[len(per_record) // 2],
                "sdk_otlp_encode_us_per_span": floor,
            },
        ),
    ]  # fmt: skip


def _traced(entries: list[dict[bytes, bytes]]) -> list[dict[bytes, bytes]]:
    """The entries re-encoded with a caller's trace context (as a tapped call inside a span)."""
    from rawtap.shared import decode_entry, encode_entry

    return [
        encode_entry(decode_entry(e).model_copy(update={"traceparent": CALLER})) for e in entries
    ]
