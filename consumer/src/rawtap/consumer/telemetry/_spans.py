"""The worker's spans: one CLIENT span per recorded provider call, one CONSUMER span per batch.

A record's span is named and attributed by the GenAI semantic conventions
(``chat gpt-4o``), with the provider call's *recorded* start and end times, as
a child of the trace context the producer captured (``traceparent``/
``tracestate``), or as a root span when there was none. Its span id (and, for
a root span, its trace id) is derived from ``rawtap.record_id``, so a record
delivered twice (a crash between commit and XACK) yields the same span again,
not a second one. The span is reported under the *recording* service's name
(``Record.service``): in a trace it sits where the call was made.

A batch's span (``process rawtap:{0}``, messaging conventions) links to every
record's trace context.
"""

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
    set_span_in_context,
)

from rawtap.consumer.derivation import Derived
from rawtap.consumer.telemetry._genai import GenAi, end_ns, error_type, record_attributes
from rawtap.shared import Record

SCOPE = "rawtap.consumer"
"""Instrumentation scope of every span and metric the worker emits."""

_HEX = frozenset("0123456789abcdef")


class RecordIds(RandomIdGenerator):
    """Random ids, except for the span the worker is about to start for a record.

    The SDK has no per-span id argument; its provider asks its id generator.
    This one hands out the ids :func:`record_span_ids` derived from the record id
    when they were set for the current thread, random ones otherwise.
    """

    def __init__(self) -> None:
        self._next = threading.local()

    def set_next(self, trace_id: int, span_id: int) -> None:
        """Hand out these ids next, on this thread."""
        self._next.ids = (trace_id, span_id)

    def clear(self) -> None:
        """Random ids again, on this thread."""
        self._next.ids = None

    def generate_trace_id(self) -> int:
        """The id set for this thread, else a random one."""
        ids = getattr(self._next, "ids", None)
        return ids[0] if ids else super().generate_trace_id()

    def generate_span_id(self) -> int:
        """The id set for this thread, else a random one."""
        ids = getattr(self._next, "ids", None)
        return ids[1] if ids else super().generate_span_id()


def record_span_ids(record_id: str) -> tuple[int, int]:
    """(trace id, span id) of a record's span: a root's trace id, and the span id, both stable."""
    digest = hashlib.blake2b(record_id.encode(), digest_size=24, person=b"rawtap-span").digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


def recorded_context(record: Record) -> SpanContext | None:
    """The span context the producer captured, or None when absent or malformed.

    W3C ``traceparent``: ``version-traceid-parentid-flags`` in lowercase hex
    (the tap writes version 00; later versions may append fields).
    """
    header = record.traceparent
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or [len(p) for p in parts[:4]] != [2, 32, 16, 2]:
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if not _HEX.issuperset(trace_hex + span_hex + flags_hex + version):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([record.tracestate]) if record.tracestate else None
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(int(flags_hex, 16)),
        trace_state=state,
    )


class Spans:
    """Tracers (one per recording service) over one processor chain, and the spans they start."""

    def __init__(self, processors: Sequence[SpanProcessor], resource: Resource) -> None:
        self.resource = resource
        self.enabled = bool(processors)
        self.processor = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        for processor in processors:
            self.processor.add_span_processor(processor)
        self._ids = RecordIds()
        self._providers: dict[str | None, TracerProvider] = {}
        self._tracers: dict[str | None, Tracer] = {}
        self._tracer = self._tracer_for(None)

    def _tracer_for(self, service: str | None) -> Tracer:
        tracer = self._tracers.get(service)
        if tracer is not None:
            return tracer
        provider = self._providers.get(service)
        if provider is None:
            resource = self.resource
            if service is not None:
                # The span describes the recording service's call: report it under that
                # service's name. The instance id is the worker's, so it is left out.
                attributes = {
                    k: v for k, v in resource.attributes.items() if k != "service.instance.id"
                }
                attributes["service.name"] = service
                resource = Resource(attributes, resource.schema_url)
            provider = TracerProvider(
                resource=resource,
                shutdown_on_exit=False,
                active_span_processor=self.processor,
                id_generator=self._ids,
            )
            if len(self._providers) < 256:  # bound the cache: services are few
                self._providers[service] = provider
        tracer = provider.get_tracer(SCOPE)
        if service in self._providers:
            self._tracers[service] = tracer
        return tracer

    def record_span(
        self,
        record: Record,
        fields: Derived,
        parent: SpanContext | None,
        gen_ai: GenAi,
    ) -> SpanContext | None:
        """End a record's CLIENT span; its context, or None when it was not sampled."""
        if not self.enabled:
            return None
        attributes, operation, request_model = gen_ai
        attributes = dict(attributes)
        name = f"{operation} {request_model}" if operation and request_model else None
        if name is None:
            name = operation or f"{record.method or 'call'} {record.provider}"
        attributes.update(record_attributes(record, fields))
        start = record.started_at_ns
        end = end_ns(record)
        context = set_span_in_context(NonRecordingSpan(parent)) if parent else Context()
        self._ids.set_next(*record_span_ids(record.record_id))
        try:
            span = self._tracer_for(record.service).start_span(
                name, context=context, kind=SpanKind.CLIENT, start_time=start, attributes=attributes
            )
        finally:
            self._ids.clear()
        first = fields.ttft_ns if fields.ttft_ns is not None else record.first_byte_ns
        if first is not None:
            span.add_event(
                "rawtap.first_token",
                {"gen_ai.response.time_to_first_chunk": first / 1e9},
                timestamp=start + first,
            )
        error = error_type(record)
        if error is not None:
            description = fields.provider_error or record.error or f"HTTP {record.status}"
            span.set_status(Status(StatusCode.ERROR, description))
        span.end(end_time=end)
        context_of_span: SpanContext = span.get_span_context()
        return context_of_span if context_of_span != INVALID_SPAN_CONTEXT else None

    def batch_span(
        self,
        stream: str,
        started_ns: int,
        ended_ns: int,
        links: Sequence[Link],
        attributes: dict[str, Any],
    ) -> None:
        """End a batch's CONSUMER span (``process <stream>``), a root linking to the records."""
        if not self.enabled:
            return
        span = self._tracer.start_span(
            f"process {stream}",
            context=Context(),
            kind=SpanKind.CONSUMER,
            start_time=started_ns,
            links=links,
            attributes=attributes,
        )
        span.end(end_time=ended_ns)
