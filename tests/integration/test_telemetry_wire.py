"""A real ``rawtap worker`` process exporting over OTLP/HTTP, configured by ``OTEL_*`` only.

The receiver is started by the test and decodes the protobuf (opentelemetry-proto).
The span processor's schedule delay is set far beyond the test, so the spans
that arrive were flushed by the SIGTERM path (RELIABILITY.md property 13).
An exporter that never answers delays neither persistence nor the exit.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
import redis

from rawtap.consumer import SqliteSink
from rawtap.consumer.telemetry import record_span_ids
from rawtap.shared import StreamNames, encode_entry
from tests.support.otlp import OtlpReceiver, attributes
from tests.support.pipeline import PROCESS_EXIT_S, spawn_worker, wait_until
from tests.support.records import make_record, sse
from tests.support.streams import xadd_entry

pytestmark = pytest.mark.redis

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


REQUEST = b'{"model":"gpt-wire","messages":[],"temperature":0.5,"max_tokens":9,"stop":["END"]}'


def _chunks(i: int) -> list[bytes]:
    """A chat stream: two deltas, then usage and [DONE]."""
    base = {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "model": "gpt-wire",
            "system_fingerprint": "fp_wire"}  # fmt: skip
    last = {"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}
    return sse(
        (None, {**base, "choices": [{"index": 0, "delta": {"content": "a"}}]}),
        (None, {**base, "choices": [last]}),
        (None, {**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        (None, b"[DONE]"),
    )


def _store(
    redis_client: redis.Redis, prefix: str, n: int, traced: bool = True, streamed: int = 0
) -> list[str]:
    """``n`` chat records (the first ``streamed`` of them streams) on the stream."""
    stream = StreamNames(prefix).shard(0)
    ids = []
    for i in range(n):
        body = (
            b'{"id":"chatcmpl-%d","object":"chat.completion","model":"gpt-wire","choices":[],'
            b'"system_fingerprint":"fp_wire","usage":{"prompt_tokens":3,"completion_tokens":%d}}'
            % (i, i + 1)
        )
        record = make_record(
            "openai",
            body,
            chunks=_chunks(i) if i < streamed else None,
            url="https://api.openai.com/v1/chat/completions",
            request_body=REQUEST if i >= streamed else REQUEST[:-1] + b',"stream":true}',
            traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01" if traced else None,
            service="wire-service",
            session_id="conv-wire",
        )
        xadd_entry(redis_client, stream, encode_entry(record))
        ids.append(record.record_id)
    return ids


def _env(redis_url: str, prefix: str, db: Path, **otel: str) -> dict[str, str]:
    return {
        "RAWTAP_REDIS_URL": redis_url,
        "RAWTAP_STREAM_PREFIX": prefix,
        "RAWTAP_SINK_URL": f"sqlite:///{db}",
        "RAWTAP_CONSUMER": "w-otlp",
        "RAWTAP_BLOCK_MS": "100",
        **otel,
    }


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    with SqliteSink(db) as sink:
        return sink.count()


def test_worker_exports_spans_and_metrics_over_otlp_http_and_flushes_on_sigterm(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    ids = _store(redis_client, stream_prefix, 5, streamed=1)
    db = tmp_path / "wire.db"
    with OtlpReceiver() as receiver:
        proc = spawn_worker(
            _env(
                redis_url,
                stream_prefix,
                db,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="600000",
                OTEL_METRIC_EXPORT_INTERVAL="600000",
            )
        )
        try:
            wait_until(lambda: _stored(db) == 5, 30, "5 records stored")
            time.sleep(0.3)
            assert receiver.traces == []  # nothing exported before the stop...
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=PROCESS_EXIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, stderr
        assert "telemetry on" in stderr
        spans = list(receiver.spans())  # ...everything after it
        names = receiver.metric_names()
        assert {path for path, _ in receiver.requests} == {"/v1/traces", "/v1/metrics"}
        assert {ct for _, ct in receiver.requests} == {"application/x-protobuf"}

    clients = [(res, s) for res, s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(clients) == 5
    by_id = {attributes(s.attributes)["rawtap.record_id"]: (res, s) for res, s in clients}
    assert set(by_id) == set(ids)
    with SqliteSink(db) as sink:
        for record_id, (resource, span) in by_id.items():
            record = sink.get(record_id)
            assert record is not None
            assert record.ended_ns is not None
            assert span.trace_id.hex() == CALLER_TRACE
            assert span.parent_span_id.hex() == CALLER_SPAN
            assert int.from_bytes(span.span_id, "big") == record_span_ids(record_id)[1]
            assert span.start_time_unix_nano == record.started_at_ns
            assert span.end_time_unix_nano == record.started_at_ns + record.ended_ns
            assert span.name == "chat gpt-wire"
            attrs = attributes(span.attributes)
            assert attrs["gen_ai.usage.input_tokens"] == 3
            assert attrs["gen_ai.response.id"].startswith("chatcmpl-")
            assert resource["service.name"] == "wire-service"
            # The conventions' attributes, as they travel (#16): port, request, conversation.
            assert attrs["server.address"] == "api.openai.com"
            assert attrs["server.port"] == 443
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.provider.name"] == "openai"
            assert attrs["gen_ai.request.temperature"] == 0.5
            assert attrs["gen_ai.request.max_tokens"] == 9
            assert attrs["gen_ai.request.stop_sequences"] == ["END"]
            assert attrs["gen_ai.conversation.id"] == attrs["session.id"] == "conv-wire"
            assert attrs["openai.api.type"] == "chat_completions"
            assert attrs["openai.response.system_fingerprint"] == "fp_wire"
            assert attrs["rawtap.response.stream"] is record.stream
            if record.stream:
                assert attrs["gen_ai.request.stream"] is True
                assert attrs["gen_ai.response.time_to_first_chunk"] > 0
                assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
            else:
                assert "gen_ai.request.stream" not in attrs
                assert "gen_ai.response.time_to_first_chunk" not in attrs
    (batch,) = [(res, s) for res, s in spans if s.kind == s.SPAN_KIND_CONSUMER]
    assert batch[0]["service.name"] == "rawtap-worker"
    assert batch[0]["service.instance.id"] == "w-otlp"
    assert {link.trace_id.hex() for link in batch[1].links} == {CALLER_TRACE}
    assert len(batch[1].links) == 5
    durations = receiver.points("gen_ai.client.operation.duration")
    assert durations
    assert all(a["server.port"] == 443 for a in durations)
    assert {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
        "messaging.client.consumed.messages",
        "rawtap.worker.persist.duration",
        "rawtap.record.capture_to_persist.duration",
        "rawtap.worker.records.stored",
        "rawtap.stream.length",
        "rawtap.stream.lag",
        "rawtap.stream.pending",
    } <= names


def test_an_exporter_that_never_answers_stops_neither_persistence_nor_the_exit(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    _store(redis_client, stream_prefix, 50, traced=False)
    db = tmp_path / "hole.db"
    # A listening socket that never accepts: connections hang until the exporter's timeout.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(100)
        endpoint = f"http://127.0.0.1:{hole.getsockname()[1]}"
        proc = spawn_worker(
            _env(
                redis_url,
                stream_prefix,
                db,
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_BSP_SCHEDULE_DELAY="50",
                OTEL_METRIC_EXPORT_INTERVAL="200",
                OTEL_EXPORTER_OTLP_TIMEOUT="120",
                RAWTAP_TELEMETRY_FLUSH_TIMEOUT_S="1",
            )
        )
        try:
            wait_until(lambda: _stored(db) == 50, 30, "50 records stored")
            _store(redis_client, stream_prefix, 50, traced=False)  # while exports hang
            wait_until(lambda: _stored(db) == 100, 30, "100 records stored")
            stopped = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=100)
            took = time.monotonic() - stopped
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    # The event: the flush bound gave up on the hung exporter. Without it the exit waits
    # for the exporter's own 120 s timeout, so any figure far below that proves the bound.
    assert "not flushed within 1.0s; giving up" in stderr, stderr
    assert took < 60, f"exit took {took:.1f}s with a 1 s telemetry flush bound"
    assert "stored=100" in stderr
