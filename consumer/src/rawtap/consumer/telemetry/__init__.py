"""The worker's OpenTelemetry: one span per recorded provider call, one per batch, and metrics.

The worker hands :class:`WorkerTelemetry` a :class:`CommittedBatch` after each
XACK, and registers one :class:`WorkerView` (plain values and callables) to be
observed at collection time; telemetry never reads the Worker or its Sink.

For each record a batch committed, a CLIENT span named and attributed by the
GenAI semantic conventions (``chat gpt-4o``), with the call's *recorded*
times, as a child of the trace context the producer captured, its ids derived
from ``rawtap.record_id`` (a redelivery yields the same span); per batch a
CONSUMER span (``process rawtap:{0}``) linking to the records. Bodies never go
into spans. Metrics: ``gen_ai.client.*`` histograms per record; the batch's
processing and commit durations, capture-to-persist delay; the worker's
counters as observable counters; stream length, lag and pending read with
``XINFO`` at collection time; gaps, dead letters and trimmed ids from the
sink's ledger, read on the metric reader's thread every
``RAWTAP_TELEMETRY_LEDGER_INTERVAL_S``.

Configured by the standard ``OTEL_*`` variables; off unless they ask for an
exporter or ``RAWTAP_TELEMETRY=on``. Nothing here can stop persistence: every
failure is caught, counted (``rawtap.worker.errors``,
``rawtap.error.source=telemetry``) and logged at most once a minute.

Modules: ``_config`` (settings, exporters, resource), ``_genai`` (GenAI
attributes and names), ``_spans`` (record and batch spans, ids), ``_metrics``
(instruments, observable callbacks), ``_probe`` (stream figures), ``_view``
(the values the worker hands over), ``_telemetry`` (the façade).
"""

from rawtap.consumer.telemetry._config import TelemetrySettings, otel_configured
from rawtap.consumer.telemetry._context import record_span_ids
from rawtap.consumer.telemetry._spans import SCOPE
from rawtap.consumer.telemetry._telemetry import WorkerTelemetry
from rawtap.consumer.telemetry._view import CommittedBatch, WorkerView

__all__ = [
    "SCOPE",
    "CommittedBatch",
    "TelemetrySettings",
    "WorkerTelemetry",
    "WorkerView",
    "otel_configured",
    "record_span_ids",
]
