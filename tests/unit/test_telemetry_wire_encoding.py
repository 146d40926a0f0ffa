"""rawtap's own OTLP span encoding equals the SDK's encoder, span for span, field for field.

The OTLP/HTTP path (:class:`OtlpSpanSender`) gets a batch's spans as bytes
rawtap wrote itself; every other processor gets ``ReadableSpan`` objects. The
same batch through both must decode to the same ``Span`` messages as the SDK's
``encode_spans`` makes of the ReadableSpans, under the same resources.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rawtap.consumer.derivation import derive
from rawtap.consumer.telemetry._export import OtlpSpanSender, RawSpanExporter, span_processor
from rawtap.consumer.telemetry._genai import gen_ai_attributes, record_attributes
from rawtap.consumer.telemetry._spans import Spans
from tests.support.records import make_record

BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":5}}'
)


class _Capture(RawSpanExporter):
    def __init__(self) -> None:
        super().__init__(endpoint="http://127.0.0.1:9/v1/traces")
        self.requests: list[bytes] = []

    def export_encoded(self, data: bytes) -> bool:
        self.requests.append(data)
        return True


def _records() -> list[Any]:
    request = b'{"model":"gpt-4o","messages":[]}'
    url = "https://api.openai.com:8443/v1/chat/completions"
    return [
        make_record(
            "openai", BODY, url=url, request_body=request, service="svc-a",
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tracestate="vendor=x,other=y",
        ),
        make_record("openai", BODY, url=url, request_body=request, service="svc-b"),
        make_record(
            "openai", b'{"error":{"message":"bad model"}}', url=url, status=400,
            request_body=request, first_byte_ns=None, session_id="s-1",
        ),
        make_record(
            "openai", BODY, url=url, request_body=request,
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b8-00",
        ),
    ]  # fmt: skip


def _by_span_id(request: ExportTraceServiceRequest) -> dict[bytes, tuple[Any, Any]]:
    out = {}
    for resource_spans in request.resource_spans:
        resource = sorted((kv.key, str(kv.value)) for kv in resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out[span.span_id] = ((tuple(resource), scope_spans.scope.name), span)
    return out


LIMITS = {
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "6",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "0",
}


@pytest.mark.parametrize(
    "limits",
    [
        {},
        LIMITS,
        {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "3", "OTEL_SPAN_EVENT_COUNT_LIMIT": "0"},
    ],
)
def test_rawtap_encoding_equals_the_sdk_encoder_for_the_same_batch(
    limits: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    capture = _Capture()
    sender = OtlpSpanSender(capture, {"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    memory = InMemorySpanExporter()
    resource = Resource({"service.name": "rawtap-worker", "service.instance.id": "w1"})
    spans = Spans([sender, SimpleSpanProcessor(memory)], resource)
    records = _records()
    stored = [(r, derive(r, with_request_model=True)) for r in records]
    gen_ais = [gen_ai_attributes(r, f) for r, f in stored]
    built = spans.record_spans(stored, gen_ais)
    attrs = {"messaging.system": "redis", "rawtap.records": len(records)}
    spans.emit(built, "rawtap:{0}", 1_000, 2_000, attrs)
    assert sender.force_flush(5_000)
    sender.shutdown()

    ours = ExportTraceServiceRequest.FromString(b"".join(capture.requests))
    sdk = encode_spans(memory.get_finished_spans())
    # The caller's unsampled trace (flags 00) yields no span, as the SDK's sampler says.
    assert len(memory.get_finished_spans()) == len(records) - 1 + 1
    mine, theirs = _by_span_id(ours), _by_span_id(sdk)
    assert set(mine) == set(theirs)
    for span_id, (where, span) in theirs.items():
        assert mine[span_id][0] == where
        assert mine[span_id][1] == span, span.name
    if limits:
        assert any(s.dropped_attributes_count or s.dropped_events_count for _, s in mine.values())


def test_record_span_limits_are_the_sdk_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)
    spans = Spans([SimpleSpanProcessor(InMemorySpanExporter())], Resource({}))
    tracer = TracerProvider(span_limits=SpanLimits()).get_tracer("t")
    records = _records()
    stored = [(r, derive(r, with_request_model=True)) for r in records]
    gen_ais = [gen_ai_attributes(r, f) for r, f in stored]
    for span, (record, fields), gen_ai in zip(
        spans.record_spans(stored, gen_ais), stored, gen_ais, strict=True
    ):
        sdk = tracer.start_span(
            span.name, attributes={**gen_ai[0], **record_attributes(record, fields)}
        )
        assert span.dropped == sdk.dropped_attributes > 0  # type: ignore[attr-defined]
        assert dict(span.attributes) == dict(sdk.attributes)  # type: ignore[attr-defined]


def test_the_batch_span_keeps_the_sdk_link_limit() -> None:
    capture = _Capture()
    sender = OtlpSpanSender(capture, {})
    spans = Spans([sender], Resource({"service.name": "rawtap-worker"}))
    records = [make_record("openai", BODY) for _ in range(200)]
    stored = [(r, derive(r)) for r in records]
    built = spans.record_spans(stored, [gen_ai_attributes(r, f) for r, f in stored])
    spans.emit(built, "rawtap:{0}", 1_000, 2_000, {})
    assert sender.force_flush(5_000)
    sender.shutdown()
    request = ExportTraceServiceRequest.FromString(b"".join(capture.requests))
    (batch,) = [s for _, s in _by_span_id(request).values() if s.kind == s.SPAN_KIND_CONSUMER]
    assert len(batch.links) == spans.limits.max_links
    assert batch.dropped_links_count == 200 - len(batch.links)
    assert sender.stats() == {"sent": 201, "failed": 0, "dropped": 0}


def test_without_the_sdk_client_the_sdk_batch_processor_takes_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = RawSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    assert exporter.can_send_encoded()
    sender = span_processor(exporter, {})
    assert isinstance(sender, OtlpSpanSender)
    sender.shutdown()

    changed = RawSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    client = changed.__dict__.pop("_client")  # an SDK release without the attribute used
    assert not changed.can_send_encoded()
    with caplog.at_level(logging.WARNING):
        fallback = span_processor(changed, {})
    assert isinstance(fallback, BatchSpanProcessor)
    assert "batch span processor" in caplog.text
    changed.__dict__["_client"] = client  # for the SDK's own shutdown
    fallback.shutdown()  # type: ignore[no-untyped-call]
