"""Sending rawtap's pre-encoded spans over OTLP/HTTP: :class:`OtlpSpanSender`.

The worker encodes a batch's spans itself (:mod:`._wire`) and hands the bytes
over; a thread of the sender's own posts them with the SDK's OTLP/HTTP
exporter's client (endpoint, headers, compression, timeout, certificates and
retries as ``OTEL_EXPORTER_OTLP_*`` say). The ``OTEL_BSP_*`` variables keep
their meaning: a request goes out when ``MAX_EXPORT_BATCH_SIZE`` spans are
waiting or ``SCHEDULE_DELAY`` has passed (or on a flush); beyond
``MAX_QUEUE_SIZE`` waiting spans a batch's spans are dropped and counted, as
the SDK's batch processor does. It is also a ``SpanProcessor``: a span ended
the SDK's way (``on_end``) is encoded by the SDK's encoder and queued alike.
"""

import collections
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from rawtap.shared import LogOnce

logger = logging.getLogger(__name__)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


class RawSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, also sending requests already encoded.

    The SDK has no public call that posts encoded bytes with the exporter's
    settings; this uses the HTTP client its ``export()`` uses (``_client``),
    checked once by :meth:`can_send_encoded` at startup.
    """

    def can_send_encoded(self) -> bool:
        """True when the SDK's exporter still has the client this posts with."""
        return callable(getattr(getattr(self, "_client", None), "export", None))

    def export_encoded(self, data: bytes) -> bool:
        """POST one encoded ``ExportTraceServiceRequest``; True when the collector took it."""
        if getattr(self, "_shutdown", False):
            return False
        limit = getattr(self, "_max_request_size", None)
        if isinstance(limit, int) and 0 < limit < len(data):
            logger.warning("rawtap telemetry: span request of %d bytes over the limit", len(data))
            return False
        # The SDK's HTTP client (retries, compression, headers): the one its export() uses.
        return bool(self._client.export(data).success)


def span_processor(exporter: SpanExporter, environ: Mapping[str, str]) -> SpanProcessor:
    """The processor for a span exporter: rawtap's sender for OTLP/HTTP when it can post
    encoded requests, else the SDK's ``BatchSpanProcessor`` (logged: fails closed)."""
    if isinstance(exporter, RawSpanExporter):
        if exporter.can_send_encoded():
            return OtlpSpanSender(exporter, environ)
        logger.warning(
            "rawtap telemetry: the OTLP/HTTP exporter has no client to post encoded spans; "
            "using the SDK's batch span processor"
        )
    return BatchSpanProcessor(exporter)


class OtlpSpanSender(SpanProcessor):
    """Queues encoded span requests and posts them on a thread of its own."""

    def __init__(self, exporter: RawSpanExporter, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.exporter = exporter
        self.schedule_delay_s = _env_int(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.max_queue = _env_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.max_batch = _env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self.dropped = 0
        """Spans dropped because the queue was full."""
        self.sent = 0
        """Spans the collector took."""
        self.failed = 0
        """Spans whose request failed (after the client's retries)."""
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._queued = 0
        self._busy = False
        self._sending = 0
        self._flushing = 0
        self._stopped = False
        self._cond = threading.Condition()
        self._log = LogOnce(logger)
        self._thread = threading.Thread(target=self._run, name="rawtap-otlp-spans", daemon=True)
        self._thread.start()

    def submit(self, data: bytes, spans: int) -> bool:
        """Queue one encoded request of ``spans`` spans; False when dropped (queue full)."""
        with self._cond:
            if self._stopped or self._queued + spans > self.max_queue:
                self.dropped += spans
                self._log.warning("full", "rawtap telemetry: span queue full, spans dropped")
                return False
            self._queue.append((data, spans))
            self._queued += spans
            if self._queued >= self.max_batch:
                self._cond.notify_all()
        return True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing: spans are queued when they end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a span ended the SDK's way (encoded by the SDK's encoder)."""
        if span.context is not None and span.context.trace_flags.sampled:
            self.submit(encode_spans([span]).SerializePartialToString(), 1)

    def _take(self) -> bytes | None:
        """The next request (up to ``max_batch`` spans joined), or None when stopping."""
        with self._cond:
            deadline = time.monotonic() + self.schedule_delay_s
            while self._queued < self.max_batch and not self._flushing and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if not self._queue:
                return None
            parts: list[bytes] = []
            spans = 0
            while self._queue and (not parts or spans + self._queue[0][1] <= self.max_batch):
                data, n = self._queue.popleft()
                parts.append(data)
                spans += n
            self._queued -= spans
            self._busy = True
            self._sending = spans
        return b"".join(parts)  # concatenated requests are one request

    def _run(self) -> None:
        while True:
            data = self._take()
            if data is not None:
                ok = False
                try:
                    ok = self.exporter.export_encoded(data)
                except Exception:  # noqa: BLE001 - a broken collector must not end the thread
                    self._log.warning("send", "rawtap telemetry: span export failed", exc_info=True)
                with self._cond:
                    if ok:
                        self.sent += self._sending
                    else:
                        self.failed += self._sending
                    self._busy = False
                    self._cond.notify_all()
            with self._cond:
                if self._stopped and not self._queue:
                    return

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send everything queued; True when it went out within the timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(left, 0.1))
                return True
            finally:
                self._flushing -= 1

    def shutdown(self) -> None:
        """Flush, stop the thread and the exporter."""
        self.force_flush()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(1.0)
        self.exporter.shutdown()  # type: ignore[no-untyped-call]

    def stats(self) -> dict[str, Any]:
        """Spans sent, failed and dropped so far."""
        with self._cond:
            return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped}
