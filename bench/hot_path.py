"""Hot path: what ``Recorder.record()`` costs the caller, per call.

Subject: a real Recorder (writer thread running, shipping to a private Redis)
recording 2 KB responses, every call timed with ``perf_counter_ns`` (the timer
itself, ~0.05 µs, is included). Calls come in bursts that fit the default
memory bound (so nothing is refused), each followed by ``flush()``; the writer
drains *during* the burst, so its competition for the GIL is in the figures.

Baselines, interleaved with the subject round by round:

* one awaited ``XADD`` per call (redis.asyncio + hiredis), what a user would
  write inline in a request handler;
* one OpenTelemetry SDK span per call with six attributes (the response body
  among them) and a BatchSpanProcessor whose exporter discards, how span-based
  LLM recorders capture.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from typing import Any

import orjson
import redis

from bench._common import (
    BODY_BYTES,
    METADATA,
    Figure,
    body_of_size,
    delete_keys,
    percentile,
    time_figure,
)
from bench._paced import first_record_figure, gc_figure, import_figure, paced_figures


def _otel_tracer() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class _Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard()))
    return provider, provider.get_tracer("bench")


def run(redis_url: str, quick: bool, **_: Any) -> list[Figure]:
    """Time ≥ 1M ``record()`` calls (quick: 20k) against the two baselines."""
    import redis.asyncio as aredis

    from rawtap.producer import Recorder

    total = 20_000 if quick else 1_000_000
    burst = 2_000 if quick else 20_000
    xadd_per_round = 100 if quick else 400
    span_per_round = 500 if quick else 2_000
    rounds = total // burst
    body = body_of_size(BODY_BYTES)
    prefix = f"rawtap-bench-hot-{time.time_ns()}"
    fields = {
        b"provider": b"openai",
        b"session": b"user-42",
        b"metadata": orjson.dumps(METADATA),
        b"body": body,
    }
    provider, tracer = _otel_tracer()
    attributes = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.operation.name": "chat",
        "session.id": "user-42",
        "http.route": "/v1/chat/completions",
        "gen_ai.completion": body.decode(),
    }
    loop = asyncio.new_event_loop()
    trim = redis.Redis.from_url(redis_url)
    client = aredis.Redis.from_url(redis_url)

    subject_all: list[int] = []
    subject_p50: list[float] = []
    subject_p99: list[float] = []
    xadd_p50: list[float] = []
    xadd_p99: list[float] = []
    span_p50: list[float] = []
    span_p99: list[float] = []
    refused = 0
    later: list[Figure] = []
    pc = time.perf_counter_ns

    with tempfile.TemporaryDirectory() as spill:
        recorder = Recorder(redis_url=redis_url, stream_prefix=prefix, spill_dir=spill)
        record = recorder.record
        try:
            for _ in range(2_000):  # start the writer, warm every path
                record("openai", body, METADATA, "user-42")
            recorder.flush(30)

            def one_round_subject() -> None:
                samples = [0] * burst
                for i in range(burst):
                    t = pc()
                    record("openai", body, METADATA, "user-42")
                    samples[i] = pc() - t
                recorder.flush(60)
                trim.delete(f"{prefix}:{{0}}")  # no consumer: keep Redis small, no backpressure
                samples.sort()
                subject_all.extend(samples)
                subject_p50.append(percentile(samples, 0.5) / 1000)
                subject_p99.append(percentile(samples, 0.99) / 1000)

            async def xadds() -> list[int]:
                out = []
                for _ in range(xadd_per_round):
                    t = pc()
                    await client.xadd(f"{prefix}:inline", fields, maxlen=10_000)  # type: ignore[arg-type]
                    out.append(pc() - t)
                return out

            def one_round_xadd() -> None:
                samples = sorted(loop.run_until_complete(xadds()))
                xadd_p50.append(percentile(samples, 0.5) / 1000)
                xadd_p99.append(percentile(samples, 0.99) / 1000)

            def one_round_span() -> None:
                samples = []
                for _ in range(span_per_round):
                    t = pc()
                    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
                        span.set_attributes(attributes)
                    samples.append(pc() - t)
                samples.sort()
                span_p50.append(percentile(samples, 0.5) / 1000)
                span_p99.append(percentile(samples, 0.99) / 1000)

            one_round_xadd()
            one_round_span()
            xadd_p50.clear(), xadd_p99.clear(), span_p50.clear(), span_p99.clear()
            gc.collect()
            variants = [one_round_subject, one_round_xadd, one_round_span]
            for r in range(rounds):
                for v in variants if r % 2 == 0 else reversed(variants):
                    v()
            later = paced_figures(record, lambda: recorder.flush(60), body, subject_p50, quick)
            later.append(gc_figure(record, lambda: recorder.flush(60), body, quick))
            stats = recorder.stats()
            refused = stats.dropped.get("buffer_full", 0)
        finally:
            recorder.close()
            loop.run_until_complete(client.aclose())
            trim.close()
            loop.close()
            provider.shutdown()
            delete_keys(redis_url, prefix)

    subject_all.sort()
    p50 = percentile(subject_all, 0.5) / 1000
    p99 = percentile(subject_all, 0.99) / 1000
    extra = {
        "calls": len(subject_all),
        "p50_us": p50,
        "p99_us": p99,
        "p999_us": percentile(subject_all, 0.999) / 1000,
        "max_us": subject_all[-1] / 1000,
        "refused": refused,
        "xadd_calls": len(xadd_p50) * xadd_per_round,
        "span_calls": len(span_p50) * span_per_round,
        "timer_us": _timer_floor_us(),
    }
    note = f"{len(subject_all):,} calls, {refused} refused; p99.9 {extra['p999_us']:.1f} µs"
    return [
        time_figure(
            "hot_path", "Recorder.record() p50 vs awaited XADD", subject_p50, xadd_p50,
            "one awaited XADD per call", goal=1.0, ratio_goal=100, note=note, extra=extra,
        ),
        time_figure(
            "hot_path", "Recorder.record() p50 vs OTel SDK span", subject_p50, span_p50,
            "one OTel SDK span, 6 attributes", goal=1.0, ratio_goal=15,
        ),
        time_figure(
            "hot_path", "Recorder.record() p99 vs awaited XADD p99", subject_p99, xadd_p99,
            "one awaited XADD per call (p99)", goal=10.0,
            note=f"p99 over all calls: {p99:.2f} µs",
        ),
        *later,
        first_record_figure(redis_url, prefix, quick),
        import_figure(quick),
    ]  # fmt: skip


def _timer_floor_us() -> float:
    pc = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        t = pc()
        samples.append(pc() - t)
    return statistics.median(samples) / 1000
