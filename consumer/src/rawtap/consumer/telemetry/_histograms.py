"""The per-record histograms aggregated by rawtap, per batch, as the SDK would aggregate them.

An SDK histogram's ``record()`` checks, copies and hashes the attributes on
every call (~18 µs with the GenAI attribute set); the SDK has no bulk path, so
each record's four or five values cost most of the worker's telemetry. Here a
batch's values are grouped by their attribute set (a tuple key) and added to
explicit-bucket states that follow the SDK's ``_ExplicitBucketHistogramAggregation``
step for step (same bucket rule ``bisect_left``, same order of float additions,
cumulative as interval plus previous, delta reset at each collection, the
cardinality limit's overflow set). A :class:`MergingMetricExporter` wrapped
around each exporter adds these histograms to the ``MetricsData`` the SDK's
reader collected, in the exporter's own temporality. A test holds the exported
points equal to those of the SDK's instruments fed the same records.
"""

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.view import DefaultAggregation, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

CARDINALITY_LIMIT = 2000
"""The SDK's default limit of attribute sets per metric stream."""
_OVERFLOW = {"otel.metric.overflow": True}
_OVERFLOW_KEY = ("\x00overflow",)

Stream = tuple[str, str, str, Sequence[float]]
"""A histogram: name, unit, description, bucket boundaries."""
Measurement = tuple[int, tuple[Any, ...], dict[str, Any], float | int | tuple[float, ...]]
"""(stream index, attribute key, attributes, value) of one recorded value, or of a run of values
in one attribute set (a tuple: a stream's time per output chunk), recorded in order."""


class _State:
    """One attribute set's buckets, as the SDK's explicit-bucket aggregation keeps them."""

    __slots__ = ("attributes", "buckets", "max", "min", "prev", "start", "sum")

    def __init__(self, attributes: dict[str, Any], start: int) -> None:
        self.attributes = attributes
        self.start = start
        self.buckets: list[int] | None = None
        self.sum: float | int = 0
        self.min = math.inf
        self.max = -math.inf
        self.prev: tuple[list[int], float | int, float, float] | None = None


class HistogramStore:
    """The record histograms of one exporter (its own temporality and collections)."""

    def __init__(self, streams: Sequence[Stream], temporality: AggregationTemporality) -> None:
        self.streams = [(name, unit, desc, tuple(bounds)) for name, unit, desc, bounds in streams]
        self.temporality = temporality
        self._states: list[dict[tuple[Any, ...], _State]] = [{} for _ in streams]
        self._previous_collection: int | None = None
        self._lock = threading.Lock()

    def add(self, measurements: Sequence[Measurement]) -> None:
        """Aggregate a batch's values (non-finite and negative ones are ignored, as the SDK's)."""
        with self._lock:
            states = self._states
            streams = self.streams
            for index, key, attributes, value in measurements:
                if isinstance(value, tuple):
                    self._add_run(index, key, attributes, value)
                    continue
                if value < 0 or not math.isfinite(value):
                    continue
                by_key = states[index]
                state = by_key.get(key)
                if state is None:
                    state = self._new(by_key, key, attributes)
                bounds = streams[index][3]
                if state.buckets is None:
                    state.buckets = [0] * (len(bounds) + 1)
                state.sum += value
                state.min = min(state.min, value)
                state.max = max(state.max, value)
                state.buckets[bisect_left(bounds, value)] += 1

    def _add_run(
        self, index: int, key: tuple[Any, ...], attributes: dict[str, Any], run: tuple[float, ...]
    ) -> None:
        """A run of values of one attribute set, as that many single values (lock held)."""
        values = [v for v in run if v >= 0 and math.isfinite(v)]
        if not values:
            return
        by_key = self._states[index]
        state = by_key.get(key)
        if state is None:
            state = self._new(by_key, key, attributes)
        bounds = self.streams[index][3]
        if state.buckets is None:
            state.buckets = [0] * (len(bounds) + 1)
        buckets = state.buckets
        total = state.sum
        for value in values:  # one addition at a time, as the SDK adds (not sum()'s algorithm)
            total += value
            buckets[bisect_left(bounds, value)] += 1
        state.sum = total
        state.min = min(state.min, *values)
        state.max = max(state.max, *values)

    def _new(
        self, by_key: dict[tuple[Any, ...], _State], key: tuple[Any, ...], attrs: dict[str, Any]
    ) -> _State:
        if len(by_key) >= CARDINALITY_LIMIT:
            key, attrs = _OVERFLOW_KEY, dict(_OVERFLOW)
            hit = by_key.get(key)
            if hit is not None:
                return hit
        state = by_key[key] = _State(attrs, self._previous_collection or time.time_ns())
        return state

    def collect(self, now: int) -> list[Metric]:
        """The histograms' metrics at a collection (``now``); a delta store starts anew."""
        delta = self.temporality is AggregationTemporality.DELTA
        with self._lock:
            taken = self._states
            previous = self._previous_collection
            if delta:
                self._states = [{} for _ in self.streams]
                self._previous_collection = now
            out = []
            for (name, unit, description, bounds), by_key in zip(self.streams, taken, strict=True):
                points = [
                    p for s in by_key.values() if (p := _point(s, bounds, now, delta, previous))
                ]
                if points:
                    data = Histogram(data_points=points, aggregation_temporality=self.temporality)
                    out.append(Metric(name=name, description=description, unit=unit, data=data))
        return out


def _point(
    state: _State, bounds: tuple[float, ...], now: int, delta: bool, previous: int | None
) -> HistogramDataPoint | None:
    buckets, sum_, min_, max_ = state.buckets, state.sum, state.min, state.max
    state.buckets, state.sum, state.min, state.max = None, 0, math.inf, -math.inf
    if delta:
        if buckets is None:
            return None
        start = previous if previous is not None else state.start
        return HistogramDataPoint(
            attributes=state.attributes, start_time_unix_nano=start, time_unix_nano=now,
            count=sum(buckets), sum=sum_, bucket_counts=tuple(buckets), explicit_bounds=bounds,
            min=min_, max=max_, exemplars=[],
        )  # fmt: skip
    if buckets is None:
        buckets = [0] * (len(bounds) + 1)
    if state.prev is None:
        state.prev = ([0] * (len(bounds) + 1), 0, math.inf, -math.inf)
    before, prev_sum, prev_min, prev_max = state.prev
    total = [b + p for b, p in zip(buckets, before, strict=True)]
    state.prev = (total, sum_ + prev_sum, min(min_, prev_min), max(max_, prev_max))
    return HistogramDataPoint(
        attributes=state.attributes, start_time_unix_nano=state.start, time_unix_nano=now,
        count=sum(total), sum=state.prev[1], bucket_counts=tuple(total), explicit_bounds=bounds,
        min=state.prev[2], max=state.prev[3], exemplars=[],
    )  # fmt: skip


class MergingMetricExporter(MetricExporter):
    """An exporter that adds rawtap's record histograms to what the SDK's reader collected.

    ``store`` is attached by the worker's metrics when this path applies
    (:attr:`eligible`); until then, and when it does not, exports pass through.
    """

    def __init__(self, inner: MetricExporter, scope: str, resource: Resource) -> None:
        # What the SDK's reader reads of any exporter: its preferred temporality/aggregation
        # (None: the reader's defaults, cumulative and explicit buckets).
        missing = object()
        temporality = getattr(inner, "_preferred_temporality", missing)
        aggregation = getattr(inner, "_preferred_aggregation", missing)
        known = temporality is not missing and aggregation is not missing
        temporality = temporality if isinstance(temporality, dict) else None
        aggregation = aggregation if isinstance(aggregation, dict) else None
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self.inner = inner
        self.scope = scope
        self.resource = resource
        self.store: HistogramStore | None = None
        self.temporality: AggregationTemporality = (temporality or {}).get(
            HistogramInstrument, AggregationTemporality.CUMULATIVE
        )
        histogram = (aggregation or {}).get(HistogramInstrument, DefaultAggregation())
        self.eligible = (
            known
            and type(histogram) in (DefaultAggregation, ExplicitBucketHistogramAggregation)
            and getattr(histogram, "_boundaries", None) is None
        )
        """True when the SDK would aggregate the record histograms as explicit buckets with
        the advised boundaries (else the worker's metrics use the SDK's instruments)."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Export the collected data with the record histograms added."""
        if self.store is not None:
            metrics_data = self.merge(metrics_data)
        return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def merge(self, data: MetricsData) -> MetricsData:
        """``data`` with the store's histograms in rawtap's scope."""
        assert self.store is not None
        now = _collection_time(data)
        metrics = self.store.collect(now)
        if not metrics:
            return data
        resources = list(data.resource_metrics)
        if not resources:
            resources = [ResourceMetrics(self.resource, [], self.resource.schema_url)]
        first = resources[0]
        scopes = list(first.scope_metrics)
        for i, scope in enumerate(scopes):
            if scope.scope.name == self.scope:
                scopes[i] = replace(scope, metrics=[*scope.metrics, *metrics])
                break
        else:
            scopes.append(ScopeMetrics(InstrumentationScope(self.scope), metrics, ""))
        resources[0] = replace(first, scope_metrics=scopes)
        return replace(data, resource_metrics=resources)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """The wrapped exporter's flush."""
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _collection_time(data: MetricsData) -> int:
    """The SDK's collection time (every point of one collection carries it), else now."""
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    return int(point.time_unix_nano)
    return time.time_ns()
