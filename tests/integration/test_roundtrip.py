"""Record → Redis stream → worker → SQLite: every field and every body byte survive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rawtap.consumer import SqliteSink, Worker
from rawtap.producer import Recorder
from rawtap.shared import BodyForm, EndState, Record
from tests.support.pipeline import drain, worker_thread


def _stored(sink: SqliteSink, producer_id: str) -> dict[int, Record]:
    return {rec.seq: rec for rec, _ in sink.iter_stored(producer_id)}


@pytest.fixture
def pipeline(
    redis_url: str, stream_prefix: str, tmp_path: Path
) -> Iterator[tuple[Recorder, SqliteSink]]:
    sink = SqliteSink(tmp_path / "rt.db")
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, service="svc-test")
    worker = Worker(
        redis_url=redis_url,
        stream_prefix=stream_prefix,
        sink_url="sqlite:///x.db",
        consumer="w1",
        block_ms=50,
        sink=sink,
    )
    with worker_thread(worker):
        yield recorder, sink
    recorder.close()
    sink.close()


def test_json_stream_binary_and_empty_bodies_round_trip_exactly(
    pipeline: tuple[Recorder, SqliteSink],
) -> None:
    recorder, sink = pipeline
    started = time.time_ns()
    json_body = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"caf\xc3\xa9"}}]}'
    chunks = [b'data: {"a":1}\n\n', b"data: [DONE]\n\n"]
    binary = bytes(range(256)) * 4
    latin1 = "naïve".encode("latin-1")  # not valid UTF-8
    # (credential headers such as Set-Cookie are redacted even here: see test_secrets.py)
    headers = [("Content-Type", "application/json"), ("X-Dup", "a=1"), ("x-dup", "b=2")]

    assert recorder.record(
        "openai",
        json_body,
        {"model": "gpt-4o", "n": 1},
        "sess-1",
        status=200,
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        request_headers=[("Content-Type", "application/json")],
        request_body=b'{"model":"x"}',
        response_headers=headers,
        started_at_ns=started,
        first_byte_ns=1_000,
        ended_ns=5_000,
        call_id="call-1",
        attempt=0,
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    assert recorder.record(
        "anthropic", None, None, "sess-2", chunks=chunks, chunk_offsets_ns=[10, 20], status=200
    )
    assert recorder.record("gemini", binary, {}, None)
    assert recorder.record("openai", latin1, None, None, end_state="error", error="boom")
    assert recorder.record("openai", b"", None, None, status=204)
    drain(sink, recorder.producer_id, 5)
    rows = _stored(sink, recorder.producer_id)

    first = rows[0]
    assert first.body == json_body
    assert first.provider == "openai"
    assert first.metadata == {"model": "gpt-4o", "n": 1}
    assert first.session_id == "sess-1"
    assert first.service == "svc-test"
    assert first.status == 200
    assert first.method == "POST"
    assert first.url == "https://api.openai.com/v1/chat/completions"
    assert first.request_body == b'{"model":"x"}'
    assert first.request_headers == [("Content-Type", "application/json")]
    assert first.response_headers == headers  # case, order and duplicates kept
    assert first.started_at_ns == started
    assert (first.first_byte_ns, first.ended_ns) == (1_000, 5_000)
    assert (first.call_id, first.attempt) == ("call-1", 0)
    assert first.traceparent is not None
    assert first.traceparent.startswith("00-aaaa")
    assert first.body_form is BodyForm.BYTES
    assert first.end_state is EndState.COMPLETE
    assert first.producer_id == recorder.producer_id

    streamed = rows[1]
    assert streamed.stream is True
    assert streamed.chunk_bytes() == chunks
    assert [c.offset_ns for c in streamed.chunks] == [10, 20]
    assert streamed.body == b"".join(chunks)

    assert rows[2].body == binary
    assert rows[3].body == latin1
    assert (rows[3].end_state, rows[3].error) == (EndState.ERROR, "boom")
    assert rows[4].body == b""
    assert rows[4].status == 204
    assert sorted(rows) == [0, 1, 2, 3, 4]  # gapless seq
    assert len({r.record_id for r in rows.values()}) == 5


def test_str_json_and_sdk_object_responses_say_which_form_they_came_in(
    pipeline: tuple[Recorder, SqliteSink],
) -> None:
    from pydantic import BaseModel

    class Message(BaseModel):
        id: str
        content: str

    recorder, sink = pipeline
    recorder.record("openai", "plain text é", None, None)
    recorder.record("openai", {"id": "x", "usage": {"total_tokens": 3}}, None, None)
    recorder.record("openai", Message(id="m1", content="hi"), None, None)
    recorder.record("openai", object(), None, None)
    drain(sink, recorder.producer_id, 4)
    rows = _stored(sink, recorder.producer_id)
    assert (rows[0].body, rows[0].body_form) == ("plain text é".encode(), BodyForm.STR)
    assert (rows[1].body, rows[1].body_form) == (
        b'{"id":"x","usage":{"total_tokens":3}}',
        BodyForm.JSON,
    )
    assert (rows[2].body, rows[2].body_form) == (b'{"id":"m1","content":"hi"}', BodyForm.SDK_OBJECT)
    assert rows[3].body_form is BodyForm.REPR
    assert rows[3].body.startswith(b"<object object at")
    assert rows[3].error is not None
    assert "could not be serialized" in rows[3].error
    assert recorder.stats().serialize_fallbacks == 1
