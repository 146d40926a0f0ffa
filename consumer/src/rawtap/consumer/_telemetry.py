"""The worker's OpenTelemetry: one span per recorded provider call, one per batch, and metrics.

For each record a batch committed, :class:`WorkerTelemetry` emits a CLIENT
span named and attributed by the GenAI semantic conventions (``chat gpt-4o``),
with the provider call's *recorded* start and end times, as a child of the
trace context the producer captured (``traceparent``/``tracestate``), or as
a root span when there was none. Its span id (and, for a root span, its trace
id) is derived from ``rawtap.record_id``, so a record delivered twice (a crash
between commit and XACK) yields the same span again, not a second one. The
span is reported under the *recording* service's name (``Record.service``,
the producer's ``OTEL_SERVICE_NAME``): in a trace it sits where the call was
made. Bodies never go into spans.

Each batch gets a CONSUMER span (``process rawtap:{0}``, messaging
conventions) linking to every record's trace context.

Metrics: ``gen_ai.client.*`` histograms per record; the batch's processing and
commit durations, capture-to-persist delay; the worker's counters
(:class:`~rawtap.consumer.WorkerStats`) as observable counters; stream length,
lag and pending read with ``XINFO`` at collection time; gaps, dead letters and
trimmed ids from the sink's ledger, refreshed every
``RAWTAP_TELEMETRY_LEDGER_INTERVAL_S``.

Configured by the standard ``OTEL_*`` variables (exporters, endpoints,
protocol, headers, timeouts, sampler, resource, batch and export intervals).
Telemetry is off unless an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` or an
``OTEL_{TRACES,METRICS}_EXPORTER`` other than ``none`` is set, or
``RAWTAP_TELEMETRY=on``; ``RAWTAP_TELEMETRY=off`` or ``OTEL_SDK_DISABLED=true``
turn it off whatever else is set.

Nothing here can stop persistence: the hook runs after the batch was
acknowledged, every failure is caught, counted (``rawtap.worker.errors``,
``rawtap.error.source=telemetry``) and logged at most once a minute, and the
exporters run on the SDK's own threads with bounded queues.
"""

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
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
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rawtap.consumer._derive import _request_model
from rawtap.consumer._derived import Derived
from rawtap.shared import ConfigError, EndState, Record, RedisClient

logger = logging.getLogger(__name__)

__all__ = [
    "CommittedBatch",
    "TelemetrySettings",
    "WorkerTelemetry",
    "WorkerView",
    "otel_configured",
]

SCOPE = "rawtap.consumer"
"""Instrumentation scope of every span and metric the worker emits."""

# gen_ai.provider.name (current conventions) and gen_ai.system (older ones) per rawtap provider.
_PROVIDER_NAME = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
_SYSTEM = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
_OPERATION = {
    "openai.chat": "chat",
    "openai.responses": "chat",
    "anthropic.messages": "chat",
    "gemini.generate": "generate_content",
}
# Bucket boundaries the GenAI conventions advise for these two histograms.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]
_DURATION_BUCKETS = [0.01 * 2.0**i for i in range(14)]
_PIPELINE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
_FAILED_STATES = (EndState.ERROR, EndState.TRANSPORT_ERROR)
# The GenAI attributes that metrics carry (bounded cardinality: no ids).
_METRIC_ATTRIBUTES = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "server.address",
    }
)

# WorkerStats field -> (metric name, unit, description, extra attributes).
_COUNTERS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "batches": ("rawtap.worker.batches", "{batch}", "Batches handled.", {}),
    "read": ("rawtap.worker.entries.read", "{entry}", "Stream entries read (throughput).", {}),
    "stored": ("rawtap.worker.records.stored", "{record}", "Records newly committed.", {}),
    "duplicates": (
        "rawtap.worker.records.duplicate",
        "{record}",
        "Records committed that the sink already held (redelivery, producer retry).",
        {},
    ),
    "reports": ("rawtap.worker.reports", "{report}", "Producer reports accounted.", {}),
    "dead_lettered": (
        "rawtap.worker.dead_letters",
        "{entry}",
        "Entries moved to the dead-letter stream.",
        {},
    ),
    "trimmed_lost": (
        "rawtap.worker.trimmed",
        "{entry}",
        "Pending entries MAXLEN trimmed before they were committed (lost, counted).",
        {},
    ),
    "claimed": (
        "rawtap.worker.entries.claimed",
        "{entry}",
        "Entries reclaimed from other consumers.",
        {},
    ),
    "acked": ("rawtap.worker.entries.acked", "{entry}", "Entries acknowledged.", {}),
    "sink_errors": (
        "rawtap.worker.errors",
        "{error}",
        "Failures the worker retried.",
        {"rawtap.error.source": "sink"},
    ),
    "redis_errors": (
        "rawtap.worker.errors",
        "{error}",
        "Failures the worker retried.",
        {"rawtap.error.source": "redis"},
    ),
    "groups_created": (
        "rawtap.worker.groups.created",
        "{group}",
        "Consumer groups created; more than one per stream means Redis lost the group.",
        {},
    ),
    "consumers_removed": (
        "rawtap.worker.consumers.removed",
        "{consumer}",
        "Dead consumers removed from the group.",
        {},
    ),
    "derive_failures": (
        "rawtap.worker.derive.failures",
        "{record}",
        "Records no parser could read (stored raw).",
        {},
    ),
    "purged": ("rawtap.worker.records.purged", "{record}", "Records deleted by retention.", {}),
    "ledger_refused": ("rawtap.worker.ledger_refused", "1", "WorkerStats.ledger_refused.", {}),
}


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """One batch a worker committed and acknowledged: all telemetry learns about it.

    The worker builds it after XACK and hands it to
    :meth:`WorkerTelemetry.batch_committed`; telemetry reads nothing else.
    """

    stream: str
    """The shard stream the entries came from."""
    group: str
    consumer: str
    entries: int
    """Stream entries the batch handled (records, reports, dead letters, trimmed ids)."""
    stored: tuple[tuple[Record, Derived], ...]
    """Records the sink took (new or already held), each with its derived fields."""
    refused: int
    """Records the sink refused as data (dead-lettered instead)."""
    started_ns: int
    """Wall clock when the worker started handling the batch."""
    commit_s: float | None
    """Time spent committing the records, retries included; None when there were none."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class WorkerView:
    """What telemetry observes of one worker at collection time, registered once.

    Plain values and callables; none of them is the Worker. Telemetry keeps a
    weak reference: the worker holds its view, and when the worker goes, so
    do its observations. The callables run on the metric reader's thread.
    """

    consumer: str
    group: str
    redis_url: str
    streams: tuple[str, ...]
    """The shard streams the worker reads."""
    dead_letter_stream: str
    stats: Callable[[], Mapping[str, int]]
    """A snapshot of the worker's counters (``WorkerStats`` fields)."""
    connect_redis: Callable[[], RedisClient]
    """A new Redis client for the stream gauges (``XINFO``; the probe owns and closes it)."""
    ledger: Callable[[], Mapping[str, int] | None] | None = None
    """Gaps, dead letters and trimmed ids of the sink (``gaps``, ``dead_lettered``,
    ``trimmed``); None while there is no sink to read. Slow (a reconcile): telemetry
    calls it at most every ``telemetry_ledger_interval_s``, never on the worker's thread."""


class TelemetrySettings(BaseSettings):
    """rawtap's own telemetry switches (``RAWTAP_*``); everything else is ``OTEL_*``."""

    model_config = SettingsConfigDict(env_prefix="RAWTAP_", extra="forbid", frozen=True)

    telemetry: Literal["auto", "on", "off"] = "auto"
    """``auto``: on when an OTLP endpoint or an exporter is set in ``OTEL_*``; ``on`` exports
    to the OTLP default (``http://localhost:4318``) even without; ``off`` never."""
    telemetry_flush_timeout_s: float = Field(default=5.0, ge=0)
    """How long a stopping worker waits for telemetry to be exported (SIGTERM grace)."""
    telemetry_ledger_interval_s: float = Field(default=300.0, ge=0)
    """How often gaps, dead letters and trimmed ids are read from the sink; 0 never.

    Gaps come from the per-producer reconciliation (a window query over the records):
    cheap on SQLite, a scan on a large PostgreSQL store."""


def otel_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when the ``OTEL_*`` variables ask for an exporter (the ``auto`` rule)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    endpoints = (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    )
    if any(env.get(name, "").strip() for name in endpoints):
        return True
    return any(
        env.get(name, "").strip().lower() not in ("", "none")
        for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER")
    )


class _RecordIds(RandomIdGenerator):
    """Random ids, except for the span the worker is about to start for a record.

    The SDK has no per-span id argument; its provider asks its id generator.
    This one hands out the ids :func:`_record_ids` derived from the record id
    when they were set for the current thread, random ones otherwise.
    """

    def __init__(self) -> None:
        self._next = threading.local()

    def set_next(self, trace_id: int, span_id: int) -> None:
        self._next.ids = (trace_id, span_id)

    def clear(self) -> None:
        self._next.ids = None

    def generate_trace_id(self) -> int:
        ids = getattr(self._next, "ids", None)
        return ids[0] if ids else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._next, "ids", None)
        return ids[1] if ids else super().generate_span_id()


def record_span_ids(record_id: str) -> tuple[int, int]:
    """(trace id, span id) of a record's span: a root's trace id, and the span id, both stable."""
    digest = hashlib.blake2b(record_id.encode(), digest_size=24, person=b"rawtap-span").digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


_HEX = frozenset("0123456789abcdef")


def _recorded_context(record: Record) -> SpanContext | None:
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


class _LogOnce:
    def __init__(self, interval_s: float = 60.0) -> None:
        self._interval = interval_s
        self._last: dict[str, float] = {}

    def once(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= self._interval:
            self._last[key] = now
            logger.warning(msg, *args, exc_info=True)


class WorkerTelemetry:
    """Spans and metrics of workers, exported by the span processors and metric readers given.

    ``WorkerTelemetry.from_env()`` builds OTLP (or console) exporters from the
    ``OTEL_*`` variables, or a disabled instance (every method returns at once)
    when telemetry is off. Tests pass in-memory processors and readers.
    ``close()`` flushes and shuts the providers down within
    ``telemetry_flush_timeout_s``; it is idempotent.
    """

    def __init__(
        self,
        *,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        resource: Resource | None = None,
        settings: TelemetrySettings | None = None,
    ) -> None:
        self.settings = settings or TelemetrySettings()
        self.resource = resource or _default_resource()
        self.enabled = bool(span_processors or metric_readers)
        self.span_processors = list(span_processors)
        self.metric_readers = list(metric_readers)
        self.errors = 0
        self._closed = False
        self._log = _LogOnce()
        self._views: list[weakref.ReferenceType[WorkerView]] = []
        self._probes: dict[str, _StreamProbe] = {}
        self._ledger: dict[str, int] = {}
        self._ledger_at = 0.0
        self._ledger_lock = threading.Lock()
        self._ids = _RecordIds()
        self._processor = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        for processor in span_processors:
            self._processor.add_span_processor(processor)
        self._has_spans = bool(span_processors)
        self._has_metrics = bool(metric_readers)
        self._providers: dict[str | None, TracerProvider] = {}
        self._tracers: dict[str | None, Tracer] = {}
        self._tracer = self._tracer_for(None)
        self._meter_provider = MeterProvider(
            metric_readers=list(metric_readers), resource=self.resource, shutdown_on_exit=False
        )
        if self.enabled:  # a disabled instance (every worker's default) builds nothing more
            self._instruments()

    # -- construction -----------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        consumer: str | None = None,
        *,
        settings: TelemetrySettings | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> "WorkerTelemetry":
        """The worker's telemetry as ``RAWTAP_TELEMETRY`` and the ``OTEL_*`` variables say.

        ``consumer`` becomes ``service.instance.id`` unless the resource names one.
        Raises :class:`~rawtap.shared.ConfigError` for an exporter or protocol it cannot build.
        """
        env = os.environ if environ is None else environ
        try:
            settings = settings or TelemetrySettings()
        except ValidationError as e:
            raise ConfigError(f"invalid RAWTAP_TELEMETRY* setting: {e.errors()[0]['msg']}") from e
        mode = settings.telemetry
        disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        if mode == "off" or disabled or (mode == "auto" and not otel_configured(env)):
            return cls(settings=settings)
        processors: list[SpanProcessor] = [
            BatchSpanProcessor(exporter) for exporter in _span_exporters(env)
        ]
        readers: list[MetricReader] = [
            PeriodicExportingMetricReader(exporter) for exporter in _metric_exporters(env)
        ]
        resource = _default_resource(consumer)
        telemetry = cls(
            span_processors=processors, metric_readers=readers, resource=resource, settings=settings
        )
        logger.info(
            "telemetry on: %d span exporter(s), %d metric exporter(s), service.name=%s",
            len(processors),
            len(readers),
            resource.attributes.get("service.name"),
        )
        return telemetry

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
                active_span_processor=self._processor,
                id_generator=self._ids,
            )
            if len(self._providers) < 256:  # bound the cache: services are few
                self._providers[service] = provider
        tracer = provider.get_tracer(SCOPE)
        if service in self._providers:
            self._tracers[service] = tracer
        return tracer

    def _instruments(self) -> None:
        meter = self._meter_provider.get_meter(SCOPE)
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration, as recorded by the producer.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the request to the first chunk carrying output (streams).",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._consumed = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Stream entries a worker handled (pipeline throughput).",
        )
        self._process = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Time to handle one batch: decode, derive, commit, acknowledge.",
            explicit_bucket_boundaries_advisory=_PIPELINE_BUCKETS,
        )
        self._persist = meter.create_histogram(
            "rawtap.worker.persist.duration",
            unit="s",
            description="Time to commit one batch to the sink, retries included.",
            explicit_bucket_boundaries_advisory=_PIPELINE_BUCKETS,
        )
        self._delay = meter.create_histogram(
            "rawtap.record.capture_to_persist.duration",
            unit="s",
            description="From the producer finishing a record to its commit in the sink.",
            explicit_bucket_boundaries_advisory=_PIPELINE_BUCKETS,
        )
        by_name: dict[str, list[tuple[str, str, str, dict[str, str]]]] = {}
        for stat, (name, unit, description, extra) in _COUNTERS.items():
            by_name.setdefault(name, []).append((stat, unit, description, extra))
        for name, fields in by_name.items():
            meter.create_observable_counter(
                name,
                callbacks=[self._stats_callback(fields)],
                unit=fields[0][1],
                description=fields[0][2],
            )
        meter.create_observable_gauge(
            "rawtap.stream.length",
            callbacks=[lambda o: self._observe_streams("length")],
            unit="{entry}",
            description="Entries in the stream (XLEN), also for the dead-letter stream.",
        )
        meter.create_observable_gauge(
            "rawtap.stream.lag",
            callbacks=[lambda o: self._observe_streams("lag")],
            unit="{entry}",
            description="Entries the group has not read yet (XINFO GROUPS lag; Redis 7+).",
        )
        meter.create_observable_gauge(
            "rawtap.stream.pending",
            callbacks=[lambda o: self._observe_streams("pending")],
            unit="{entry}",
            description="Entries read by the group and not yet acknowledged.",
        )
        for key, name, unit, description in (
            (
                "gaps",
                "rawtap.sink.gaps",
                "{record}",
                "Records producers accepted that are in neither the sink, the dead letters "
                "nor a drop report (missing seqs; transient while records are in flight).",
            ),
            (
                "dead_lettered",
                "rawtap.sink.dead_letters",
                "{entry}",
                "Dead letters in the ledger not stored later.",
            ),
            ("trimmed", "rawtap.sink.trimmed", "{entry}", "Trimmed entry ids in the ledger."),
        ):
            meter.create_observable_gauge(
                name,
                callbacks=[self._ledger_callback(key)],
                unit=unit,
                description=description,
            )

    # -- the worker's hooks ---------------------------------------------------------

    def observe(self, view: WorkerView) -> None:
        """Observe a worker's counters, streams and sink ledger from now on (the Worker calls this).

        Held weakly: the observations end when the caller drops ``view``.
        """
        if self.enabled:
            self._views.append(weakref.ref(view))

    def batch_committed(self, batch: CommittedBatch) -> None:
        """Spans and metrics for one handled (committed and acknowledged) batch; never raises."""
        if not self.enabled or self._closed:
            return
        try:
            self._batch(batch)
            if batch.commit_s is not None and (batch.stored or batch.refused):
                self._persist.record(batch.commit_s, {"messaging.destination.name": batch.stream})
        except Exception:  # noqa: BLE001 - telemetry must never stop persistence
            self.errors += 1
            self._log.once("batch", "rawtap telemetry failed for a batch; persistence goes on")

    def _batch(self, batch: CommittedBatch) -> None:
        stream, entries, started_ns = batch.stream, batch.entries, batch.started_ns
        persisted_ns = time.time_ns()
        links: list[Link] = []
        for record, fields in batch.stored:
            gen_ai = _gen_ai_attributes(record, fields)
            parent = _recorded_context(record)
            span_context = self._record_span(record, fields, parent, gen_ai)
            link_to = parent if parent is not None else span_context
            if link_to is not None:
                links.append(Link(link_to, {"rawtap.record_id": record.record_id}))
            if self._has_metrics:
                self._record_metrics(record, fields, persisted_ns, gen_ai[0])
        batch_attrs = {
            "messaging.system": "redis",
            "messaging.destination.name": stream,
            "messaging.consumer.group.name": batch.group,
        }
        self._consumed.add(entries, {**batch_attrs, "messaging.operation.name": "process"})
        ended_ns = time.time_ns()
        self._process.record(
            (ended_ns - started_ns) / 1e9, {**batch_attrs, "messaging.operation.name": "process"}
        )
        if self._has_spans:
            span = self._tracer.start_span(
                f"process {stream}",
                context=Context(),
                kind=SpanKind.CONSUMER,
                start_time=started_ns,
                links=links,
                attributes={
                    **batch_attrs,
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.batch.message_count": entries,
                    "messaging.client.id": batch.consumer,
                    "rawtap.records": len(batch.stored),
                },
            )
            span.end(end_time=ended_ns)

    def _record_span(
        self,
        record: Record,
        fields: Derived,
        parent: SpanContext | None,
        gen_ai: tuple[dict[str, Any], str | None, str | None],
    ) -> SpanContext | None:
        if not self._has_spans:
            return None
        attributes, operation, request_model = gen_ai
        attributes = dict(attributes)
        name = f"{operation} {request_model}" if operation and request_model else None
        if name is None:
            name = operation or f"{record.method or 'call'} {record.provider}"
        attributes.update(_record_attributes(record, fields))
        start = record.started_at_ns
        end = _end_ns(record)
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
        error = _error_type(record)
        if error is not None:
            description = fields.provider_error or record.error or f"HTTP {record.status}"
            span.set_status(Status(StatusCode.ERROR, description))
        span.end(end_time=end)
        context_of_span: SpanContext = span.get_span_context()
        return context_of_span if context_of_span != INVALID_SPAN_CONTEXT else None

    def _record_metrics(
        self, record: Record, fields: Derived, persisted_ns: int, attributes: dict[str, Any]
    ) -> None:
        common = {k: v for k, v in attributes.items() if k in _METRIC_ATTRIBUTES}
        if record.service:
            common["rawtap.service"] = record.service
        if fields.input_tokens is not None:
            self._token_usage.record(fields.input_tokens, {**common, "gen_ai.token.type": "input"})
        if fields.output_tokens is not None:
            self._token_usage.record(
                fields.output_tokens, {**common, "gen_ai.token.type": "output"}
            )
        duration = {**common}
        error = _error_type(record)
        if error is not None:
            duration["error.type"] = error
        self._duration.record((_end_ns(record) - record.started_at_ns) / 1e9, duration)
        if record.stream and fields.ttft_ns is not None:
            self._first_chunk.record(fields.ttft_ns / 1e9, common)
        self._delay.record(
            max(0, persisted_ns - record.captured_at_ns) / 1e9,
            {"gen_ai.provider.name": common.get("gen_ai.provider.name", record.provider)},
        )

    # -- observed at collection time -----------------------------------------------

    def _live_views(self) -> list[WorkerView]:
        live = [v for ref in self._views if (v := ref()) is not None]
        if len(live) != len(self._views):
            self._views = [weakref.ref(v) for v in live]
        return live

    def _stats_callback(self, fields: list[tuple[str, str, str, dict[str, str]]]) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            snapshots = [view.stats() for view in self._live_views()]
            out = []
            for stat, _unit, _description, extra in fields:
                total = sum(int(snapshot.get(stat, 0)) for snapshot in snapshots)
                out.append(Observation(total, extra))
            if any(stat == "sink_errors" for stat, *_ in fields):
                out.append(Observation(self.errors, {"rawtap.error.source": "telemetry"}))
            return out

        return observe

    def _observe_streams(self, what: str) -> list[Observation]:
        out: list[Observation] = []
        for view in self._live_views():
            probe = self._probes.get(view.redis_url)
            if probe is None:
                probe = self._probes[view.redis_url] = _StreamProbe(view.connect_redis)
            for stream in view.streams:
                out.extend(probe.observe(stream, view.dead_letter_stream, what, self._log))
        # Two workers on one stream observe the same figures: report them once.
        unique = {tuple(sorted((o.attributes or {}).items())): o for o in out}
        return list(unique.values())

    def _ledger_callback(self, key: str) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            self._refresh_ledger()
            value = self._ledger.get(key)
            return [] if value is None else [Observation(value)]

        return observe

    def _refresh_ledger(self) -> None:
        """Read the ledger figures when due: on the metric reader's thread, at collection time.

        The workers' sinks are one store; the first view that can read it answers.
        A failure keeps the last figures, is counted and logged (rate-limited).
        """
        interval = self.settings.telemetry_ledger_interval_s
        with self._ledger_lock:
            now = time.monotonic()
            if not interval or now < self._ledger_at:
                return
            for view in self._live_views():
                if view.ledger is None:
                    continue
                try:
                    counts = view.ledger()
                except Exception:  # noqa: BLE001 - the store may be down; the gauges wait
                    self.errors += 1
                    self._log.once("ledger", "rawtap telemetry: cannot read the sink's ledger")
                    self._ledger_at = now + interval
                    return
                if counts is not None:
                    self._ledger = dict(counts)
                    self._ledger_at = now + interval
                    return

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Export what is buffered and shut the providers down, within the flush bound."""
        if self._closed or not self.enabled:
            self._closed = True
            return
        self._closed = True
        timeout = self.settings.telemetry_flush_timeout_s

        def shutdown() -> None:
            try:
                self._processor.force_flush(int(timeout * 1000))
                self._processor.shutdown()
                self._meter_provider.shutdown(timeout_millis=timeout * 1000)
            except Exception:  # a failing exporter must not fail the exit
                logger.warning("rawtap telemetry: shutdown failed", exc_info=True)

        thread = threading.Thread(target=shutdown, name="rawtap-telemetry-flush", daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(timeout + 0.5)
        if thread.is_alive():
            logger.warning("rawtap telemetry: not flushed within %.1fs; giving up", timeout)
        else:
            logger.debug("rawtap telemetry flushed in %.3fs", time.monotonic() - started)
        for probe in self._probes.values():
            probe.close()


class _StreamProbe:
    """XINFO figures for the stream gauges, on a connection of its own (metric thread)."""

    def __init__(self, connect: Callable[[], RedisClient]) -> None:
        self._connect = connect
        self._client: RedisClient | None = None
        self._cache: dict[str, tuple[float, Any]] = {}

    def observe(self, stream: str, dead: str, what: str, log: _LogOnce) -> list[Observation]:
        try:
            figures = self._figures(stream, dead)
        except Exception:  # noqa: BLE001 - Redis down: no observation, the worker goes on
            log.once("streams", "rawtap telemetry: cannot read stream figures")
            return []
        (shard,) = figures.shards
        if what == "length":
            return [
                Observation(shard.length, {"messaging.destination.name": stream}),
                Observation(figures.dead_letters, {"messaging.destination.name": dead}),
            ]
        out = []
        for group in shard.groups:
            value = group.lag if what == "lag" else group.pending
            if value is not None:
                attrs = {
                    "messaging.destination.name": stream,
                    "messaging.consumer.group.name": group.name,
                }
                out.append(Observation(value, attrs))
        return out

    def _figures(self, stream: str, dead: str) -> Any:
        # The three gauges are collected one after the other: one XINFO round serves them.
        cached = self._cache.get(stream)
        now = time.monotonic()
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        from rawtap.consumer._stats import gather

        if self._client is None:
            self._client = self._connect()
        figures = gather(self._client, [stream], dead, None)
        self._cache[stream] = (now, figures)
        return figures

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _default_resource(consumer: str | None = None) -> Resource:
    """``Resource.create()`` (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``) with defaults.

    ``service.name`` defaults to ``rawtap-worker`` and ``service.instance.id`` to the
    consumer name; both only when the environment does not set them.
    """
    from opentelemetry.sdk.resources import OTELResourceDetector

    resource = Resource.create()
    extra: dict[str, str] = {}
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        extra["service.name"] = "rawtap-worker"
    # The SDK fills in a random instance id; the consumer name is stable across restarts.
    if consumer and "service.instance.id" not in OTELResourceDetector().detect().attributes:
        extra["service.instance.id"] = consumer
    return resource.merge(Resource(extra)) if extra else resource


def _gen_ai_attributes(
    record: Record, fields: Derived
) -> tuple[dict[str, Any], str | None, str | None]:
    """The GenAI attributes of a record, its operation name and request model."""
    operation = _OPERATION.get(fields.parser or "")
    request_model = _request_model(record)
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": _PROVIDER_NAME.get(record.provider, record.provider),
        "gen_ai.system": _SYSTEM.get(record.provider, record.provider),
    }
    if operation:
        attributes["gen_ai.operation.name"] = operation
    if request_model:
        attributes["gen_ai.request.model"] = request_model
    if fields.model:
        attributes["gen_ai.response.model"] = fields.model
    if record.url:
        from urllib.parse import urlsplit

        parts = urlsplit(record.url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is not None:
            attributes["server.port"] = port
    return attributes, operation, request_model


def _record_attributes(record: Record, fields: Derived) -> dict[str, Any]:
    """What the span carries besides the metric attributes: usage, outcome, rawtap's ids."""
    out: dict[str, Any] = {
        "rawtap.record_id": record.record_id,
        "rawtap.producer_id": record.producer_id,
        "rawtap.end_state": record.end_state.value,
        "gen_ai.request.stream": record.stream,
    }
    optional: dict[str, Any] = {
        "gen_ai.usage.input_tokens": fields.input_tokens,
        "gen_ai.usage.output_tokens": fields.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": fields.cached_tokens,
        "gen_ai.usage.reasoning.output_tokens": fields.reasoning_tokens,
        "gen_ai.response.id": fields.response_id,
        "gen_ai.response.time_to_first_chunk": (
            fields.ttft_ns / 1e9 if fields.ttft_ns is not None else None
        ),
        "http.request.method": record.method,
        "http.response.status_code": record.status,
        "error.type": _error_type(record),
        "session.id": record.session_id,
        "rawtap.provider.request_id": fields.request_id,
        "rawtap.call_id": record.call_id,
        "rawtap.attempt": record.attempt,
        "rawtap.truncated": record.truncated or None,
        "rawtap.parse_error": fields.parse_error,
    }
    if fields.finish_reason is not None:
        out["gen_ai.response.finish_reasons"] = [fields.finish_reason]
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def _error_type(record: Record) -> str | None:
    if record.status is not None and record.status >= 400:
        return str(record.status)
    if record.end_state in _FAILED_STATES:
        return record.end_state.value
    return None


def _end_ns(record: Record) -> int:
    """The call's end on the wall clock: start plus the recorded (monotonic) end offset.

    A record without ``ended_ns`` (given to ``record()`` by hand) ends at its last
    chunk or first byte, else when it was captured.
    """
    start = record.started_at_ns
    if record.ended_ns is not None:
        return start + record.ended_ns
    last = max([c.offset_ns for c in record.chunks] + [record.first_byte_ns or 0])
    if last:
        return start + last
    return max(start, record.captured_at_ns)


def _exporter_names(env: Mapping[str, str], signal: str) -> list[str]:
    variable = f"OTEL_{signal}_EXPORTER"
    names = [n.strip().lower() for n in env.get(variable, "otlp").split(",") if n.strip()]
    if "none" in names:
        return []
    unknown = sorted(set(names) - {"otlp", "console"})
    if unknown:
        raise ConfigError(f"{variable}: unknown exporter {unknown[0]!r}; use otlp, console or none")
    return names


def _protocol(env: Mapping[str, str], signal: str) -> str:
    variable = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    protocol = env.get(variable) or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    protocol = protocol.strip().lower()
    if protocol not in ("http/protobuf", "grpc"):
        raise ConfigError(
            f"{variable} / OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; "
            "use http/protobuf (default) or grpc"
        )
    return protocol


def _grpc_missing(e: ImportError) -> ConfigError:
    return ConfigError(
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: "
        f"pip install 'rawtap-consumer[grpc]' ({e})"
    )


def _span_exporters(env: Mapping[str, str]) -> list[Any]:
    out: list[Any] = []
    for name in _exporter_names(env, "TRACES"):
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            out.append(ConsoleSpanExporter())
        elif _protocol(env, "TRACES") == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                    OTLPSpanExporter as GrpcSpanExporter,
                )
            except ImportError as e:
                raise _grpc_missing(e) from e
            out.append(GrpcSpanExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter())
    return out


def _metric_exporters(env: Mapping[str, str]) -> list[Any]:
    out: list[Any] = []
    for name in _exporter_names(env, "METRICS"):
        if name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            out.append(ConsoleMetricExporter())
        elif _protocol(env, "METRICS") == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found,unused-ignore]
                    OTLPMetricExporter as GrpcMetricExporter,
                )
            except ImportError as e:
                raise _grpc_missing(e) from e
            out.append(GrpcMetricExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            out.append(OTLPMetricExporter())
    return out
