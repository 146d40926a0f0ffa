"""OpenTelemetry helpers for tests: in-memory worker telemetry, reading metric points."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rawtap.consumer.derivation import derive
from rawtap.consumer.telemetry import CommittedBatch, TelemetrySettings, WorkerTelemetry
from rawtap.shared import Record


@dataclass
class MemoryTelemetry:
    """A WorkerTelemetry whose spans and metrics stay in memory for assertions."""

    telemetry: WorkerTelemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        """Every span ended so far."""
        return list(self.spans.get_finished_spans())

    def metrics(self) -> MetricsData:
        """Collect now (observable instruments are called back)."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return data


def memory_telemetry(**settings: Any) -> MemoryTelemetry:
    """Telemetry with a synchronous in-memory span exporter and an in-memory metric reader."""
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry = WorkerTelemetry(
        span_processors=[SimpleSpanProcessor(spans)],
        metric_readers=[reader],
        settings=TelemetrySettings(**settings),
    )
    return MemoryTelemetry(telemetry, spans, reader)


@dataclass
class Emitted:
    """What the worker's telemetry made of one committed batch."""

    spans: dict[str, ReadableSpan]
    """The CLIENT spans by record id."""
    metrics: MetricsData

    def attributes(self, record: Record) -> dict[str, Any]:
        """The attributes of ``record``'s span."""
        return dict(self.spans[record.record_id].attributes or {})


def emit(records: Sequence[Record]) -> Emitted:
    """Hand ``records`` to fresh in-memory worker telemetry as one committed batch, derived as
    the worker derives them (with the request model), and collect its spans and metrics."""
    memory = memory_telemetry()
    stored = tuple((r, derive(r, with_request_model=True)) for r in records)
    batch = CommittedBatch(
        stream="rawtap:{0}", group="rawtap", consumer="c", entries=len(stored), stored=stored,
        refused=0, started_ns=time.time_ns(), commit_s=0.001,
    )  # fmt: skip
    memory.telemetry.batch_committed(batch)
    try:
        assert memory.telemetry.errors == 0
        spans = {
            str((s.attributes or {})["rawtap.record_id"]): s
            for s in memory.finished()
            if s.kind is SpanKind.CLIENT
        }
        return Emitted(spans, memory.metrics())
    finally:
        memory.telemetry.close()


def points(data: MetricsData, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, data point) of every point of the metric called ``name``."""
    out: list[tuple[dict[str, Any], Any]] = []
    for metric in _metrics(data):
        if metric.name == name:
            out.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
    return out


def metric_names(data: MetricsData) -> set[str]:
    """Names of every metric in ``data``."""
    return {m.name for m in _metrics(data)}


def value(data: MetricsData, name: str, **attributes: Any) -> Any:
    """The value (sum or gauge) of the one point of ``name`` whose attributes include these."""
    found = [
        p
        for attrs, p in points(data, name)
        if all(attrs.get(k.replace("__", ".")) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, f"{name} {attributes}: {len(found)} points"
    return found[0].value


def _metrics(data: MetricsData) -> Iterator[Any]:
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            yield from scope_metrics.metrics
