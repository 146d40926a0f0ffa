"""The real SDKs against the fake provider: they parse, retry and fail as on the real thing.

Every SDK (OpenAI chat and Responses, OpenRouter through the OpenAI SDK,
Anthropic, google-genai), sync and async, JSON and stream, checked against
what the server logged it sent. Clients are built and closed per call
(``tests.support.sdks``), one server serves the whole module.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
import zlib
from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors

from rawtap.tools.fake_provider import Exchange, FakeProvider, reply_text
from tests.support.rawhttp import dechunk, split_head
from tests.support.sdks import MODES, PROVIDERS, SDKS, Parsed, call

MODELS = {
    "openai-chat": "gpt-4o-mini",
    "openai-responses": "gpt-4o-mini",
    "openrouter": "openai/gpt-4o-mini",
    "anthropic": "claude-sonnet-5-5",
    "gemini": "gemini-2.5-flash",
}
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
EACH_SDK = pytest.mark.parametrize("sdk", SDKS)
EACH_MODE = pytest.mark.parametrize("mode", MODES)

RATE_LIMITED: dict[str, type[Exception]] = {
    "openai-chat": openai.RateLimitError,
    "openai-responses": openai.RateLimitError,
    "openrouter": openai.RateLimitError,
    "anthropic": anthropic.RateLimitError,
    "gemini": genai_errors.ClientError,
}
SERVER_ERROR: dict[str, type[Exception]] = {
    "openai-chat": openai.InternalServerError,
    "openai-responses": openai.InternalServerError,
    "openrouter": openai.InternalServerError,
    "anthropic": anthropic.InternalServerError,
    "gemini": genai_errors.ServerError,
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake(server: FakeProvider) -> FakeProvider:
    """The module's server with an empty log and fresh attempt counters."""
    server.clear()
    return server


def _only(fake: FakeProvider, sdk: str) -> Exchange:
    """The single exchange the call made (and it must be the only one)."""
    fake.wait_idle()
    found = fake.find(provider=PROVIDERS[sdk])
    assert len(found) == 1, [(ex.seq, ex.status, ex.request.target) for ex in found]
    return found[0]


def _assert_matches(parsed: Parsed, ex: Exchange, words: int = 12) -> None:
    """What the SDK parsed is exactly what the server said it sent."""
    assert ex.status == 200
    # OpenAI's sync stream stops reading at `data: [DONE]` (CAPTURE.md pitfall 1): the
    # server may still be writing the gzip trailer or the last chunk when it closes.
    assert ex.complete or (ex.stream and "client closed the connection" in (ex.error or ""))
    assert parsed.text == ex.text == reply_text(words)
    assert ex.usage is not None
    assert ex.usage.output_tokens == words
    assert ex.usage.input_tokens == len(ex.request.body) // 4
    assert (parsed.input_tokens, parsed.output_tokens) == (
        ex.usage.input_tokens,
        ex.usage.output_tokens,
    )
    assert parsed.finish_reason == ex.finish_reason


@EACH_SDK
@EACH_MODE
@STREAMS
def test_sdk_parses_exactly_the_known_reply(
    fake: FakeProvider, sdk: str, mode: str, stream: bool
) -> None:
    parsed = call(fake, sdk, MODELS[sdk], stream=stream, mode=mode)

    ex = _only(fake, sdk)
    _assert_matches(parsed, ex)
    assert ex.stream is stream
    assert ex.model == MODELS[sdk]
    assert ex.wire.startswith(ex.head)
    content_type = ex.header("content-type") or ""
    if stream:
        assert content_type.startswith("text/event-stream")
        assert ex.header("transfer-encoding") == "chunked"
        assert ex.header("content-length") is None
        assert b"".join(ex.chunks) == ex.body
        assert len(ex.chunks) >= 12  # one per word, at least
    elif sdk == "openrouter":
        # OpenRouter pads while the upstream model works, so even JSON goes out chunked.
        assert ex.header("transfer-encoding") == "chunked"
        assert ex.body.startswith(b"\n\n{")
    else:
        assert content_type.startswith("application/json")
        assert ex.header("content-length") == str(len(ex.body))
        assert ex.wire == ex.head + ex.body
        assert ex.chunks == []


@pytest.mark.parametrize(
    ("sdk", "header"),
    [("openai-chat", "x-request-id"), ("anthropic", "request-id")],
)
def test_request_id_headers_reach_the_sdk(fake: FakeProvider, sdk: str, header: str) -> None:
    if sdk == "anthropic":
        with anthropic.Anthropic(api_key="k", base_url=fake.anthropic_base_url) as client:
            message = client.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=8,
                messages=[{"role": "user", "content": "hi"}],
            )
            seen = message._request_id
    else:
        with openai.OpenAI(api_key="k", base_url=fake.openai_base_url) as oclient:
            completion = oclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            seen = completion._request_id
    ex = _only(fake, sdk)
    assert seen == ex.request_id == ex.header(header)
    assert seen is not None


@EACH_SDK
@EACH_MODE
@STREAMS
@pytest.mark.parametrize("status", [429, 500])
def test_error_scenarios_raise_the_sdks_typed_errors(
    fake: FakeProvider, sdk: str, mode: str, stream: bool, status: int
) -> None:
    expected = RATE_LIMITED[sdk] if status == 429 else SERVER_ERROR[sdk]
    with pytest.raises(expected) as raised:
        call(fake, sdk, f"fake-{status}", stream=stream, mode=mode, retries=0)

    ex = _only(fake, sdk)
    assert ex.status == status
    assert ex.complete
    assert ex.usage is None
    assert ex.text is None
    body = ex.json()
    error = raised.value
    if isinstance(error, openai.APIStatusError):
        assert error.status_code == status
        if sdk == "openrouter":
            assert error.body == body["error"]
            assert body["error"]["code"] == status
        else:
            assert error.body == body["error"]
            assert error.request_id == ex.request_id
            if status == 429:
                assert error.code == "rate_limit_exceeded"
            else:
                assert error.type == "server_error"
    elif isinstance(error, anthropic.APIStatusError):
        assert error.status_code == status
        assert error.body == body
        assert body["error"]["type"] == ("rate_limit_error" if status == 429 else "api_error")
        assert error.request_id == ex.request_id == body["request_id"]
    else:
        assert isinstance(error, genai_errors.APIError)
        assert error.code == status
        assert error.status == ("RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL")
        assert error.details == body


@EACH_SDK
@EACH_MODE
@STREAMS
def test_429_then_200_succeeds_after_one_sdk_retry(
    fake: FakeProvider, sdk: str, mode: str, stream: bool
) -> None:
    parsed = call(fake, sdk, "fake-429-then-200", stream=stream, mode=mode, retries=2)

    fake.wait_idle()
    attempts = fake.find(provider=PROVIDERS[sdk])
    assert [(ex.attempt, ex.status) for ex in attempts] == [(1, 429), (2, 200)]
    assert attempts[0].request.body == attempts[1].request.body
    _assert_matches(parsed, attempts[1])
    retry_counts = [ex.request.header("x-stainless-retry-count") for ex in attempts]
    # The Stainless SDKs number their attempts; google-genai sends nothing (CAPTURE.md, 7).
    assert retry_counts == ([None, None] if sdk == "gemini" else ["0", "1"])


@EACH_SDK
def test_500_then_200_succeeds_after_one_sdk_retry(fake: FakeProvider, sdk: str) -> None:
    parsed = call(fake, sdk, "fake-500-then-200", retries=1)

    fake.wait_idle()
    attempts = fake.find(provider=PROVIDERS[sdk])
    assert [ex.status for ex in attempts] == [500, 200]
    _assert_matches(parsed, attempts[1])


@pytest.mark.parametrize("sdk", ["openai-chat", "anthropic"])
def test_stainless_sdks_honour_retry_after_ms(
    fake: FakeProvider, sdk: str, caplog: pytest.LogCaptureFixture
) -> None:
    package = sdk.split("-", maxsplit=1)[0]
    with caplog.at_level(logging.INFO, logger=package), pytest.raises(RATE_LIMITED[sdk]):
        call(fake, sdk, "fake-429", retries=2)

    fake.wait_idle()
    attempts = fake.find(provider=PROVIDERS[sdk])
    assert [ex.status for ex in attempts] == [429, 429, 429]
    assert attempts[0].header("retry-after-ms") == "10"
    # The waits the SDK chose (it logs each before sleeping), not how long the
    # calls took: without retry-after-ms they are 0.5 s then 1 s, less jitter.
    waits = [
        float(m[1])
        for r in caplog.records
        if r.name.startswith(package)
        and (m := re.match(r"Retrying request (?:to \S+ )?in (\S+) seconds", r.getMessage()))
    ]
    assert waits == [0.01, 0.01]


@EACH_SDK
@EACH_MODE
@STREAMS
def test_gzip_round_trips_through_the_sdk(
    fake: FakeProvider, sdk: str, mode: str, stream: bool
) -> None:
    parsed = call(fake, sdk, "fake-gzip", stream=stream, mode=mode)

    ex = _only(fake, sdk)
    _assert_matches(parsed, ex)
    assert "gzip" in (ex.request.header("accept-encoding") or "")
    assert ex.header("content-encoding") == "gzip"
    assert ex.body[:2] == b"\x1f\x8b"
    assert gzip.decompress(ex.body) == ex.decoded_body
    assert ex.text is not None
    if stream:
        assert ex.decoded_body == b"".join(ex.decoded_chunks)
        # Sync-flushed per chunk: each chunk decodes on its own, in order.
        decoder = zlib.decompressobj(wbits=31)
        for piece, plain in zip(ex.chunks, ex.decoded_chunks, strict=False):
            assert decoder.decompress(piece) == plain
    elif sdk != "openrouter":
        assert ex.header("content-length") == str(len(ex.body))


@EACH_SDK
@STREAMS
def test_a_missing_gzip_trailer_does_not_bother_the_sdk(
    fake: FakeProvider, sdk: str, stream: bool
) -> None:
    parsed = call(fake, sdk, "fake-gzip-no-trailer", stream=stream)

    ex = _only(fake, sdk)
    _assert_matches(parsed, ex)
    assert ex.gzipped
    with pytest.raises(EOFError):
        gzip.decompress(ex.body)
    if ex.chunks:
        assert ex.decoded_body == b"".join(ex.decoded_chunks)
    else:
        assert ex.json()


@pytest.mark.parametrize("mode", MODES)
def test_openrouter_keepalives_are_on_the_wire_but_not_in_the_sdk(
    fake: FakeProvider, mode: str
) -> None:
    parsed = call(fake, "openrouter", "openai/gpt-4o-mini", stream=True, mode=mode)

    ex = _only(fake, "openrouter")
    _assert_matches(parsed, ex)
    assert ex.chunks[:2] == [b": OPENROUTER PROCESSING\n\n"] * 2
    assert ex.body.startswith(b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: {")
    assert ex.body.endswith(b"data: [DONE]\n\n")
    assert ": OPENROUTER PROCESSING" not in parsed.text


@EACH_SDK
def test_long_streams_arrive_whole(fake: FakeProvider, sdk: str) -> None:
    parsed = call(fake, sdk, "fake-long", stream=True)

    ex = _only(fake, sdk)
    _assert_matches(parsed, ex, words=200)
    assert len(ex.chunks) >= 200


def test_slow_streams_pace_every_chunk(fake: FakeProvider) -> None:
    arrivals: list[float] = []
    with openai.OpenAI(api_key="k", base_url=fake.openai_base_url) as client:
        started = time.monotonic()
        with client.chat.completions.create(
            model="fake-slow-20+long-10", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as chunks:
            arrivals.extend(time.monotonic() - started for _ in chunks)

    ex = _only(fake, "openai-chat")
    assert ex.scenario.chunk_delay == 0.02
    assert len(arrivals) == 12  # role chunk, ten words, finish chunk
    assert len(ex.chunks) == 13  # one body write per event, then `data: [DONE]`
    # The server pauses 20 ms before every body write, so the client cannot see
    # event k before (k + 1) pauses have passed. A loaded machine only makes
    # arrivals later (gaps between them may shrink as the socket buffers), so
    # these lower bounds hold at any speed; a single missing pause breaks the last.
    for k, arrival in enumerate(arrivals):
        assert arrival >= (k + 1) * 0.02, (k, arrivals)


RESET_ERRORS: dict[str, tuple[type[Exception], ...]] = {
    "openai-chat": (openai.APIConnectionError,),
    "openai-responses": (openai.APIConnectionError,),
    "openrouter": (openai.APIConnectionError,),
    # anthropic wraps transport errors, except those raised while iterating a stream.
    "anthropic": (anthropic.APIConnectionError, httpx2.ReadError),
    # google-genai never wraps transport errors.
    "gemini": (httpx2.ReadError,),
}


@EACH_SDK
@EACH_MODE
@STREAMS
@pytest.mark.parametrize("where", ["before-headers", "mid-body"])
def test_resets_raise_a_connection_error(
    fake: FakeProvider, sdk: str, mode: str, stream: bool, where: str
) -> None:
    with pytest.raises(RESET_ERRORS[sdk]) as raised:
        call(fake, sdk, f"fake-reset-{where}", stream=stream, mode=mode, retries=0)

    error = raised.value
    transport = error if isinstance(error, httpx2.TransportError) else error.__cause__
    assert isinstance(transport, httpx2.ReadError)  # not a connect error or a timeout
    ex = _only(fake, sdk)
    assert ex.reset == where
    assert not ex.complete
    if where == "before-headers":
        assert ex.status is None
        assert ex.wire == b""
    else:
        assert ex.status == 200
        _assert_cut_short(ex)


def _assert_cut_short(ex: Exchange) -> None:
    """The body on the wire stops short of what the headers promise."""
    head, entity = split_head(ex.wire)
    assert head == ex.head
    if ex.header("transfer-encoding") == "chunked":
        framing = dechunk(entity)
        assert not framing.terminated
        assert framing.payloads == ex.chunks
        assert framing.sizes[-1] > len(framing.payloads[-1]) > 0
    else:
        assert entity == ex.body
        assert 0 < len(ex.body) < int(ex.header("content-length") or 0)


def test_a_reset_stream_delivers_its_first_events_then_fails(fake: FakeProvider) -> None:
    received: list[str] = []

    def consume() -> None:
        with openai.OpenAI(api_key="k", base_url=fake.openai_base_url, max_retries=0) as client:
            chunks = client.chat.completions.create(
                model="fake-reset-mid-body",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
            with chunks:
                received.extend(chunk.choices[0].delta.content or "" for chunk in chunks)

    with pytest.raises(openai.APIConnectionError):
        consume()
    text = "".join(received)

    ex = _only(fake, "openai-chat")
    assert ex.text is not None
    assert text
    assert ex.text.startswith(text)
    assert text != ex.text
    _assert_cut_short(ex)


@pytest.mark.parametrize("sdk", ["openai-chat", "anthropic"])
def test_stainless_sdks_retry_a_reset_and_succeed(fake: FakeProvider, sdk: str) -> None:
    parsed = call(fake, sdk, "fake-reset-before-headers-then-200", retries=1)

    fake.wait_idle()
    attempts = fake.find(provider=PROVIDERS[sdk])
    assert [(ex.reset, ex.status) for ex in attempts] == [("before-headers", None), (None, 200)]
    _assert_matches(parsed, attempts[1])


def test_google_genai_does_not_retry_a_reset(fake: FakeProvider) -> None:
    # Its retry predicate covers ConnectError and timeouts, not a ReadError.
    with pytest.raises(httpx2.ReadError):
        call(fake, "gemini", "fake-reset-before-headers-then-200", retries=2)

    ex = _only(fake, "gemini")
    assert ex.reset == "before-headers"
