"""Telemetry settings and exporters: ``RAWTAP_TELEMETRY*``, the ``OTEL_*`` rules, the resource.

Telemetry is off unless an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` or an
``OTEL_{TRACES,METRICS}_EXPORTER`` other than ``none`` is set, or
``RAWTAP_TELEMETRY=on``; ``RAWTAP_TELEMETRY=off`` or ``OTEL_SDK_DISABLED=true``
turn it off whatever else is set. One factory builds the span and the metric
exporters (console, OTLP over HTTP, OTLP over gRPC with the ``grpc`` extra).
"""

import importlib
import os
from collections.abc import Mapping
from typing import Any, Literal

from opentelemetry.sdk.resources import Resource
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rawtap.shared import ConfigError

Signal = Literal["TRACES", "METRICS"]

# signal -> (console, OTLP/gRPC, OTLP/HTTP) exporters, as (module, class).
_EXPORTERS: dict[Signal, tuple[tuple[str, str], tuple[str, str], tuple[str, str]]] = {
    "TRACES": (
        ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
        ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
        ("rawtap.consumer.telemetry._export", "RawSpanExporter"),  # OTLPSpanExporter's kin
    ),
    "METRICS": (
        ("opentelemetry.sdk.metrics.export", "ConsoleMetricExporter"),
        ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
        ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ),
}


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


def default_resource(consumer: str | None = None) -> Resource:
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


def exporters(env: Mapping[str, str], signal: Signal) -> list[Any]:
    """The exporters ``OTEL_{signal}_EXPORTER`` names, over the protocol the variables say.

    Raises :class:`~rawtap.shared.ConfigError` for an unknown exporter or protocol, or
    for gRPC without its extra installed.
    """
    console, grpc, http = _EXPORTERS[signal]
    out: list[Any] = []
    for name in _exporter_names(env, signal):
        if name == "console":
            module, cls = console
        elif _protocol(env, signal) == "grpc":
            module, cls = grpc
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise _grpc_missing(e) from e
        else:
            module, cls = http
        out.append(getattr(importlib.import_module(module), cls)())
    return out


def _exporter_names(env: Mapping[str, str], signal: Signal) -> list[str]:
    variable = f"OTEL_{signal}_EXPORTER"
    names = [n.strip().lower() for n in env.get(variable, "otlp").split(",") if n.strip()]
    if "none" in names:
        return []
    unknown = sorted(set(names) - {"otlp", "console"})
    if unknown:
        raise ConfigError(f"{variable}: unknown exporter {unknown[0]!r}; use otlp, console or none")
    return names


def _protocol(env: Mapping[str, str], signal: Signal) -> str:
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
