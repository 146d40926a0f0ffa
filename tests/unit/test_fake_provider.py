"""The fake provider at the HTTP level: what it writes is what it logs, byte for byte.

A raw socket client (``tests.support.rawhttp``) reads every byte the server
sends, so these tests compare the log with what really crossed the wire; the
SDK-level tests are in ``tests/integration/test_fake_provider_sdks.py``.
"""

from __future__ import annotations

import gzip
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rawtap.tools.fake_provider import (
    Exchange,
    FakeProvider,
    Scenario,
    ScenarioError,
    parse_scenario,
    reply_text,
)
from tests.support.rawhttp import RawResult, dechunk, request, split_head


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake(server: FakeProvider) -> FakeProvider:
    server.clear()
    return server


CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ROUTER = "/api/v1/chat/completions"
MESSAGES = "/v1/messages"


def gemini_path(model: str, stream: bool) -> str:
    if stream:
        return f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    return f"/v1beta/models/{model}:generateContent"


def body_for(path: str, model: str, stream: bool, **extra: Any) -> bytes:
    if path.startswith("/v1beta/"):
        payload: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    elif path == RESPONSES:
        payload = {"model": model, "input": "hi", "stream": stream}
    else:
        payload = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        payload["stream"] = stream
        if path == MESSAGES:
            payload["max_tokens"] = 64
    return json.dumps({**payload, **extra}).encode()


def post(
    fake: FakeProvider,
    path: str,
    model: str = "fake-normal",
    stream: bool = False,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[RawResult, Exchange]:
    target = gemini_path(model, stream) if path == "gemini" else path
    result = request(fake.port, "POST", target, body_for(target, model, stream, **extra), headers)
    return result, fake.last()


ENDPOINTS = pytest.mark.parametrize("path", [CHAT, RESPONSES, ROUTER, MESSAGES, "gemini"])
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


# --- scenarios --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", Scenario()),
        ("fake", Scenario()),
        ("fake-normal", Scenario(name="normal")),
        ("fake-429", Scenario(name="429", status=429)),
        ("openai/fake-500", Scenario(name="500", status=500)),
        ("fake-429-then-200", Scenario(name="429-then-200", status=429, then_ok=True)),
        (
            "fake-529x3-then-200",
            Scenario(name="529x3-then-200", status=529, fail_times=3, then_ok=True),
        ),
        ("fake-reset-mid-body", Scenario(name="reset-mid-body", reset="mid-body")),
        (
            "fake-reset-before-headers-then-200",
            Scenario(name="reset-before-headers-then-200", reset="before-headers", then_ok=True),
        ),
        ("fake-gzip+slow", Scenario(name="gzip+slow", gzip=True, chunk_delay=0.05)),
        (
            "fake-gzip-no-trailer+slow-7+long-33",
            Scenario(
                name="gzip-no-trailer+slow-7+long-33",
                gzip=True,
                gzip_trailer=False,
                chunk_delay=0.007,
                words=33,
            ),
        ),
        ("fake-long", Scenario(name="long", words=200)),
    ],
)
def test_model_names_select_scenarios(model: str, expected: Scenario) -> None:
    assert parse_scenario(model) == expected


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        ("fake-418", "418"),
        ("fake-teapot", "teapot"),
        ("fake-429+500", "second"),
        ("fake-429x2", "then-200"),
        ("fake-long-0", "long-0"),
    ],
)
def test_bad_fake_model_names_are_refused(model: str, complaint: str) -> None:
    with pytest.raises(ScenarioError, match=complaint):
        parse_scenario(model)


def test_then_200_fails_cyclically_per_logical_call() -> None:
    once = parse_scenario("fake-429-then-200")
    twice = parse_scenario("fake-500x2-then-200")
    always = parse_scenario("fake-429")
    assert [once.fails(n) for n in range(1, 5)] == [True, False, True, False]
    assert [twice.fails(n) for n in range(1, 7)] == [True, True, False, True, True, False]
    assert all(always.fails(n) for n in range(1, 5))
    assert not any(parse_scenario("fake-gzip").fails(n) for n in range(1, 5))


# --- bytes on the wire ---------------------------------------------------------------


@ENDPOINTS
@STREAMS
def test_the_log_holds_exactly_the_bytes_sent(fake: FakeProvider, path: str, stream: bool) -> None:
    result, ex = post(fake, path, "fake-normal", stream, stream_options={"include_usage": True})

    assert not result.reset
    assert result.received == ex.wire
    head, entity = split_head(result.received)
    assert head == ex.head
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert ex.complete
    assert ex.error is None
    if ex.header("transfer-encoding") == "chunked":
        framing = dechunk(entity)
        assert framing.terminated
        assert framing.payloads == ex.chunks
        assert b"".join(framing.payloads) == ex.body
        assert ex.decoded_chunks == ex.chunks  # no content coding
    else:
        assert ex.header("content-length") == str(len(entity))
        assert entity == ex.body
    assert ex.decoded_body == ex.body
    assert ex.text == reply_text(12)
    assert ex.text.encode() in ex.body or stream  # raw UTF-8, not \\u escapes
    assert ex.usage is not None
    assert ex.usage.input_tokens == len(ex.request.body) // 4
    assert ex.usage.output_tokens == 12


def _events(ex: Exchange) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) per SSE event in the decoded chunks."""
    out: list[tuple[str | None, Any]] = []
    for chunk in ex.decoded_chunks:
        name, data = None, None
        for line in chunk.decode().splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                raw = line[len("data: ") :]
                data = raw if raw == "[DONE]" else json.loads(raw)
        if data is not None:
            out.append((name, data))
    return out


def test_openai_chat_stream_shape(fake: FakeProvider) -> None:
    _, ex = post(fake, CHAT, "gpt-4o-mini", True, stream_options={"include_usage": True})

    events = [data for _, data in _events(ex)]
    assert events[-1] == "[DONE]"
    assert ex.chunks[-1] == b"data: [DONE]\n\n"
    assert all(chunk.endswith(b"\n\n") and b"\r" not in chunk for chunk in ex.chunks)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[1:-2])
    assert deltas == ex.text
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] == 12
    assert ex.header("content-type") == "text/event-stream; charset=utf-8"
    assert ex.header("x-request-id") == ex.request_id


def test_openai_chat_stream_without_include_usage_carries_none(fake: FakeProvider) -> None:
    _, ex = post(fake, CHAT, "gpt-4o-mini", True)

    assert ex.usage is None
    assert b'"usage"' not in ex.body
    assert ex.finish_reason == "stop"


def test_responses_stream_shape(fake: FakeProvider) -> None:
    _, ex = post(fake, RESPONSES, "gpt-4o-mini", True)

    events = _events(ex)
    names = [name for name, _ in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-1] == "response.completed"
    assert [data["type"] for _, data in events] == names
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert final["status"] == "completed"
    assert final["usage"]["output_tokens"] == 12
    assert final["output"][0]["content"][0]["text"] == ex.text


def test_anthropic_stream_shape(fake: FakeProvider) -> None:
    _, ex = post(fake, MESSAGES, "claude-sonnet-5-5", True)

    names = [name for name, _ in _events(ex)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") == 12
    delta = dict(_events(ex))["message_delta"]
    assert delta["usage"] == {"output_tokens": 12}
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert ex.header("request-id") == ex.request_id


def test_gemini_stream_shape(fake: FakeProvider) -> None:
    _, ex = post(fake, "gemini", "gemini-2.5-flash", True)

    assert all(chunk.startswith(b"data: {") for chunk in ex.chunks)
    assert all(chunk.endswith(b"}\r\n\r\n") for chunk in ex.chunks)
    assert b'"role": "model"},"index": 0}' in ex.chunks[0]  # Google's inline spelling
    events = [data for _, data in _events(ex)]
    assert len(events) == 12
    assert "finishReason" not in events[0]["candidates"][0]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 12
    # Google's front end repeats Vary instead of joining it.
    assert [v for n, v in ex.headers if n == "Vary"] == ["Origin", "X-Origin", "Referer"]
    assert ex.request_id is None


def test_openrouter_pads_json_and_comments_streams(fake: FakeProvider) -> None:
    _, padded = post(fake, ROUTER, "openai/gpt-4o-mini", False)
    _, streamed = post(fake, ROUTER, "openai/gpt-4o-mini", True)

    assert padded.chunks[:2] == [b"\n", b"\n"]
    assert padded.usage is not None
    assert json.loads(padded.body)["usage"]["total_tokens"] == padded.usage.total_tokens
    assert streamed.chunks[:2] == [b": OPENROUTER PROCESSING\n\n"] * 2
    assert streamed.chunks[-1] == b"data: [DONE]\n\n"


# --- keep-alive, compression, pacing -----------------------------------------------------


def test_connections_are_kept_alive_across_requests(fake: FakeProvider) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        bodies, sockets = [], []
        for stream in (False, True, False):
            conn.request("POST", CHAT, body_for(CHAT, "gpt-4o-mini", stream))
            sockets.append(conn.sock)
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") == "keep-alive"
            bodies.append(response.read())
        # http.client would reconnect silently; it never had to.
        assert sockets[0] is not None
        assert sockets == [sockets[0]] * 3
    finally:
        conn.close()
    assert [ex.body for ex in fake.exchanges] == bodies


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        (None, False),
        ("identity", False),
        ("gzip;q=0", False),
        ("br, gzip", True),
        ("gzip, deflate", True),
        ("*", True),
    ],
)
def test_gzip_only_when_the_client_accepts_it(
    fake: FakeProvider, accept: str | None, gzipped: bool
) -> None:
    headers = {"Accept-Encoding": accept} if accept else {}
    result, ex = post(fake, CHAT, "fake-gzip", False, headers)

    assert ex.gzipped is gzipped
    assert result.received == ex.wire
    assert json.loads(ex.decoded_body)["choices"][0]["message"]["content"] == ex.text
    if gzipped:
        assert gzip.decompress(ex.body) == ex.decoded_body
        assert ex.body != ex.decoded_body


def test_gzip_no_trailer_streams_decode_but_do_not_end_the_member(fake: FakeProvider) -> None:
    _, ex = post(fake, MESSAGES, "fake-gzip-no-trailer", True, {"Accept-Encoding": "gzip"})

    assert ex.gzipped
    assert len(ex.chunks) == len(ex.decoded_chunks)  # no trailer piece
    assert ex.decoded_body == b"".join(ex.decoded_chunks)
    with pytest.raises(EOFError):
        gzip.decompress(ex.body)


def test_slow_scenarios_pause_before_every_chunk(fake: FakeProvider) -> None:
    result, ex = post(fake, "gemini", "fake-slow-30+long-5", True)

    assert len(ex.chunks) == 5
    times = [t for t, _ in result.arrivals]
    assert times[-1] >= 5 * 0.03
    assert ex.finished is not None
    assert ex.finished - ex.started >= 5 * 0.03


def test_long_scenarios_have_one_chunk_per_word(fake: FakeProvider) -> None:
    _, ex = post(fake, ROUTER, "fake-long-500", True)

    assert ex.text == reply_text(500)
    assert ex.usage is not None
    assert ex.usage.output_tokens == 500
    assert len(ex.chunks) == 2 + 500 + 3  # keep-alives, words, finish, usage, [DONE]


# --- faults ------------------------------------------------------------------------------


def test_reset_before_headers_sends_nothing_but_an_rst(fake: FakeProvider) -> None:
    result, ex = post(fake, CHAT, "fake-reset-before-headers")

    assert result.reset
    assert result.received == b""
    assert ex.reset == "before-headers"
    assert ex.status is None
    assert ex.head == ex.wire == b""
    assert not ex.complete


@ENDPOINTS
@STREAMS
def test_reset_mid_body_sends_half_then_an_rst(fake: FakeProvider, path: str, stream: bool) -> None:
    result, ex = post(fake, path, "fake-reset-mid-body", stream)

    assert result.reset
    assert result.received == ex.wire
    head, entity = split_head(result.received)
    assert head == ex.head
    assert ex.reset == "mid-body"
    assert not ex.complete
    if ex.header("transfer-encoding") == "chunked":
        framing = dechunk(entity)
        assert not framing.terminated
        assert framing.payloads == ex.chunks
        assert framing.sizes[-1] > len(framing.payloads[-1]) > 0
    else:
        assert 0 < len(entity) < int(ex.header("content-length") or 0)
        assert entity == ex.body


@pytest.mark.parametrize(
    ("path", "status", "check"),
    [
        (CHAT, 429, lambda b: b["error"]["code"] == "rate_limit_exceeded"),
        (CHAT, 500, lambda b: b["error"]["type"] == "server_error"),
        (RESPONSES, 401, lambda b: b["error"]["code"] == "invalid_api_key"),
        (ROUTER, 429, lambda b: b["error"]["code"] == 429 and "user_id" in b),
        (MESSAGES, 429, lambda b: b["error"]["type"] == "rate_limit_error"),
        (MESSAGES, 529, lambda b: b["error"]["type"] == "overloaded_error"),
        ("gemini", 429, lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED"),
        ("gemini", 503, lambda b: b["error"]["status"] == "UNAVAILABLE"),
    ],
)
def test_error_bodies_in_each_providers_shape(
    fake: FakeProvider, path: str, status: int, check: Any
) -> None:
    result, ex = post(fake, path, f"fake-{status}", True)

    assert result.received.startswith(f"HTTP/1.1 {status} ".encode())
    assert result.received == ex.wire
    assert ex.header("content-length") == str(len(ex.body))  # errors never stream
    body = ex.json()
    assert check(body)
    assert ex.usage is None
    retryable = status in {429, 500, 503, 529} and path != "gemini"
    assert (ex.header("retry-after-ms") == "10") is retryable
    if path == MESSAGES:
        assert body["request_id"] == ex.header("request-id")


def test_retry_headers_can_be_turned_off() -> None:
    with FakeProvider(retry_after_ms=None) as fake:
        _, ex = post(fake, CHAT, "fake-429")
    assert ex.header("retry-after-ms") is None
    assert ex.header("retry-after") is None


def test_attempts_are_counted_per_logical_call(fake: FakeProvider) -> None:
    def status(model: str = "fake-429-then-200", **extra: Any) -> int | None:
        return post(fake, CHAT, model, False, **extra)[1].status

    assert [status(), status(), status()] == [429, 200, 429]  # cyclic: a new call fails again
    assert status(temperature=0.5) == 429  # another body is another logical call
    assert status(temperature=0.5) == 200
    fake.reset_attempts()
    assert status() == 429
    assert [ex.attempt for ex in fake.exchanges] == [1, 2, 3, 1, 2, 1]
    fake.clear()
    assert fake.exchanges == []
    assert status() == 429
    assert fake.exchanges[0].seq > 6  # sequence numbers are never reused


@pytest.mark.parametrize(
    ("method", "target", "body", "status", "complaint"),
    [
        ("POST", "/v1/embeddings", b"{}", 404, "no POST /v1/embeddings"),
        ("GET", CHAT, b"", 405, "no GET /v1/chat/completions"),
        ("POST", CHAT, b"{not json", 400, "invalid JSON"),
        ("POST", CHAT, b"[1, 2]", 400, "not a JSON object"),
        ("POST", CHAT, b'{"model": "fake-teapot"}', 400, "teapot"),
        ("POST", "/v1beta/models/m:streamGenerateContent", b"{}", 400, "alt=sse"),
    ],
)
def test_bad_requests_get_provider_shaped_errors(
    fake: FakeProvider, method: str, target: str, body: bytes, status: int, complaint: str
) -> None:
    result = request(fake.port, method, target, body)

    ex = fake.last()
    assert result.received.startswith(f"HTTP/1.1 {status} ".encode())
    assert ex.status == status
    assert complaint in ex.json()["error"]["message"]


def test_chunked_request_bodies_are_read(fake: FakeProvider) -> None:
    payload = body_for(CHAT, "gpt-4o-mini", False)
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (payload[:10], payload[10:]))
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
        )
        received = b""
        while data := sock.recv(65536):
            received += data
    ex = fake.last()
    assert ex.request.body == payload
    assert received == ex.wire
    assert ex.status == 200


def test_requests_are_logged_as_read(fake: FakeProvider) -> None:
    post(fake, "gemini", "fake-normal", True, {"X-Goog-Api-Key": "k", "Accept-Encoding": "gzip"})

    ex = fake.last()
    assert ex.request.method == "POST"
    assert ex.request.target == "/v1beta/models/fake-normal:streamGenerateContent?alt=sse"
    assert ex.request.path == "/v1beta/models/fake-normal:streamGenerateContent"
    assert ex.request.query == "alt=sse"
    assert ex.request.header("x-goog-api-key") == "k"
    assert ("X-Goog-Api-Key", "k") in ex.request.headers
    assert ex.request.json()["contents"][0]["parts"][0]["text"] == "hi"
    assert (ex.provider, ex.api, ex.model, ex.stream) == (
        "gemini",
        "streamGenerateContent",
        "fake-normal",
        True,
    )


# --- the log and the lifecycle ---------------------------------------------------------


def test_find_and_last_filter_the_log(fake: FakeProvider) -> None:
    post(fake, CHAT, "gpt-4o-mini")
    post(fake, MESSAGES, "fake-429")
    post(fake, "gemini", "gemini-2.5-flash", True)

    assert [ex.provider for ex in fake.find()] == ["openai", "anthropic", "gemini"]
    assert fake.last(provider="anthropic").status == 429
    assert fake.last(scenario="429").provider == "anthropic"
    assert fake.last(path=CHAT).model == "gpt-4o-mini"
    assert fake.find(stream=True)[0].api == "streamGenerateContent"
    assert fake.find(status=200, provider="anthropic") == []
    with pytest.raises(LookupError):
        fake.last(path="/nowhere")


def test_last_waits_for_an_exchange_in_flight(fake: FakeProvider) -> None:
    results: list[RawResult] = []
    body = body_for(CHAT, "fake-slow-40+long-5", True)
    thread = threading.Thread(
        target=lambda: results.append(request(fake.port, "POST", CHAT, body)), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not fake.find(timeout=None) and time.monotonic() < deadline:
        time.sleep(0.005)
    in_flight = fake.find(timeout=None)[0]
    assert not in_flight.done
    with pytest.raises(TimeoutError):
        in_flight.wait(0.01)
    ex = fake.last(timeout=5)
    assert ex is in_flight
    assert ex.done
    assert ex.complete
    thread.join(5)
    assert results[0].received == ex.wire


def test_a_client_that_hangs_up_mid_stream_is_logged(fake: FakeProvider) -> None:
    body = body_for(CHAT, "fake-slow-20+long-50", True)
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(
            f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        sock.recv(100)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    ex = fake.last(timeout=5)
    assert not ex.complete
    assert ex.error is not None
    assert "client closed the connection" in ex.error
    assert len(ex.chunks) < 50
    # …and the server goes on serving.
    assert post(fake, CHAT, "gpt-4o-mini")[1].status == 200


def test_the_log_can_be_bounded() -> None:
    with FakeProvider(max_exchanges=2) as fake:
        for _ in range(3):
            post(fake, CHAT, "gpt-4o-mini")
        fake.wait_idle()
        assert [ex.seq for ex in fake.exchanges] == [2, 3]
    with FakeProvider(max_exchanges=0) as fake:
        result = request(fake.port, "POST", CHAT, body_for(CHAT, "gpt-4o-mini", False))
        assert result.received.startswith(b"HTTP/1.1 200 OK")
        assert fake.exchanges == []


def test_close_drops_idle_keep_alive_connections_promptly() -> None:
    fake = FakeProvider().start()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request("POST", CHAT, body_for(CHAT, "gpt-4o-mini", False))
        conn.getresponse().read()
        started = time.monotonic()
        fake.close()
        assert time.monotonic() - started < 1.0
        assert conn.sock is not None
        assert conn.sock.recv(1) == b""  # the server closed its end
    finally:
        conn.close()
    fake.close()  # idempotent
    with pytest.raises(RuntimeError):
        fake.start()


def test_base_urls_for_each_sdk() -> None:
    with FakeProvider() as fake:
        assert fake.url == f"http://127.0.0.1:{fake.port}"
        assert fake.openai_base_url == fake.url + "/v1"
        assert fake.openrouter_base_url == fake.url + "/api/v1"
        assert fake.anthropic_base_url == fake.url
        options = fake.gemini_http_options(timeout=1000)
        assert options.base_url == fake.url
        assert options.timeout == 1000
    with pytest.raises(RuntimeError):
        _ = FakeProvider().url


def test_runs_as_a_process_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawtap.tools.fake_provider", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake provider listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        health = request(port, "GET", "/_fake/health")
        assert health.received.endswith(b"\r\n\r\nok\n")
        reply = request(port, "POST", CHAT, body_for(CHAT, "fake-gzip+long-3", True))
        head, entity = split_head(reply.received)
        assert b"Transfer-Encoding: chunked" in head
        assert dechunk(entity).terminated
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
