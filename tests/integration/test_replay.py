"""ReplayServer: stored records served back to the real SDKs, which parse what they parsed then."""

from __future__ import annotations

import gzip
import http.client
import random
import time
from collections.abc import Iterator

import orjson
import pytest

from rawtap.consumer import derive, open_sink
from rawtap.consumer.read import iter_matching
from rawtap.consumer.store import RecordQuery
from rawtap.shared import Record
from rawtap.tools import ReplayServer
from tests.support.records import make_record, sse
from tests.support.synthetic import SyntheticResponse, anthropic, gemini, openai

JSON = [("Content-Type", "application/json"), ("x-request-id", "req_replay")]
SSE = [("Content-Type", "text/event-stream; charset=utf-8")]


def _record(reply: SyntheticResponse, headers: list[tuple[str, str]] | None = None) -> Record:
    return make_record(
        reply.provider,
        reply.body,
        chunks=reply.chunks or None,
        url=reply.url,
        request_body=reply.request_body,
        headers=headers or (SSE if reply.stream else JSON),
        chunk_step_ns=2_000_000,
    )


@pytest.fixture
def replies() -> dict[str, SyntheticResponse]:
    rng = random.Random(21)
    return {
        "openai": openai(rng, False),
        "openai-stream": openai(rng, True),
        "anthropic": anthropic(rng, False),
        "anthropic-stream": anthropic(rng, True),
        "gemini": gemini(rng, False),
        "gemini-stream": gemini(rng, True),
    }


@pytest.fixture
def server(sink_url: str, replies: dict[str, SyntheticResponse]) -> Iterator[ReplayServer]:
    """Records persisted in each store, read back, and served (match by path, in order)."""
    records = [_record(r) for r in replies.values()]
    with open_sink(sink_url) as store:
        store.write(records, time.time_ns(), [derive(r) for r in records])
        stored = list(iter_matching(store, RecordQuery()))
    assert stored == records
    with ReplayServer(stored, match="path") as srv:
        yield srv


def _words(reply: SyntheticResponse) -> str:
    return derive(_record(reply)).text or ""


def test_openai_sdk_reads_replayed_json_and_stream(
    server: ReplayServer, replies: dict[str, SyntheticResponse]
) -> None:
    from openai import OpenAI

    client = OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    expected = derive(_record(replies["openai"]))
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == expected.text
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        expected.input_tokens,
        expected.output_tokens,
    )
    assert reply.id == expected.response_id
    client.close()


def test_openai_sdk_reads_replayed_stream(
    sink_url: str, replies: dict[str, SyntheticResponse]
) -> None:
    from openai import OpenAI

    record = _record(replies["openai-stream"])
    with ReplayServer([record]) as srv:
        client = OpenAI(api_key="sk-test", base_url=srv.url + "/v1", max_retries=0)
        # match="request": the SDK must send the body that was recorded (key order aside)
        request = orjson.loads(record.request_body)
        stream = client.chat.completions.create(**request)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.close()
    assert text == derive(record).text
    assert srv.misses == []


def test_anthropic_sdk_reads_replayed_json_and_stream(
    server: ReplayServer, replies: dict[str, SyntheticResponse]
) -> None:
    from anthropic import Anthropic
    from anthropic.types import TextBlock

    client = Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
    expected = derive(_record(replies["anthropic"]))
    message = client.messages.create(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert isinstance(message.content[0], TextBlock)
    assert message.content[0].text == expected.text
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        expected.input_tokens,
        expected.output_tokens,
    )
    streamed = derive(_record(replies["anthropic-stream"]))
    with client.messages.stream(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert isinstance(final.content[0], TextBlock)
    assert final.content[0].text == streamed.text
    assert final.usage.output_tokens == streamed.output_tokens
    client.close()


def test_gemini_sdk_reads_replayed_json_and_stream(
    server: ReplayServer, replies: dict[str, SyntheticResponse]
) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"),
    )
    expected = derive(_record(replies["gemini"]))
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert reply.text == expected.text
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.prompt_token_count == expected.input_tokens
    streamed = derive(_record(replies["gemini-stream"]))
    text = "".join(
        c.text or ""
        for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    )
    assert text == streamed.text
    assert server.misses == []


def _post(url: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    host = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_request_matching_attempt_order_gzip_and_misses() -> None:
    chat = "https://api.openai.com/v1/chat/completions"
    request = b'{"model":"m","messages":[{"role":"user","content":"q"}]}'
    first = make_record(
        body=b'{"error":{"message":"busy"}}',
        url=chat,
        status=429,
        request_body=request,
        headers=JSON,
    )
    payload = b'{"id":"ok","object":"chat.completion","choices":[]}'
    second = make_record(
        body=gzip.compress(payload),
        url=chat,
        status=200,
        request_body=request,
        headers=[*JSON, ("Content-Encoding", "gzip")],
    )
    with ReplayServer([second, first]) as srv:  # served in capture order, whatever the input order
        reordered = b'{"messages":[{"content":"q","role":"user"}],"model":"m"}'
        status, _, body = _post(srv.url, "/v1/chat/completions", reordered)
        assert (status, body) == (429, first.body)
        status, headers, body = _post(srv.url, "/v1/chat/completions", request)
        assert status == 200
        assert headers["Content-Encoding"] == "gzip"
        assert body == second.body  # byte-exact: still compressed
        assert _post(srv.url, "/v1/chat/completions", request)[0] == 200  # the last one repeats
        status, _, body = _post(srv.url, "/v1/chat/completions", b'{"model":"other"}')
        assert status == 404
        assert b"rawtap replay: no recorded response" in body
        assert srv.misses == ["POST /v1/chat/completions"]


def test_timing_replays_the_recorded_pace() -> None:
    chunks = sse(*[(None, {"i": i}) for i in range(5)])
    record = make_record(
        chunks=chunks, url="https://x/v1/chat/completions", chunk_step_ns=60_000_000, headers=SSE
    )
    with ReplayServer([record], match="path", timing=True) as srv:
        started = time.monotonic()
        status, _, body = _post(srv.url, "/v1/chat/completions", b"{}")
        elapsed = time.monotonic() - started
    assert (status, body) == (200, record.body)
    assert elapsed >= 0.25  # last chunk recorded at 300 ms


def test_an_incomplete_stream_is_cut_off_again() -> None:
    chunks = sse((None, {"i": 0}), (None, {"i": 1}))
    record = make_record(
        chunks=chunks, url="https://x/v1/messages", end_state="closed_early", headers=SSE
    )
    with ReplayServer([record], match="path") as srv:
        with pytest.raises(http.client.IncompleteRead) as info:
            _post(srv.url, "/v1/messages", b"{}")
        assert info.value.partial == record.body
