"""The worker's spans and metrics, read from in-memory exporters (RELIABILITY.md property 19).

One pipeline run serves most tests: a service handles a request inside its own
span and calls OpenAI (JSON, stream), Anthropic (async stream) and Gemini
through the real SDKs, tapped, against the fake provider; one call fails with
400 and one is made outside any span. A worker with in-memory telemetry
stores them. The spans must sit in the service's trace with the recorded
times, and their token counts must equal what the fake provider sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from rawtap.consumer import SqliteSink, Worker
from rawtap.consumer.derivation import derive
from rawtap.consumer.telemetry import record_span_ids
from rawtap.producer import Recorder
from rawtap.shared import Record, StreamNames, encode_entry
from rawtap.tools.fake_provider import Exchange, FakeProvider
from tests.support.otel import MemoryTelemetry, memory_telemetry, points, value
from tests.support.pipeline import wait_until, worker_thread
from tests.support.records import make_record
from tests.support.streams import xadd_entry
from tests.support.tap import API_KEY, MESSAGES

pytestmark = pytest.mark.redis

SERVICE = "checkout-service"


@dataclass
class Run:
    """What one pipeline run left behind."""

    caller: SpanContext
    records: list[Record]
    exchanges: list[Exchange]
    telemetry: MemoryTelemetry
    worker: Worker
    stream: str
    entries: int

    def client_span(self, record: Record) -> ReadableSpan:
        found = [
            s
            for s in self.telemetry.finished()
            if s.kind is SpanKind.CLIENT
            and (s.attributes or {}).get("rawtap.record_id") == record.record_id
        ]
        assert len(found) == 1, f"{len(found)} CLIENT spans for {record.record_id}"
        return found[0]

    @property
    def traced(self) -> list[Record]:
        return [r for r in self.records if r.traceparent]


def _calls(fake: FakeProvider, recorder: Recorder) -> None:
    import anthropic
    import openai
    from google import genai

    oai = recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url))
    oai.chat.completions.create(model="fake-normal", messages=MESSAGES)
    list(
        oai.chat.completions.create(
            model="fake-long-20",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    async def claude() -> None:
        client = recorder.instrument(
            anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.anthropic_base_url)
        )
        stream = await client.messages.create(
            model="fake-normal", max_tokens=50, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass
        await client.close()

    asyncio.run(claude())
    gemini = recorder.instrument(
        genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    )
    gemini.models.generate_content(model="fake-normal", contents="Say something.")
    gemini.close()
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="fake-400", messages=MESSAGES)
    oai.close()


@pytest.fixture(scope="module")
def run(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    prefix = f"rawtaptest-{uuid.uuid4().hex[:12]}"
    host_spans = InMemorySpanExporter()
    host = TracerProvider()
    host.add_span_processor(SimpleSpanProcessor(host_spans))
    memory = memory_telemetry()
    client = redis.Redis.from_url(redis_url)
    spill = tmp_path_factory.mktemp("spill")
    try:
        with FakeProvider() as fake:
            recorder = Recorder(
                redis_url=redis_url, stream_prefix=prefix, service=SERVICE, spill_dir=str(spill)
            )
            tracer = host.get_tracer("checkout")
            with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as span:
                caller = span.get_span_context()
                _calls(fake, recorder)
            import openai

            outside = recorder.instrument(
                openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url)
            )
            outside.chat.completions.create(model="fake-normal", messages=MESSAGES)
            outside.close()
            exchanges = fake.exchanges
            assert recorder.close(10)
        db = tmp_path_factory.mktemp("store") / "t.db"
        with SqliteSink(db) as sink:
            worker = Worker(
                redis_url=redis_url,
                stream_prefix=prefix,
                consumer="w-telemetry",
                block_ms=50,
                sink=sink,
                telemetry=memory.telemetry,
            )
            with worker_thread(worker):
                wait_until(lambda: sink.count() == len(exchanges), what="records stored")
                wait_until(lambda: worker.idle, what="worker idle")
                # A collection while the worker runs, as the periodic reader makes: the
                # ledger gauges read the sink then (on the collecting thread), and keep it.
                memory.metrics()
            records = sorted((rec for rec, _ in sink.iter_stored()), key=lambda r: r.seq)
        entries = int(client.xlen(StreamNames(prefix).shard(0)))
        yield Run(caller, records, exchanges, memory, worker, StreamNames(prefix).shard(0), entries)
    finally:
        memory.telemetry.close()
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


# -- spans -----------------------------------------------------------------------------


def test_each_call_is_a_client_span_in_the_callers_trace_with_the_recorded_times(
    run: Run,
) -> None:
    assert len(run.records) == len(run.exchanges) == 6
    assert len(run.traced) == 5
    for record in run.traced:
        span = run.client_span(record)
        assert span.parent is not None
        assert span.context.trace_id == run.caller.trace_id
        assert span.parent.trace_id == run.caller.trace_id
        assert span.parent.span_id == run.caller.span_id
        assert span.start_time == record.started_at_ns
        assert record.ended_ns is not None
        assert span.end_time == record.started_at_ns + record.ended_ns
        assert span.resource.attributes["service.name"] == SERVICE
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "rawtap.consumer"


def test_gen_ai_attributes_and_token_counts_equal_the_fake_providers(run: Run) -> None:
    expected = {
        "openai": ("openai", "openai", "chat"),
        "anthropic": ("anthropic", "anthropic", "chat"),
        "gemini": ("gcp.gemini", "gemini", "generate_content"),
    }
    for record, exchange in zip(run.records, run.exchanges, strict=True):
        attrs = dict(run.client_span(record).attributes or {})
        provider_name, system, operation = expected[record.provider]
        assert attrs["gen_ai.provider.name"] == provider_name
        assert attrs["gen_ai.system"] == system
        assert attrs["gen_ai.operation.name"] == operation
        assert attrs["gen_ai.request.model"] == exchange.model
        assert run.client_span(record).name == f"{operation} {exchange.model}"
        assert attrs["http.response.status_code"] == exchange.status
        assert attrs["server.address"] == "127.0.0.1"
        assert attrs["rawtap.record_id"] == record.record_id
        if exchange.status == 400:
            continue
        assert exchange.usage is not None
        assert attrs["gen_ai.usage.input_tokens"] == exchange.usage.input_tokens
        assert attrs["gen_ai.usage.output_tokens"] == exchange.usage.output_tokens
        assert attrs["gen_ai.response.id"] == exchange.response_id
        assert attrs["gen_ai.response.model"] == exchange.model
        finish_reasons = cast(Sequence[str], attrs["gen_ai.response.finish_reasons"])
        assert tuple(finish_reasons) == (exchange.finish_reason,)
        # The conventions: set (true) if and only if the request asked for a stream.
        assert attrs.get("gen_ai.request.stream", False) is exchange.stream
        assert attrs["rawtap.response.stream"] is exchange.stream
        assert "error.type" not in attrs


def test_first_token_event_at_the_recorded_time(run: Run) -> None:
    streams = [r for r in run.records if r.stream]
    assert len(streams) == 2
    for record in run.records:
        if record.status != 200:
            continue
        ttft = derive(record).ttft_ns
        assert ttft is not None
        (event,) = [e for e in run.client_span(record).events if e.name == "rawtap.first_token"]
        assert event.timestamp == record.started_at_ns + ttft
        assert event.attributes is not None
        assert event.attributes["gen_ai.response.time_to_first_chunk"] == ttft / 1e9
        if record.stream:
            assert record.first_byte_ns is not None
            assert ttft >= record.first_byte_ns


def test_no_body_goes_into_a_span(run: Run) -> None:
    texts = [e.text for e in run.exchanges if e.text] + ["Say something."]
    assert len(texts) >= 5
    for span in run.telemetry.finished():
        blob = json.dumps(
            [dict(span.attributes or {})]
            + [dict(e.attributes or {}) for e in span.events]
            + [dict(link.attributes or {}) for link in span.links],
            default=str,
        )
        for text in texts:
            assert text not in blob
        assert API_KEY not in blob


def test_a_failed_call_is_an_error_span(run: Run) -> None:
    (record,) = [r for r in run.records if r.status == 400]
    span = run.client_span(record)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "400"
    assert span.status.description


def test_a_call_outside_any_span_is_a_root_span_with_ids_from_the_record(run: Run) -> None:
    (record,) = [r for r in run.records if not r.traceparent]
    span = run.client_span(record)
    assert span.parent is None
    trace_id, span_id = record_span_ids(record.record_id)
    assert (span.context.trace_id, span.context.span_id) == (trace_id, span_id)
    for traced in run.traced:  # traced spans take their span id from the record too
        assert run.client_span(traced).context.span_id == record_span_ids(traced.record_id)[1]


def test_batch_spans_follow_messaging_conventions_and_link_every_record(run: Run) -> None:
    batches = [s for s in run.telemetry.finished() if s.kind is SpanKind.CONSUMER]
    assert batches
    linked: dict[str, tuple[int, int]] = {}
    for span in batches:
        attrs = dict(span.attributes or {})
        assert span.name == f"process {run.stream}"
        assert span.parent is None
        assert attrs["messaging.system"] == "redis"
        assert attrs["messaging.destination.name"] == run.stream
        assert attrs["messaging.consumer.group.name"] == "rawtap"
        assert attrs["messaging.operation.type"] == "process"
        assert attrs["messaging.client.id"] == "w-telemetry"
        assert span.resource.attributes["service.name"] == "rawtap-worker"
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.start_time <= span.end_time
        for link in span.links:
            assert link.attributes is not None
            linked[str(link.attributes["rawtap.record_id"])] = (
                link.context.trace_id,
                link.context.span_id,
            )
    assert sum(
        int(cast(int, (s.attributes or {})["messaging.batch.message_count"])) for s in batches
    ) == (run.entries)
    assert set(linked) == {r.record_id for r in run.records}
    for record in run.traced:
        assert linked[record.record_id] == (run.caller.trace_id, run.caller.span_id)
    (root,) = [r for r in run.records if not r.traceparent]
    assert linked[root.record_id] == record_span_ids(root.record_id)


# -- metrics ---------------------------------------------------------------------------


def test_gen_ai_metrics_by_provider_and_model(run: Run) -> None:
    data = run.telemetry.metrics()
    usage = points(data, "gen_ai.client.token.usage")
    for provider in ("openai", "anthropic", "gcp.gemini"):
        mine = [
            (a, p)
            for a, p in usage
            if a["gen_ai.provider.name"] == provider and a["rawtap.service"]
        ]
        for kind in ("input", "output"):
            want = sum(
                getattr(e.usage, f"{kind}_tokens")
                for r, e in zip(run.records, run.exchanges, strict=True)
                if e.usage is not None
                and {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}[
                    r.provider
                ]
                == provider
            )
            got = sum(p.sum for a, p in mine if a["gen_ai.token.type"] == kind)
            assert got == want, (provider, kind)
    assert all(a["gen_ai.request.model"] for a, _ in usage)
    durations = points(data, "gen_ai.client.operation.duration")
    assert sum(p.count for _, p in durations) == len(run.records)
    (failed,) = [(a, p) for a, p in durations if "error.type" in a]
    assert failed[0]["error.type"] == "400"
    assert failed[0]["gen_ai.request.model"] == "fake-400"
    first_chunk = points(data, "gen_ai.client.operation.time_to_first_chunk")
    assert sum(p.count for _, p in first_chunk) == 2  # the two streams


def test_pipeline_metrics(run: Run) -> None:
    data = run.telemetry.metrics()
    stats = run.worker.stats
    assert value(data, "messaging.client.consumed.messages") == stats.read == run.entries
    assert sum(p.count for _, p in points(data, "messaging.process.duration")) == stats.batches
    assert sum(p.count for _, p in points(data, "rawtap.worker.persist.duration")) >= 1
    delays = points(data, "rawtap.record.capture_to_persist.duration")
    assert sum(p.count for _, p in delays) == len(run.records)
    assert all(p.min >= 0 for _, p in delays)
    assert value(data, "rawtap.worker.records.stored") == stats.stored == len(run.records)
    assert value(data, "rawtap.worker.entries.read") == stats.read
    assert value(data, "rawtap.worker.reports") == stats.reports >= 1
    assert value(data, "rawtap.worker.dead_letters") == 0
    assert value(data, "rawtap.worker.errors", rawtap__error__source="telemetry") == 0
    assert value(data, "rawtap.worker.groups.created") == 1
    assert value(data, "rawtap.stream.length", messaging__destination__name=run.stream) == (
        run.entries
    )
    assert value(data, "rawtap.stream.pending", messaging__destination__name=run.stream) == 0
    assert value(data, "rawtap.stream.lag", messaging__destination__name=run.stream) == 0
    dead = run.stream.replace("{0}", "{dead}")
    assert value(data, "rawtap.stream.length", messaging__destination__name=dead) == 0
    assert value(data, "rawtap.sink.gaps") == 0


# -- single-purpose runs -------------------------------------------------------------------


def _run_worker(
    redis_url: str, prefix: str, sink: SqliteSink, memory: MemoryTelemetry, until: Any
) -> Worker:
    worker = Worker(
        redis_url=redis_url,
        stream_prefix=prefix,
        consumer="w1",
        block_ms=50,
        sink=sink,
        telemetry=memory.telemetry,
    )
    with worker_thread(worker):
        wait_until(lambda: until(worker), what="the worker to get there")
        memory.metrics()  # while it runs: the ledger gauges read the sink (see `run`)
    return worker


def _of(producer_id: str, seq: int) -> Record:
    record = make_record(seq=seq)
    return record.model_copy(
        update={"producer_id": producer_id, "record_id": record.record_id[:-4] + f"{seq:04x}"}
    )


def test_ledger_gauges_count_gaps_dead_letters_and_trimmed(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Any
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    for seq in (0, 2):  # seq 1 never arrives: a gap
        xadd_entry(redis_client, stream, encode_entry(_of("c" * 16, seq)))
    redis_client.xadd(stream, {b"v": b"1", b"env": b"not json"})  # undecodable: dead letter
    # An entry read by w1, then trimmed away while pending.
    redis_client.xgroup_create(stream, "rawtap", id="0")
    doomed = xadd_entry(redis_client, stream, encode_entry(_of("d" * 16, 0)))
    redis_client.xreadgroup("rawtap", "w1", {stream: ">"}, count=10)
    redis_client.xdel(stream, doomed)
    memory = memory_telemetry(telemetry_ledger_interval_s=0.001)
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _run_worker(
            redis_url,
            stream_prefix,
            sink,
            memory,
            lambda w: w.stats.acked >= 3 and w.stats.trimmed_lost >= 1 and w.idle,
        )
        data = memory.metrics()
        assert worker.stats.trimmed_lost == 1
        assert value(data, "rawtap.sink.gaps") == 1
        assert value(data, "rawtap.sink.dead_letters") == 1
        assert value(data, "rawtap.sink.trimmed") == 1
        assert value(data, "rawtap.worker.dead_letters") == 1
        assert value(data, "rawtap.worker.trimmed") == 1
        dead = StreamNames(stream_prefix).dead_letters
        assert value(data, "rawtap.stream.length", messaging__destination__name=dead) == 1
    memory.telemetry.close()


def test_a_record_delivered_twice_gives_the_same_span(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Any
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    record = make_record(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    xadd_entry(redis_client, stream, encode_entry(record))
    xadd_entry(redis_client, stream, encode_entry(record))  # a producer retry
    memory = memory_telemetry()
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = _run_worker(redis_url, stream_prefix, sink, memory, lambda w: w.stats.acked >= 2)
        assert worker.stats.duplicates == 1
    spans = [s for s in memory.finished() if s.kind is SpanKind.CLIENT]
    assert len(spans) == 2
    assert len({(s.context.trace_id, s.context.span_id) for s in spans}) == 1
    assert spans[0].context.trace_id == int("1" * 32, 16)
    memory.telemetry.close()


def test_an_unsampled_caller_gets_no_span(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis, tmp_path: Any
) -> None:
    stream = StreamNames(stream_prefix).shard(0)
    sampled = make_record(traceparent="00-" + "3" * 32 + "-" + "4" * 16 + "-01")
    unsampled = make_record(traceparent="00-" + "5" * 32 + "-" + "6" * 16 + "-00")
    for record in (sampled, unsampled):
        xadd_entry(redis_client, stream, encode_entry(record))
    memory = memory_telemetry()
    with SqliteSink(tmp_path / "s.db") as sink:
        _run_worker(redis_url, stream_prefix, sink, memory, lambda w: w.stats.acked >= 2)
        assert sink.count() == 2
    ids = {(s.attributes or {}).get("rawtap.record_id") for s in memory.finished()}
    assert sampled.record_id in ids
    assert unsampled.record_id not in ids  # the caller decided not to sample its trace
    memory.telemetry.close()
