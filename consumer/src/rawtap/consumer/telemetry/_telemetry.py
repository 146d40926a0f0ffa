"""The worker's OpenTelemetry façade: :class:`WorkerTelemetry`.

It turns each :class:`~rawtap.consumer.telemetry.CommittedBatch` into spans
(:mod:`._spans`) and metrics (:mod:`._metrics`), and observes the workers'
views at collection time. Nothing here can stop persistence: the hook runs
after the batch was acknowledged, every failure is caught, counted
(``rawtap.worker.errors``, ``rawtap.error.source=telemetry``) and logged at
most once a minute, and the exporters run on the SDK's own threads with
bounded queues.
"""

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from pydantic import ValidationError

from rawtap.consumer.telemetry._config import (
    TelemetrySettings,
    default_resource,
    exporters,
    otel_configured,
)
from rawtap.consumer.telemetry._export import span_processor
from rawtap.consumer.telemetry._genai import gen_ai_attributes, latest_only
from rawtap.consumer.telemetry._histograms import MergingMetricExporter
from rawtap.consumer.telemetry._metrics import Metrics
from rawtap.consumer.telemetry._spans import SCOPE, Spans
from rawtap.consumer.telemetry._view import CommittedBatch, WorkerView
from rawtap.shared import ConfigError, LogOnce

logger = logging.getLogger(__name__)


class WorkerTelemetry:
    """Spans and metrics of workers, exported by the span processors and metric readers given.

    ``WorkerTelemetry.from_env()`` builds OTLP (or console) exporters from the
    ``OTEL_*`` variables, or a disabled instance (every method returns at once)
    when telemetry is off. Tests pass in-memory processors and readers.
    ``close()`` flushes and shuts the providers down within
    ``telemetry_flush_timeout_s``; it is idempotent. ``OTEL_SEMCONV_STABILITY_OPT_IN`` is
    read once, here: ``gen_ai_latest_experimental`` in it drops the deprecated
    ``gen_ai.system`` (:mod:`._genai`).
    """

    def __init__(
        self,
        *,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        resource: Resource | None = None,
        settings: TelemetrySettings | None = None,
        merging_exporters: Sequence[MergingMetricExporter] = (),
    ) -> None:
        self.settings = settings or TelemetrySettings()
        self.resource = resource or default_resource()
        self.enabled = bool(span_processors or metric_readers)
        self.span_processors = list(span_processors)
        self.metric_readers = list(metric_readers)
        self._closed = False
        # OTEL_SEMCONV_STABILITY_OPT_IN is read once, as instrumentations read it at start.
        self._system = not latest_only(os.environ)
        self._log = LogOnce(logger)
        self._spans = Spans(span_processors, self.resource)
        self._processor = self._spans.processor
        self._metrics = Metrics(
            metric_readers, self.resource, self.settings, self._log,
            instruments=self.enabled, merging=merging_exporters,
        )  # fmt: skip

    @property
    def errors(self) -> int:
        """Telemetry's own failures so far (batches it could not report, ledger reads)."""
        return self._metrics.errors

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
        # OTLP/HTTP gets the batch's spans encoded by rawtap; others the SDK's batch processor.
        processors = [span_processor(e, env) for e in exporters(env, "TRACES")]
        resource = default_resource(consumer)
        # Each metric exporter also gets the record histograms rawtap aggregates per batch.
        merging = [
            MergingMetricExporter(exporter, SCOPE, resource)
            for exporter in exporters(env, "METRICS")
        ]
        readers: list[MetricReader] = [PeriodicExportingMetricReader(e) for e in merging]
        telemetry = cls(
            span_processors=processors, metric_readers=readers, resource=resource,
            settings=settings, merging_exporters=merging,
        )  # fmt: skip
        logger.info(
            "telemetry on: %d span exporter(s), %d metric exporter(s), service.name=%s",
            len(processors),
            len(readers),
            resource.attributes.get("service.name"),
        )
        return telemetry

    # -- the worker's hooks ---------------------------------------------------------

    def observe(self, view: WorkerView) -> None:
        """Observe a worker's counters, streams and sink ledger from now on (the Worker calls this).

        Held weakly: the observations end when the caller drops ``view``.
        """
        if self.enabled:
            self._metrics.observe(view)

    def batch_committed(self, batch: CommittedBatch) -> None:
        """Spans and metrics for one handled (committed and acknowledged) batch; never raises."""
        if not self.enabled or self._closed:
            return
        try:
            self._batch(batch)
            if batch.commit_s is not None and (batch.stored or batch.refused):
                self._metrics.persist(batch.commit_s, batch.stream)
        except Exception:  # noqa: BLE001 - telemetry must never stop persistence
            self._metrics.errors += 1
            self._log.warning(
                "batch", "rawtap telemetry failed for a batch; persistence goes on", exc_info=True
            )

    def _batch(self, batch: CommittedBatch) -> None:
        persisted_ns = time.time_ns()
        system = self._system
        gen_ais = [gen_ai_attributes(r, f, system=system) for r, f in batch.stored]
        spans = self._spans.record_spans(batch.stored, gen_ais) if self._spans.enabled else []
        if self._metrics.recording:
            self._metrics.records(batch.stored, gen_ais, persisted_ns)
        batch_attrs = {
            "messaging.system": "redis",
            "messaging.destination.name": batch.stream,
            "messaging.consumer.group.name": batch.group,
        }
        ended_ns = self._metrics.batch(batch.entries, batch.started_ns, batch_attrs)
        self._spans.emit(
            spans,
            batch.stream,
            batch.started_ns,
            ended_ns,
            {
                **batch_attrs,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.batch.message_count": batch.entries,
                "messaging.client.id": batch.consumer,
                "rawtap.records": len(batch.stored),
            },
        )

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
                self._metrics.provider.shutdown(timeout_millis=timeout * 1000)
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
        self._metrics.close()
