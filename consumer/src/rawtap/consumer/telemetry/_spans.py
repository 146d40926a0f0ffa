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

Spans are built per batch from the records, not through a Tracer: the sampler
the SDK would use (``OTEL_TRACES_SAMPLER``) decides, and the span limits
(``OTEL_SPAN_LINK_COUNT_LIMIT``) bound the batch span's links as the SDK
would. An :class:`~._export.OtlpSpanSender` gets the batch's spans as one
encoded OTLP request (:mod:`._wire`); any other processor gets
``ReadableSpan`` objects, as from the SDK.
"""

import random
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from rawtap.consumer.derivation import Derived
from rawtap.consumer.telemetry import _wire
from rawtap.consumer.telemetry._context import record_span_ids, recorded_context
from rawtap.consumer.telemetry._export import OtlpSpanSender
from rawtap.consumer.telemetry._genai import GenAi, end_ns, error_type, record_attributes
from rawtap.consumer.telemetry._limits import bound
from rawtap.shared import Record

SCOPE = "rawtap.consumer"
"""Instrumentation scope of every span and metric the worker emits."""

_SCOPE = InstrumentationScope(SCOPE)
_SCOPE_BYTES = _wire.scope(SCOPE, None)
_DEFAULT_SAMPLER = ParentBased(ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]


class RecordSpan:
    """One record's CLIENT span, as plain values (made into bytes or a ReadableSpan)."""

    __slots__ = (
        "attributes",
        "dropped",
        "end",
        "error",
        "first",
        "limits",
        "name",
        "parent",
        "record_id",
        "sampled",
        "service",
        "span_id",
        "start",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        record: Record,
        fields: Derived,
        parent: SpanContext | None,
        gen_ai: GenAi,
        limits: SpanLimits,
    ) -> None:
        attributes, operation, request_model = gen_ai
        self.limits = limits
        self.record_id = record.record_id
        self.dropped = 0
        name = f"{operation} {request_model}" if operation and request_model else None
        self.name = name or operation or f"{record.method or 'call'} {record.provider}"
        self.attributes: Any = {**attributes, **record_attributes(record, fields, gen_ai)}
        root_trace, self.span_id = record_span_ids(record.record_id)
        self.parent = parent
        self.trace_id = parent.trace_id if parent is not None else root_trace
        self.trace_state = parent.trace_state if parent is not None else None
        self.sampled = True
        self.start = record.started_at_ns
        self.end = end_ns(record)
        self.first = fields.ttft_ns if fields.ttft_ns is not None else record.first_byte_ns
        self.error: str | None = None
        if error_type(record) is not None:
            self.error = fields.provider_error or record.error or f"HTTP {record.status}"
        self.service = record.service

    def context(self) -> SpanContext:
        """The span's own context."""
        return SpanContext(
            self.trace_id,
            self.span_id,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if self.sampled else 0),
            trace_state=self.trace_state,
        )

    def bound(self) -> None:
        """Apply the span attribute limits (after sampling, as the SDK's span does)."""
        limits = self.limits
        self.attributes, self.dropped = bound(
            self.attributes, limits.max_span_attributes, limits.max_span_attribute_length
        )

    def _event_attributes(self) -> tuple[Any, int]:
        assert self.first is not None
        attributes = {"gen_ai.response.time_to_first_chunk": self.first / 1e9}
        limits = self.limits
        return bound(attributes, limits.max_event_attributes, limits.max_attribute_length)

    def events(self) -> BoundedList[Event]:
        """The first-token event, when the record has a first byte (within the event limit)."""
        events = []
        if self.first is not None:
            attrs = self._event_attributes()[0]
            events.append(Event("rawtap.first_token", attrs, timestamp=self.start + self.first))
        return BoundedList.from_seq(self.limits.max_events, events)

    def status(self) -> Status:
        """ERROR with the provider's message for a failed call, else unset."""
        if self.error is None:
            return Status(StatusCode.UNSET)
        return Status(StatusCode.ERROR, self.error)

    def encoded(self) -> bytes:
        """The span's OTLP ``Span`` message."""
        parent = self.parent
        events = b""
        dropped_events = 0
        if self.first is not None and self.limits.max_events == 0:
            dropped_events = 1
        elif self.first is not None:
            attributes, dropped = self._event_attributes()
            events = _wire.event("rawtap.first_token", self.start + self.first, attributes, dropped)
        state = (
            ",".join(f"{k}={v}" for k, v in self.trace_state.items()) if self.trace_state else ""
        )
        flags = _wire.FLAG_HAS_IS_REMOTE | (_wire.FLAG_IS_REMOTE if parent is not None else 0)
        return _wire.span(
            self.trace_id.to_bytes(16, "big"),
            self.span_id.to_bytes(8, "big"),
            state,
            parent.span_id.to_bytes(8, "big") if parent is not None else None,
            self.name,
            _wire.KIND_CLIENT,
            self.start,
            self.end,
            _wire.SPAN_ATTRIBUTES.encode(self.attributes),
            events,
            b"",
            _wire.status(2, self.error) if self.error is not None else b"",
            flags,
            dropped_attributes=self.dropped,
            dropped_events=dropped_events,
        )


class Chain(SynchronousMultiSpanProcessor):
    """The span processors: ended spans go to all but the OTLP senders (they get bytes)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.senders: list[OtlpSpanSender] = []
        self.others: list[SpanProcessor] = []

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        """Add a processor (flushed and shut down with the others)."""
        super().add_span_processor(span_processor)
        if isinstance(span_processor, OtlpSpanSender):
            self.senders.append(span_processor)
        else:
            self.others.append(span_processor)

    def on_end(self, span: ReadableSpan) -> None:
        """Hand an ended span to every processor but the senders."""
        for processor in self.others:
            processor.on_end(span)


class Spans:
    """A batch's spans, to OTLP senders as bytes and to other processors as ReadableSpans."""

    def __init__(self, processors: Sequence[SpanProcessor], resource: Resource) -> None:
        self.resource = resource
        self.enabled = bool(processors)
        self.processor = Chain()
        for processor in processors:
            self.processor.add_span_processor(processor)
        # What a TracerProvider would use: OTEL_TRACES_SAMPLER(_ARG), OTEL_SPAN_*_LIMIT.
        self.sampler = TracerProvider(shutdown_on_exit=False).sampler
        self._parent_based = self.sampler.get_description() == _DEFAULT_SAMPLER
        self.limits = SpanLimits()
        self._resources: dict[str | None, tuple[Resource, bytes]] = {}
        self._random = random.Random()
        self._batch_dropped = 0

    _WORKER = "\x00rawtap-worker"  # the batch span's group: the worker's own resource

    def resource_of(self, service: str | None) -> tuple[Resource, bytes]:
        """The resource a record's span is reported under (its service's name), and its bytes."""
        hit = self._resources.get(service)
        if hit is not None:
            return hit
        resource = self.resource
        if service is not None:
            # The span describes the recording service's call: report it under that
            # service's name. The instance id is the worker's, so it is left out.
            attributes = {
                k: v for k, v in resource.attributes.items() if k != "service.instance.id"
            }
            attributes["service.name"] = service
            resource = Resource(attributes, resource.schema_url)
        out = (resource, _wire.resource(resource))
        if len(self._resources) < 256:  # bound the cache: services are few
            self._resources[service] = out
        return out

    def _sample(self, span: RecordSpan) -> None:
        parent = span.parent
        if self._parent_based:  # the default: follow the caller's decision, sample roots
            span.sampled = parent is None or parent.trace_flags.sampled
            return
        context = set_span_in_context(NonRecordingSpan(parent)) if parent else Context()
        result = self.sampler.should_sample(
            context, span.trace_id, span.name, SpanKind.CLIENT, span.attributes
        )
        span.sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
        span.trace_state = result.trace_state
        if result.attributes:
            span.attributes.update(result.attributes)

    def record_spans(
        self, stored: Sequence[tuple[Record, Derived]], gen_ais: Sequence[GenAi]
    ) -> list[RecordSpan]:
        """The CLIENT spans of a batch's records, sampled."""
        spans = []
        for (record, fields), gen_ai in zip(stored, gen_ais, strict=True):
            span = RecordSpan(record, fields, recorded_context(record), gen_ai, self.limits)
            self._sample(span)
            span.bound()
            spans.append(span)
        return spans

    def emit(
        self,
        spans: Sequence[RecordSpan],
        stream: str,
        started_ns: int,
        ended_ns: int,
        attributes: Mapping[str, Any],
    ) -> None:
        """Export the records' spans and the batch's CONSUMER span (``process <stream>``)."""
        if not self.enabled:
            return
        links = [(s.parent if s.parent is not None else s.context(), s.record_id) for s in spans]
        bounded = BoundedList.from_seq(self.limits.max_links, links)
        kept, dropped = list(bounded), bounded.dropped
        name = f"process {stream}"
        trace_id = self._random.getrandbits(128) or 1
        span_id = self._random.getrandbits(64) or 1
        batch_sampled = True
        if not self._parent_based:
            result = self.sampler.should_sample(
                Context(), trace_id, name, SpanKind.CONSUMER, attributes
            )
            batch_sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
        sampled = [s for s in spans if s.sampled]
        limits = self.limits
        attributes, self._batch_dropped = bound(
            attributes, limits.max_span_attributes, limits.max_span_attribute_length
        )
        for sender in self.processor.senders:
            self._send(sender, sampled, kept, dropped, name, trace_id, span_id, batch_sampled,
                       started_ns, ended_ns, attributes)  # fmt: skip
        if not self.processor.others:
            return
        finished = [self._readable(s) for s in sampled]
        if batch_sampled:
            context = SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.SAMPLED))
            batch = ReadableSpan(
                name=name, context=context, parent=None, resource=self.resource,
                attributes=attributes, kind=SpanKind.CONSUMER,
                links=BoundedList.from_seq(
                    self.limits.max_links, [Link(c, {"rawtap.record_id": r}) for c, r in links]
                ),
                start_time=started_ns, end_time=ended_ns, instrumentation_scope=_SCOPE,
            )  # fmt: skip
            finished.append(batch)
        for span in finished:
            self.processor.on_end(span)

    def _readable(self, span: RecordSpan) -> ReadableSpan:
        return ReadableSpan(
            name=span.name, context=span.context(), parent=span.parent,
            resource=self.resource_of(span.service)[0], attributes=span.attributes,
            events=span.events(), kind=SpanKind.CLIENT, status=span.status(),
            start_time=span.start, end_time=span.end, instrumentation_scope=_SCOPE,
        )  # fmt: skip

    def _send(
        self,
        sender: OtlpSpanSender,
        spans: Sequence[RecordSpan],
        links: Sequence[tuple[SpanContext, str]],
        dropped: int,
        name: str,
        trace_id: int,
        span_id: int,
        batch_sampled: bool,
        started_ns: int,
        ended_ns: int,
        attributes: Mapping[str, Any],
    ) -> None:
        """The batch's spans as encoded requests of at most the sender's batch size."""
        by_service: dict[str | None, list[bytes]] = {}
        for span in spans:
            by_service.setdefault(span.service, []).append(span.encoded())
        if batch_sampled:
            encoded_links = b"".join(
                _wire.link(
                    c.trace_id.to_bytes(16, "big"), c.span_id.to_bytes(8, "big"),
                    {"rawtap.record_id": r},
                    _wire.FLAG_HAS_IS_REMOTE | (_wire.FLAG_IS_REMOTE if c.is_remote else 0),
                )
                for c, r in links
            )  # fmt: skip
            batch = _wire.span(
                trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big"), "", None, name,
                _wire.KIND_CONSUMER, started_ns, ended_ns, _wire.SPAN_ATTRIBUTES.encode(attributes),
                b"", encoded_links, b"", _wire.FLAG_HAS_IS_REMOTE, dropped,
                dropped_attributes=self._batch_dropped,
            )  # fmt: skip
            by_service.setdefault(self._WORKER, []).append(batch)
        size = sender.max_batch
        for service, encoded in by_service.items():
            if service is self._WORKER:
                resource, resource_bytes = self.resource_of(None)  # the worker's own, cached
            else:
                resource, resource_bytes = self.resource_of(service)
            for i in range(0, len(encoded), size):
                chunk = encoded[i : i + size]
                group = (resource_bytes, resource.schema_url, _SCOPE_BYTES, chunk)
                sender.submit(_wire.request([group]), len(chunk))
