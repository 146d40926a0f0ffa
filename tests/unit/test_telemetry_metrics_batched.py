"""rawtap's per-batch record histograms export the same points as the SDK's instruments.

The same records go through the SDK's histograms (one ``record()`` per value)
and through rawtap's own aggregation merged by a ``MergingMetricExporter``;
over two collections, cumulative and delta, every point of every record
histogram is equal: attributes, count, sum, bucket counts, bounds, min, max.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource

from rawtap.consumer.derivation import derive
from rawtap.consumer.telemetry._config import TelemetrySettings
from rawtap.consumer.telemetry._genai import gen_ai_attributes
from rawtap.consumer.telemetry._histograms import MergingMetricExporter
from rawtap.consumer.telemetry._metrics import RECORD_HISTOGRAMS, Metrics
from rawtap.consumer.telemetry._spans import SCOPE
from rawtap.shared import LogOnce, Record
from tests.support.records import make_record, sse

BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":%d,"completion_tokens":%d}}'
)
URL = "https://api.openai.com/v1/chat/completions"
NAMES = {name for name, *_ in RECORD_HISTOGRAMS}


class _Capture(MetricExporter):
    def __init__(self, temporality: AggregationTemporality, **kwargs: Any) -> None:
        super().__init__(preferred_temporality={HistogramInstrument: temporality}, **kwargs)
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:  # fmt: skip
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _stream(n: int) -> Record:
    chunk = {
        "id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
    }  # fmt: skip
    usage = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [],
             "usage": {"prompt_tokens": n, "completion_tokens": 2 * n}}  # fmt: skip
    return make_record(
        chunks=sse((None, chunk), (None, usage), (None, b"[DONE]")), url=URL,
        chunk_step_ns=(n + 1) * 3_000_000, service="svc-s",
    )  # fmt: skip


def _batch(seed: int) -> list[Record]:
    request = b'{"model":"gpt-4o","messages":[]}'
    out = []
    for i in range(40):
        n = (i * 37 + seed) % 5000
        kind = i % 5
        if kind == 0:
            out.append(_stream(n))
        elif kind == 1:
            out.append(make_record(
                "openai", b'{"error":{"message":"bad"}}', url=URL, status=400 + i % 3,
                request_body=request, first_byte_ns=(n + 1) * 1_000_003,
            ))  # fmt: skip
        else:
            out.append(make_record(
                "openai", BODY % (n, n // 3 + kind), url=URL, request_body=request,
                service=f"svc-{kind}" if kind != 4 else None, first_byte_ns=(n + 1) * 7_777_777,
            ))  # fmt: skip
    return out


def _points(data: MetricsData) -> dict[str, dict[Any, Any]]:
    out: dict[str, dict[Any, Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == SCOPE
            for metric in scope.metrics:
                if metric.name not in NAMES:
                    continue
                points = out.setdefault(metric.name, {})
                assert metric.data.aggregation_temporality is not None  # type: ignore[union-attr]
                for p in metric.data.data_points:
                    key = frozenset((p.attributes or {}).items())
                    assert key not in points
                    points[key] = (
                        p.count, p.sum, tuple(p.bucket_counts), tuple(p.explicit_bounds),  # type: ignore[union-attr]
                        p.min, p.max, metric.unit, metric.description,  # type: ignore[union-attr]
                    )  # fmt: skip
    return out


_BATCHES = [_batch(1), _batch(2)]  # one set of records for both paths (times are the clock's)


def _run(temporality: AggregationTemporality, merged: bool) -> tuple[list[MetricsData], bool]:
    capture = _Capture(temporality)
    resource = Resource({"service.name": "rawtap-worker"})
    exporter = MergingMetricExporter(capture, SCOPE, resource) if merged else capture
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    metrics = Metrics(
        [reader], resource, TelemetrySettings(), LogOnce(logging.getLogger(__name__)),
        instruments=True, merging=[exporter] if isinstance(exporter, MergingMetricExporter) else [],
    )  # fmt: skip
    for seed, records in enumerate(_BATCHES, 1):
        stored = [(r, derive(r, with_request_model=True)) for r in records]
        gen_ais = [gen_ai_attributes(r, f) for r, f in stored]
        persisted = max(r.captured_at_ns for r in records) + seed * 12_345_678
        metrics.records(stored, gen_ais, persisted)
        reader.collect()
    own = isinstance(exporter, MergingMetricExporter) and exporter.store is not None
    metrics.provider.shutdown()
    return capture.exports, own


@pytest.mark.parametrize(
    "temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]
)
def test_batched_histograms_export_the_sdk_instruments_points(temporality: AggregationTemporality) -> None:  # fmt: skip
    sdk, sdk_own = _run(temporality, merged=False)
    ours, own = _run(temporality, merged=True)
    assert own
    assert not sdk_own
    assert len(sdk) == len(ours) >= 2
    for theirs, mine in zip(sdk[:2], ours[:2], strict=True):
        expected = _points(theirs)
        assert set(expected) == NAMES
        assert sum(len(v) for v in expected.values()) > 10
        assert _points(mine) == expected


def test_an_exponential_histogram_preference_keeps_the_sdk_instruments() -> None:
    capture = _Capture(
        AggregationTemporality.CUMULATIVE,
        preferred_aggregation={HistogramInstrument: ExponentialBucketHistogramAggregation()},
    )
    exporter = MergingMetricExporter(capture, SCOPE, Resource({}))
    assert not exporter.eligible
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    metrics = Metrics(
        [reader], Resource({}), TelemetrySettings(), LogOnce(logging.getLogger(__name__)),
        instruments=True, merging=[exporter],
    )  # fmt: skip
    assert exporter.store is None
    records = _batch(3)
    stored = [(r, derive(r)) for r in records]
    metrics.records(stored, [gen_ai_attributes(r, f) for r, f in stored], records[0].captured_at_ns)
    reader.collect()
    names = {m.name for r in capture.exports[0].resource_metrics for s in r.scope_metrics for m in s.metrics}  # fmt: skip
    assert names >= NAMES
    metrics.provider.shutdown()
