"""What the tap promises around the capture: sessions, call ids, redaction, never
breaking the host, both httpx flavours, idempotent installation, constructor
injection, disabling, the record size cap and trace context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest

from rawtap.producer import Recorder, _redact
from rawtap.producer._redact import _record as _redact_record
from rawtap.producer._tap import _capture
from rawtap.producer._tap._flavour import is_tap
from rawtap.shared import EndState
from rawtap.tools.fake_provider import FakeProvider
from tests.support.tap import (
    API_KEY,
    BY_NAME,
    MESSAGES,
    Captured,
    exchanges,
    raw_stream_bytes,
)

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def captured(redis_url: str, stream_prefix: str, redis_client: Any) -> Iterator[Captured]:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    yield Captured(recorder, redis_client, stream_prefix)
    recorder.close()


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeProvider) -> None:
    fake.clear()


def _openai(fake: FakeProvider, **kw: Any) -> Any:
    import openai

    return openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, **kw)


def _chat(client: Any, model: str = "fake-normal", stream: bool = False) -> Any:
    if stream:
        return [
            c.choices[0].delta.content
            for c in client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
            if c.choices
        ]
    return client.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content


# -- sessions and call ids ------------------------------------------------------------


def test_session_tags_records_nests_and_can_switch_capture_off(
    fake: FakeProvider, captured: Captured
) -> None:
    recorder = captured.recorder
    client = recorder.instrument(_openai(fake))
    try:
        _chat(client)
        with recorder.session("user-42", metadata={"team": "search", "tier": 1}):
            _chat(client, stream=True)
            with recorder.session(metadata={"tier": 2, "step": "rerank"}):
                _chat(client)
            with recorder.session(record=False):
                assert _chat(client)  # performance-critical path: not captured
    finally:
        client.close()
    outside, inside, nested = captured.records(3)
    assert (outside.session_id, outside.metadata) == (None, {})
    assert inside.session_id == "user-42"
    assert inside.metadata == {"team": "search", "tier": 1}
    assert nested.session_id == "user-42"
    assert nested.metadata == {"team": "search", "tier": 2, "step": "rerank"}


def test_sessions_of_concurrent_tasks_do_not_mix(fake: FakeProvider, captured: Captured) -> None:
    import openai

    recorder = captured.recorder

    async def main() -> None:
        client = recorder.instrument(
            openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.openai_base_url)
        )

        async def as_user(name: str) -> None:
            async with recorder.session(name, metadata={"user": name}):
                for _ in range(3):
                    await client.chat.completions.create(model="fake-normal", messages=MESSAGES)
                    await asyncio.sleep(0)

        try:
            await asyncio.gather(as_user("alice"), as_user("bob"))
        finally:
            await client.close()

    asyncio.run(main())
    records = captured.records(6)
    assert sorted(r.session_id or "" for r in records) == ["alice"] * 3 + ["bob"] * 3
    assert all(r.metadata == {"user": r.session_id} for r in records)
    assert len({r.call_id for r in records}) == 6


def test_trace_context_of_the_caller_is_recorded(fake: FakeProvider, captured: Captured) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    ctx = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "x")]),
    )
    client = captured.recorder.instrument(_openai(fake))
    try:
        with trace.use_span(NonRecordingSpan(ctx)):
            _chat(client)
        _chat(client)
    finally:
        client.close()
    inside, outside = captured.records(2)
    assert inside.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert inside.tracestate == "vendor=x"
    assert outside.traceparent is None


# -- redaction ------------------------------------------------------------------------


@pytest.mark.parametrize("sdk", ["openai", "anthropic", "gemini"])
def test_no_key_in_any_stored_byte_even_when_echoed(
    sdk: str, fake: FakeProvider, captured: Captured
) -> None:
    """CAPTURE.md pitfall 10; the model name carries the key, so every body echoes it."""
    model = f"model-{API_KEY}"
    recorder = captured.recorder
    if sdk == "openai":
        client: Any = recorder.instrument(_openai(fake))
        text = _chat(client, model)
        _chat(client, model, stream=True)
    elif sdk == "anthropic":
        import anthropic

        client = recorder.instrument(
            anthropic.Anthropic(api_key=API_KEY, base_url=fake.anthropic_base_url)
        )
        text = client.messages.create(model=model, max_tokens=50, messages=MESSAGES).model
        list(client.messages.create(model=model, max_tokens=50, messages=MESSAGES, stream=True))
    else:
        from google import genai

        client = recorder.instrument(
            genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
        )
        text = client.models.generate_content(model=model, contents="Hi.").text
        list(client.models.generate_content_stream(model=model, contents="Hi."))
    client.close()
    assert text
    records = captured.records(2)
    wire = b"".join(ex.body + ex.request.body for ex in fake.exchanges)
    assert API_KEY.encode() in wire  # the test means something: the key was echoed
    for record, ex in zip(records, fake.exchanges, strict=True):
        assert record.end_state is EndState.COMPLETE
        assert len(record.body) == len(ex.body)  # masks keep lengths (and chunk sizes)
        assert API_KEY not in repr(record.model_dump())
        assert _redact.mask(API_KEY.encode()) in record.body + record.request_body
    assert API_KEY.encode() not in raw_stream_bytes(captured.redis, captured.prefix)


def test_key_query_parameter_and_cookies_are_redacted(
    fake: FakeProvider, captured: Captured
) -> None:
    client = captured.recorder.instrument(httpx2.Client(), provider="gemini")
    try:
        response = client.post(
            f"{fake.url}/v1beta/models/fake-normal:generateContent?key={API_KEY}&alt=json",
            json={"contents": [{"parts": [{"text": "Hi."}]}]},
            headers={"Cookie": "session=abc123", "Proxy-Authorization": "Basic dXNlcjpwYXNz"},
        )
    finally:
        client.close()
    assert response.status_code == 200
    (record,) = captured.records(1)
    assert record.url is not None
    assert "key=[REDACTED]&alt=json" in record.url
    headers = {k.lower(): v for k, v in record.request_headers}
    assert headers["cookie"] == "[REDACTED]"
    assert headers["proxy-authorization"] == "Basic [REDACTED]"
    assert API_KEY.encode() not in raw_stream_bytes(captured.redis, captured.prefix)


# -- never breaking the host ----------------------------------------------------------


def _break_record(*_a: Any, **_k: Any) -> bool:
    raise RuntimeError("recorder is broken")


def _break(*_a: Any, **_k: Any) -> Any:
    raise RuntimeError("tap internals are broken")


@pytest.mark.parametrize(
    "target",
    ["record", "begin", "head", "finish", "closed", "redact"],
)
def test_broken_internals_never_change_what_the_sdk_returns_or_raises(
    target: str, fake: FakeProvider, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = captured.recorder
    plain_client = _openai(fake, max_retries=1)
    expected = [
        _chat(plain_client),
        _chat(plain_client, stream=True),
        _chat(plain_client, "fake-429-then-200", stream=True),
    ]
    try:
        _chat(plain_client, "fake-500")
    except Exception as e:
        expected.append((type(e), e.status_code))  # type: ignore[attr-defined]
    plain_client.close()
    fake.reset_attempts()

    if target == "record":
        monkeypatch.setattr(recorder, "record", _break_record)
    elif target == "begin":
        monkeypatch.setattr(_capture, "trace_context", _break)
    elif target == "head":
        monkeypatch.setattr(_capture.Capture, "head", _break)
    elif target == "finish":
        monkeypatch.setattr(_capture, "_request_headers", _break)
    elif target == "closed":
        monkeypatch.setattr(_capture.Capture, "_saw_terminal_event", _break)
    else:
        # Redaction runs on the writer thread: a failure there drops the record (never
        # stores it unredacted) and the SDK's path never sees it.
        monkeypatch.setattr(_redact_record, "url", _break)
    client = recorder.instrument(_openai(fake, max_retries=1))
    got = [
        _chat(client),
        _chat(client, stream=True),
        _chat(client, "fake-429-then-200", stream=True),
    ]
    try:
        _chat(client, "fake-500")
    except Exception as e:
        got.append((type(e), e.status_code))  # type: ignore[attr-defined]
    client.close()
    assert got == expected
    if target == "redact":
        recorder.flush(10)
        assert recorder.stats().dropped.get("serialize_error", 0) > 0
        return
    assert recorder.stats().internal_errors > 0 or target == "record"


# -- installation ---------------------------------------------------------------------


def test_legacy_httpx_clients_are_tapped_too(fake: FakeProvider, captured: Captured) -> None:
    import openai

    recorder = captured.recorder
    sync_client = recorder.instrument(
        # The point of the test: a legacy httpx client, which the SDK's types no longer name.
        openai.OpenAI(
            api_key=API_KEY,
            base_url=fake.openai_base_url,
            http_client=httpx.Client(),  # type: ignore[arg-type]
        )
    )
    assert type(sync_client._client._transport).__mro__[2] is httpx.BaseTransport
    try:
        text = _chat(sync_client, stream=True)
    finally:
        sync_client.close()

    async def main() -> Any:
        client = recorder.instrument(
            openai.AsyncOpenAI(
                api_key=API_KEY,
                base_url=fake.openai_base_url,
                http_client=httpx.AsyncClient(),  # type: ignore[arg-type]
            )
        )
        try:
            r = await client.chat.completions.create(model="fake-normal", messages=MESSAGES)
            return r.choices[0].message.content
        finally:
            await client.close()

    assert text
    assert asyncio.run(main())
    first, second = captured.records(2)
    ex1, ex2 = exchanges(fake, BY_NAME["openai"])
    assert (first.body, second.body) == (ex1.body, ex2.body)
    assert first.end_state is second.end_state is EndState.COMPLETE


def test_instrumenting_twice_records_once_and_mounts_are_wrapped(
    fake: FakeProvider, captured: Captured
) -> None:
    recorder = captured.recorder
    client = _openai(fake)
    assert recorder.instrument(client) is client
    assert recorder.instrument(client) is client
    transport = client._client._transport
    assert is_tap(transport)
    assert not is_tap(transport.inner)

    mounted = httpx2.Client(mounts={"http://127.0.0.1": httpx2.HTTPTransport()})
    recorder.instrument(mounted, provider="openai")
    assert all(is_tap(t) for t in mounted._mounts.values() if t is not None)
    try:
        _chat(client)
        assert mounted.get(f"{fake.url}/_fake/health").text.strip() == "ok"
    finally:
        client.close()
        mounted.close()
    first, second = captured.records(2)
    assert first.provider == "openai"
    assert second.url is not None
    assert second.url.endswith("/_fake/health")


def test_provider_is_inferred_from_the_client() -> None:
    import anthropic
    import openai
    from google import genai

    recorder = Recorder(redis_url="redis://127.0.0.1:1/0")
    # Any: four unrelated SDK client types, each read through its own private attributes.
    clients: dict[str, Any] = {
        "openai": openai.OpenAI(api_key="x"),
        "openrouter": openai.OpenAI(api_key="x", base_url="https://openrouter.ai/api/v1"),
        "anthropic": anthropic.Anthropic(api_key="x"),
        "gemini": genai.Client(api_key="x"),
    }
    try:
        for name, client in clients.items():
            recorder.instrument(client)
            http = client._api_client._httpx_client if name == "gemini" else client._client
            assert http._transport._rawtap_tap.provider == name
    finally:
        for client in clients.values():
            client.close()
        recorder.close()


def test_instrument_rejects_what_it_cannot_tap() -> None:
    recorder = Recorder(redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(TypeError, match="cannot instrument"):
        recorder.instrument(object())
    recorder.close()


def test_constructor_injection_with_public_arguments(
    fake: FakeProvider, captured: Captured
) -> None:
    import openai
    from google import genai

    recorder = captured.recorder
    client = openai.OpenAI(
        api_key=API_KEY,
        base_url=fake.openai_base_url,
        http_client=httpx2.Client(transport=recorder.transport(provider="openai")),
    )
    gclient = genai.Client(
        api_key=API_KEY,
        http_options=fake.gemini_http_options(
            client_args={"transport": recorder.transport(provider="gemini")},
            async_client_args={"transport": recorder.async_transport(provider="gemini")},
        ),
    )

    async def agen() -> Any:
        r = await gclient.aio.models.generate_content(model="fake-normal", contents="Hi.")
        await gclient.aio.aclose()
        return r.text

    try:
        assert _chat(client, "fake-429-then-200")
        assert gclient.models.generate_content(model="fake-normal", contents="Hi.").text
        assert asyncio.run(agen())
    finally:
        client.close()
        gclient.close()
    failed, ok, g_sync, g_async = captured.records(4)
    assert (failed.status, ok.status) == (429, 200)
    assert (failed.attempt, ok.attempt) == (0, 1)  # from x-stainless-retry-count
    assert [r.provider for r in (g_sync, g_async)] == ["gemini", "gemini"]


def test_disabled_recorder_captures_nothing(
    fake: FakeProvider, redis_url: str, stream_prefix: str, redis_client: Any
) -> None:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, enabled=False)
    client = recorder.instrument(_openai(fake))
    try:
        assert _chat(client)
    finally:
        client.close()
        recorder.close()
    assert Captured(recorder, redis_client, stream_prefix).records() == []


def test_oversized_stream_is_stored_truncated_and_flagged(
    fake: FakeProvider, redis_url: str, stream_prefix: str, redis_client: Any
) -> None:
    """CAPTURE.md pitfall 9: the Recorder's writer caps the record, with a marker."""
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, max_record_bytes=4096)
    client = recorder.instrument(_openai(fake))
    try:
        assert _chat(client, "fake-long-300", stream=True)
    finally:
        client.close()
    (record,) = Captured(recorder, redis_client, stream_prefix).records(1)
    recorder.close()
    (ex,) = exchanges(fake, BY_NAME["openai"])
    assert record.truncated
    assert ex.body.startswith(record.body)
    assert record.end_state is EndState.COMPLETE
    # The tap itself stops holding chunks past the cap (memory stays bounded during
    # the stream) but counts them: original_size is the body's true size, no error.
    assert record.original_size == len(ex.body)
    assert len(record.body) + len(record.request_body) == 4096
    assert record.error is None
