"""Telemetry configuration (``RAWTAP_TELEMETRY``, ``OTEL_*``) and failure isolation."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from rawtap.consumer import SqliteSink, Worker
from rawtap.consumer.telemetry import WorkerTelemetry, otel_configured
from rawtap.shared import ConfigError, StreamNames, encode_entry
from tests.support.otel import memory_telemetry, value
from tests.support.pipeline import wait_until, worker_thread
from tests.support.records import make_record
from tests.support.streams import xadd_entry

_OTEL = (
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "RAWTAP_TELEMETRY",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    # Nothing listens on the endpoints below: keep the final export attempt short.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.3")
    monkeypatch.setenv("RAWTAP_TELEMETRY_FLUSH_TIMEOUT_S", "0.5")


def _from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> WorkerTelemetry:
    for name, val in env.items():
        monkeypatch.setenv(name, val)
    return WorkerTelemetry.from_env("w-7")


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = _from_env(monkeypatch)
    assert not telemetry.enabled
    assert not otel_configured({})
    worker = Worker(consumer="w")  # what every worker gets without OTEL_* variables
    assert not worker.telemetry.enabled


@pytest.mark.parametrize(
    ("env", "traces", "metrics"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, 1, 1),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}, 1, 1),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"}, 1, 0),
        ({"RAWTAP_TELEMETRY": "on"}, 1, 1),
        ({"RAWTAP_TELEMETRY": "on", "OTEL_TRACES_EXPORTER": "otlp,console"}, 2, 1),
    ],
)
def test_on_when_otel_variables_ask(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], traces: int, metrics: int
) -> None:
    telemetry = _from_env(monkeypatch, **env)
    try:
        assert telemetry.enabled
        assert len(telemetry.span_processors) == traces
        assert len(telemetry.metric_readers) == metrics
        assert telemetry.resource.attributes["service.name"] == "rawtap-worker"
        assert telemetry.resource.attributes["service.instance.id"] == "w-7"
    finally:
        telemetry.close()


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "RAWTAP_TELEMETRY": "off"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
    ],
)
def test_off_when_told(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    assert not _from_env(monkeypatch, **env).enabled


def test_resource_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = _from_env(
        monkeypatch,
        RAWTAP_TELEMETRY="on",
        OTEL_SERVICE_NAME="ingest",
        OTEL_RESOURCE_ATTRIBUTES="service.instance.id=pod-3,deployment.environment=prod",
    )
    try:
        assert telemetry.resource.attributes["service.name"] == "ingest"
        assert telemetry.resource.attributes["service.instance.id"] == "pod-3"
        assert telemetry.resource.attributes["deployment.environment"] == "prod"
    finally:
        telemetry.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"RAWTAP_TELEMETRY": "on", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
        (
            {"RAWTAP_TELEMETRY": "on", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "rawtap-consumer[grpc]",
        ),
        ({"RAWTAP_TELEMETRY": "sometimes"}, "RAWTAP_TELEMETRY"),
    ],
)
def test_a_setting_it_cannot_honour_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _from_env(monkeypatch, **env)


class _Exploding(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise RuntimeError("exporter bug")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("exporter bug")


@pytest.mark.redis
def test_failing_telemetry_never_stops_persistence(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Any
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    records = [make_record() for _ in range(20)]
    for record in records:
        xadd_entry(redis_client, stream, encode_entry(record))
    memory = memory_telemetry()
    memory.telemetry._processor.add_span_processor(_Exploding())
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = Worker(
            redis_url=redis_url,
            stream_prefix=stream_prefix,
            consumer="w1",
            block_ms=50,
            batch_size=5,
            sink=sink,
            telemetry=memory.telemetry,
        )
        with worker_thread(worker):
            wait_until(lambda: worker.stats.acked == 20, what="20 entries acknowledged")
        assert sink.count() == 20
    assert memory.telemetry.errors >= 4  # every batch failed in telemetry, after XACK
    data = memory.metrics()
    assert value(data, "rawtap.worker.errors", rawtap__error__source="telemetry") >= 4
    assert value(data, "rawtap.worker.records.stored") == 20
    memory.telemetry.close()
