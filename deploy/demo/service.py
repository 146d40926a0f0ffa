"""The demo service of ``docker compose up``: an application that calls LLMs inside its traces.

Every ``DEMO_INTERVAL_S`` seconds it "handles a request": a SERVER span
(``GET /answer``), inside which it calls the fake provider through the real
OpenAI, Anthropic and google-genai SDKs, instrumented by a rawtap Recorder.
The Recorder captures each call's trace context; the workers later emit the
call's CLIENT span into this trace. The service itself only configures the
OpenTelemetry SDK (from the standard ``OTEL_*`` variables) for its own spans
and for rawtap's producer self-metrics.

Settings: ``FAKE_PROVIDER_URL`` (``http://fake-provider:8765``),
``DEMO_INTERVAL_S`` (2), ``DEMO_ITERATIONS`` (0: until SIGTERM), and the
Recorder's ``RAWTAP_*`` variables (``RAWTAP_REDIS_URL``, …).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from types import FrameType

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from rawtap.producer import Recorder

logger = logging.getLogger("demo-service")

API_KEY = "sk-demo-not-a-real-key"
MESSAGES = [{"role": "user", "content": "Say something."}]


def configure_otel() -> tuple[TracerProvider, MeterProvider]:
    """What any instrumented service does at start-up (endpoints from OTEL_* variables)."""
    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def handle_request(recorder: Recorder, base: str, n: int) -> None:
    """One request of the demo: a few LLM calls, JSON and streamed, across providers."""
    import anthropic
    import openai
    from google import genai
    from google.genai.types import HttpOptions

    tracer = trace.get_tracer("demo-service")
    with (
        tracer.start_as_current_span("GET /answer", kind=SpanKind.SERVER) as span,
        recorder.session(f"user-{n % 5}"),
    ):
        span.set_attribute("http.request.method", "GET")
        span.set_attribute("http.route", "/answer")
        oai = recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=base + "/v1"))
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        for _ in oai.chat.completions.create(
            model="fake-long-30",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass
        oai.close()

        async def claude() -> None:
            client = recorder.instrument(anthropic.AsyncAnthropic(api_key=API_KEY, base_url=base))
            stream = await client.messages.create(
                model="claude-sonnet-4", max_tokens=100, messages=MESSAGES, stream=True
            )
            async for _ in stream:
                pass
            await client.close()

        asyncio.run(claude())
        gemini = recorder.instrument(
            genai.Client(api_key=API_KEY, http_options=HttpOptions(base_url=base))
        )
        gemini.models.generate_content(model="gemini-2.5-flash", contents="Say something.")
        gemini.close()
        if n % 10 == 9:  # now and then a provider error, to see one in Jaeger
            retry = recorder.instrument(
                openai.OpenAI(api_key=API_KEY, base_url=base + "/v1", max_retries=1)
            )
            try:
                retry.chat.completions.create(model="fake-429", messages=MESSAGES)
            except openai.RateLimitError:
                span.set_attribute("demo.rate_limited", True)
            retry.close()


def main() -> int:
    """Run until SIGTERM (or ``DEMO_ITERATIONS`` requests), then flush everything."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    base = os.environ.get("FAKE_PROVIDER_URL", "http://fake-provider:8765").rstrip("/")
    interval = float(os.environ.get("DEMO_INTERVAL_S", "2"))
    iterations = int(os.environ.get("DEMO_ITERATIONS", "0"))
    tracer_provider, meter_provider = configure_otel()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recorder = Recorder()
    n = 0
    try:
        while not stop.is_set() and (iterations == 0 or n < iterations):
            try:
                handle_request(recorder, base, n)
            except Exception:  # the demo goes on while the fake provider starts
                logger.warning("request %d failed", n, exc_info=True)
            n += 1
            stop.wait(interval)
    finally:
        recorder.close()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger.info("demo service handled %d requests: %s", n, recorder.stats())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
