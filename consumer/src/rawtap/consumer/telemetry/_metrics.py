"""The worker's metrics: instruments, what a batch records, the observable callbacks.

Per record, ``gen_ai.client.*`` histograms and the capture-to-persist delay;
per batch, the entries consumed and the processing and commit durations. At
collection time (on the metric reader's thread): the workers' counters
(``WorkerStats``) as observable counters, stream length, lag and pending from
``XINFO``, and gaps, dead letters and trimmed ids from the sink's ledger, read
through the callable each worker registered at most every
``RAWTAP_TELEMETRY_LEDGER_INTERVAL_S`` (a reconcile: never on a worker's thread).
"""

import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from rawtap.consumer.derivation import Derived
from rawtap.consumer.telemetry._config import TelemetrySettings
from rawtap.consumer.telemetry._genai import GenAi
from rawtap.consumer.telemetry._histograms import HistogramStore, MergingMetricExporter, Stream
from rawtap.consumer.telemetry._measure import RecordValues
from rawtap.consumer.telemetry._probe import StreamProbe
from rawtap.consumer.telemetry._spans import SCOPE
from rawtap.consumer.telemetry._view import WorkerView
from rawtap.shared import LogOnce, Record

# Bucket boundaries the GenAI conventions advise for these two histograms.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]
_DURATION_BUCKETS = [0.01 * 2.0**i for i in range(14)]
_PIPELINE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

RECORD_HISTOGRAMS: list[Stream] = [  # in the order of _measure's stream indexes
    ("gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.",
     _TOKEN_BUCKETS),
    ("gen_ai.client.operation.duration", "s",
     "GenAI operation duration, as recorded by the producer.", _DURATION_BUCKETS),
    ("gen_ai.client.operation.time_to_first_chunk", "s",
     "Time from the request to the first chunk carrying output (streams).", _DURATION_BUCKETS),
    ("rawtap.record.capture_to_persist.duration", "s",
     "From the producer finishing a record to its commit in the sink.", _PIPELINE_BUCKETS),
    ("gen_ai.client.operation.time_per_output_chunk", "s",
     "Time per output chunk: for each chunk after the first one carrying output, the time "
     "since the chunk before it (streams).", _DURATION_BUCKETS),
]  # fmt: skip
"""The per-record histograms: name, unit, description, advised bucket boundaries."""

# WorkerStats field -> (metric name, unit, description, extra attributes).
COUNTERS: dict[str, tuple[str, str, str, dict[str, str]]] = {
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
"""Every ``WorkerStats`` field (a unit test holds them equal) and its observable counter."""

_Counter = tuple[str, str, str, dict[str, str]]


class Metrics:
    """The instruments of one meter provider, and what the workers' views show at collection.

    ``errors`` counts telemetry's own failures (``rawtap.worker.errors``,
    ``rawtap.error.source=telemetry``).
    """

    def __init__(
        self,
        readers: Sequence[MetricReader],
        resource: Resource,
        settings: TelemetrySettings,
        log: LogOnce,
        *,
        instruments: bool,
        merging: Sequence[MergingMetricExporter] = (),
    ) -> None:
        self.recording = bool(readers)
        """True when a reader collects the per-record metrics (else they are not computed)."""
        self.errors = 0
        self._settings = settings
        self._log = log
        self._views: list[weakref.ReferenceType[WorkerView]] = []
        self._probes: dict[str, StreamProbe] = {}
        self._ledger: dict[str, int] = {}
        self._ledger_at = 0.0
        self._ledger_lock = threading.Lock()
        # The worker never makes a span current, so the default trace-based exemplar filter
        # keeps none: off unless asked for, it spares every record() its context look-up.
        exemplars: dict[str, Any] = {}
        if not os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip():
            exemplars["exemplar_filter"] = AlwaysOffExemplarFilter()
        self.provider = MeterProvider(
            metric_readers=list(readers), resource=resource, shutdown_on_exit=False, **exemplars
        )
        self._values = RecordValues()
        # rawtap aggregates the record histograms itself when every reader exports through
        # a MergingMetricExporter that can take them (explicit buckets, no exemplars).
        self._merging = list(merging)
        own = bool(readers) and len(self._merging) == len(readers)
        own = own and not os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip()
        own = own and all(e.eligible for e in self._merging)
        self._stores = [
            HistogramStore(RECORD_HISTOGRAMS, e.temporality) for e in self._merging if own
        ]
        if instruments:  # a disabled telemetry (every worker's default) builds nothing more
            self._instruments()

    def _instruments(self) -> None:
        meter = self.provider.get_meter(SCOPE)
        if self._stores:
            for exporter, store in zip(self._merging, self._stores, strict=True):
                exporter.store = store
            self._record_histograms = []
        else:
            self._record_histograms = [
                meter.create_histogram(
                    name, unit=unit, description=description,
                    explicit_bucket_boundaries_advisory=list(buckets),
                )
                for name, unit, description, buckets in RECORD_HISTOGRAMS
            ]  # fmt: skip
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
        by_name: dict[str, list[tuple[str, str, str, dict[str, str]]]] = {}
        for stat, (name, unit, description, extra) in COUNTERS.items():
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

    # -- recorded per batch -------------------------------------------------------------

    def records(
        self, stored: Sequence[tuple[Record, Derived]], gen_ais: Sequence[GenAi], persisted_ns: int
    ) -> None:
        """The GenAI histograms and the capture-to-persist delay of a batch's stored records."""
        measurements = self._values.measurements(stored, gen_ais, persisted_ns)
        if self._stores:
            for store in self._stores:
                store.add(measurements)
            return
        histograms = self._record_histograms
        for index, _key, attributes, value in measurements:
            if isinstance(value, tuple):  # a run of values (time per output chunk)
                for one in value:
                    histograms[index].record(one, attributes)
            else:
                histograms[index].record(value, attributes)

    def batch(self, entries: int, started_ns: int, attributes: dict[str, Any]) -> int:
        """Entries consumed and the time the batch took, by stream and group; returns its end."""
        attributes = {**attributes, "messaging.operation.name": "process"}
        self._consumed.add(entries, attributes)
        ended_ns = time.time_ns()
        self._process.record((ended_ns - started_ns) / 1e9, attributes)
        return ended_ns

    def persist(self, commit_s: float, stream: str) -> None:
        """The time a batch's commit took, retries included."""
        self._persist.record(commit_s, {"messaging.destination.name": stream})

    # -- observed at collection time -----------------------------------------------

    def observe(self, view: WorkerView) -> None:
        """Observe ``view`` until the caller drops it (held weakly)."""
        self._views.append(weakref.ref(view))

    def _live_views(self) -> list[WorkerView]:
        live = [v for ref in self._views if (v := ref()) is not None]
        if len(live) != len(self._views):
            self._views = [weakref.ref(v) for v in live]
        return live

    def _stats_callback(self, fields: list[_Counter]) -> Any:
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
                probe = self._probes[view.redis_url] = StreamProbe(view.connect_redis)
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
        interval = self._settings.telemetry_ledger_interval_s
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
                    self._log.warning(
                        "ledger", "rawtap telemetry: cannot read the sink's ledger", exc_info=True
                    )
                    self._ledger_at = now + interval
                    return
                if counts is not None:
                    self._ledger = dict(counts)
                    self._ledger_at = now + interval
                    return

    def close(self) -> None:
        """Close the stream probes' Redis connections."""
        for probe in self._probes.values():
            probe.close()
