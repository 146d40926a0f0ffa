"""A tiny OTLP/HTTP receiver for tests: decodes the protobuf requests it is sent.

It answers ``POST /v1/traces`` and ``POST /v1/metrics`` like a collector
(``application/x-protobuf``, gzip accepted) and keeps the decoded
``ExportTraceServiceRequest`` / ``ExportMetricsServiceRequest`` messages.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class OtlpReceiver:
    """Listens on 127.0.0.1 (a free port) until closed; ``endpoint`` is its base URL."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._take(self.path, self.headers.get("Content-Type", ""), body, self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _take(self, path: str, content_type: str, body: bytes, handler: Any) -> None:
        with self._lock:
            self.requests.append((path, content_type))
            if path == "/v1/traces":
                self.traces.append(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
            elif path == "/v1/metrics":
                self.metrics.append(ExportMetricsServiceRequest.FromString(body))
                reply = ExportMetricsServiceResponse().SerializeToString()
            else:
                handler.send_error(404)
                return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)

    def spans(self) -> Iterator[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span received."""
        with self._lock:
            requests = list(self.traces)
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        yield resource, span

    def metric_names(self) -> set[str]:
        """Names of every metric received."""
        with self._lock:
            requests = list(self.metrics)
        return {
            metric.name
            for request in requests
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }

    def points(self, name: str) -> list[dict[str, Any]]:
        """The attributes of every data point received for the metric ``name``."""
        with self._lock:
            requests = list(self.metrics)
        out: list[dict[str, Any]] = []
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == name:
                            data = getattr(metric, metric.WhichOneof("data"))
                            out.extend(attributes(p.attributes) for p in data.data_points)
        return out

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def attributes(items: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list → dict of plain Python values."""
    out: dict[str, Any] = {}
    for kv in items:
        kind = kv.value.WhichOneof("value")
        raw = getattr(kv.value, kind) if kind else None
        if kind == "array_value":
            assert raw is not None
            raw = [getattr(v, v.WhichOneof("value")) for v in raw.values]
        out[kv.key] = raw
    return out
