"""How each attempt ends, with the real SDKs against the fake provider.

Streams stay incremental through the tap; early close, cancellation,
abandonment, transport errors and read errors each give exactly one record
with the right end state (CAPTURE.md pitfalls 1, 4, 7 and 8).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from rawtap.producer import Recorder
from rawtap.shared import EndState
from rawtap.tools.fake_provider import FakeProvider
from tests.support.tap import API_KEY, BY_NAME, MESSAGES, Captured, exchanges

pytestmark = pytest.mark.redis

SLOW_MS = 80


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(slow_ms=SLOW_MS, reset_delay=0.02) as provider:
        yield provider


@pytest.fixture
def captured(redis_url: str, stream_prefix: str, redis_client: Any) -> Iterator[Captured]:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    yield Captured(recorder, redis_client, stream_prefix)
    recorder.close()


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeProvider) -> None:
    fake.clear()


def _openai(fake: FakeProvider, recorder: Recorder, **kw: Any) -> Any:
    import openai

    return recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, **kw))


def _first_stream_items(fake: FakeProvider, recorder: Recorder, sdk: str) -> tuple[Any, Any]:
    """(stream, first item) of a slow stream of ``sdk``, and the client to close."""
    if sdk == "openai":
        client = _openai(fake, recorder)
        stream = client.chat.completions.create(model="fake-slow", messages=MESSAGES, stream=True)
        return client, (stream, next(iter(stream)), stream.close)
    if sdk == "anthropic":
        import anthropic

        client = recorder.instrument(
            anthropic.Anthropic(api_key=API_KEY, base_url=fake.anthropic_base_url)
        )
        stream = client.messages.create(
            model="fake-slow", max_tokens=64, messages=MESSAGES, stream=True
        )
        return client, (stream, next(iter(stream)), stream.close)
    from google import genai

    client = recorder.instrument(
        genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    )
    gen = client.models.generate_content_stream(model="fake-slow", contents="Say something.")
    assert isinstance(gen, Generator)  # typed Iterator, but a generator: it has close()
    return client, (gen, next(gen), gen.close)


@pytest.mark.parametrize("sdk", ["openai", "anthropic", "gemini"])
def test_stream_is_incremental_and_early_close_is_one_closed_early_record(
    sdk: str, fake: FakeProvider, captured: Captured
) -> None:
    client, (_stream, first, close) = _first_stream_items(fake, captured.recorder, sdk)
    assert first is not None
    (ex,) = fake.find(timeout=None)  # look without waiting for the exchange to finish
    # The app holds its first item while the server is still pacing the rest out.
    assert not ex.done
    written_when_app_had_first = len(ex.chunks)
    close()
    client.close()
    ex.wait()
    (record,) = captured.records(1)
    assert record.status == 200
    assert len(record.chunks) <= written_when_app_had_first + 1
    assert len(record.chunks) < len(ex.chunks)
    assert ex.body.startswith(record.body)
    # google-genai streams are bare generators: gen.close() is the caller's close too.
    assert record.end_state is EndState.CLOSED_EARLY


def test_chunk_offsets_follow_the_servers_pace(fake: FakeProvider, captured: Captured) -> None:
    """CAPTURE.md pitfall 4: offsets are taken when the SDK pulls a chunk."""
    client = _openai(fake, captured.recorder)
    try:
        pieces = list(
            client.chat.completions.create(model="fake-slow+long-4", messages=MESSAGES, stream=True)
        )
    finally:
        client.close()
    assert pieces
    (record,) = captured.records(1)
    assert record.end_state is EndState.COMPLETE
    offsets = [c.offset_ns for c in record.chunks]
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert len(gaps) >= 4
    assert min(gaps) >= SLOW_MS * 0.7 * 1e6


def test_openai_sync_stream_stopping_at_done_is_complete(
    fake: FakeProvider, captured: Captured
) -> None:
    """CAPTURE.md pitfall 1: the SDK stops at ``data: [DONE]`` and closes before EOF."""
    client = _openai(fake, captured.recorder)
    try:
        with client.chat.completions.create(
            model="fake-gzip", messages=MESSAGES, stream=True
        ) as stream:
            list(stream)
    finally:
        client.close()
    (ex,) = exchanges(fake, BY_NAME["openai"])
    (record,) = captured.records(1)
    assert record.end_state is EndState.COMPLETE
    assert record.body == ex.body  # drained to the end: the gzip trailer is there too


@pytest.mark.parametrize("sdk", ["openai", "anthropic", "gemini"])
def test_cancelled_task_gives_one_cancelled_record(
    sdk: str, fake: FakeProvider, captured: Captured
) -> None:
    recorder = captured.recorder
    got_first = asyncio.Event

    async def main() -> None:
        first = got_first()
        if sdk == "openai":
            import openai

            client: Any = recorder.instrument(
                openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.openai_base_url)
            )

            async def consume() -> None:
                stream = await client.chat.completions.create(
                    model="fake-slow", messages=MESSAGES, stream=True
                )
                async for _ in stream:
                    first.set()

            closer = client.close
        elif sdk == "anthropic":
            import anthropic

            client = recorder.instrument(
                anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.anthropic_base_url)
            )

            async def consume() -> None:
                stream = await client.messages.create(
                    model="fake-slow", max_tokens=64, messages=MESSAGES, stream=True
                )
                async for _ in stream:
                    first.set()

            closer = client.close
        else:
            from google import genai

            client = recorder.instrument(
                genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
            )

            async def consume() -> None:
                stream = await client.aio.models.generate_content_stream(
                    model="fake-slow", contents="Say something."
                )
                async for _ in stream:
                    first.set()

            async def closer() -> None:
                await client.aio.aclose()
                client.close()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await closer()

    asyncio.run(main())
    (record,) = captured.records(1)
    assert record.end_state is EndState.CANCELLED
    assert record.status == 200
    assert record.body


def test_abandoned_streams_give_one_abandoned_record_each(
    fake: FakeProvider, captured: Captured
) -> None:
    client = _openai(fake, captured.recorder)
    try:
        # Never iterated, never closed.
        stream = client.chat.completions.create(model="fake-slow", messages=MESSAGES, stream=True)
        del stream
        gc.collect()
        # Iterated a little, then dropped (the SDK's generator is finalized by the GC).
        for _ in client.chat.completions.create(model="fake-slow", messages=MESSAGES, stream=True):
            break
        gc.collect()
    finally:
        client.close()
    records = captured.records(2)
    assert [r.end_state for r in records] == [EndState.ABANDONED, EndState.ABANDONED]
    assert records[1].body


@pytest.mark.parametrize("retries", [0, 2])
def test_reset_before_headers_is_a_transport_error_record(
    retries: int, fake: FakeProvider, captured: Captured
) -> None:
    import openai

    model = "fake-reset-before-headers" + ("-then-200" if retries else "")
    plain = openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=retries)
    tapped = _openai(fake, captured.recorder, max_retries=retries)
    try:
        outcomes = []
        for client in (plain, tapped):
            fake.reset_attempts()
            try:
                outcomes.append(client.chat.completions.create(model=model, messages=MESSAGES))
            except Exception as e:
                outcomes.append((type(e), str(e)))
    finally:
        plain.close()
        tapped.close()
    if retries:
        assert outcomes[0].choices[0].message.content == outcomes[1].choices[0].message.content
        failed, ok = captured.records(2)
        assert ok.end_state is EndState.COMPLETE
        assert (failed.call_id, failed.attempt, ok.attempt) == (ok.call_id, 0, 1)
    else:
        assert outcomes[0] == outcomes[1]
        (failed,) = captured.records(1)
    assert failed.end_state is EndState.TRANSPORT_ERROR
    assert failed.status is None
    assert failed.body == b""
    assert failed.error


def test_reset_mid_body_is_an_error_record_and_the_same_exception(
    fake: FakeProvider, captured: Captured
) -> None:
    import openai

    outcomes = []
    for tap in (False, True):
        client = openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=0)
        if tap:
            captured.recorder.instrument(client)
        got: list[Any] = []
        try:
            for chunk in client.chat.completions.create(
                model="fake-reset-mid-body+long-30", messages=MESSAGES, stream=True
            ):
                got.append(chunk.choices[0].delta.content if chunk.choices else None)  # noqa: PERF401 - the loop is cut mid-way on purpose
        except Exception as e:
            outcomes.append((got, type(e)))
        finally:
            client.close()
    assert outcomes[0] == outcomes[1]
    assert len(outcomes) == 2
    (record,) = captured.records(1)
    assert record.end_state is EndState.ERROR
    assert record.error
    ex = exchanges(fake, BY_NAME["openai"])[-1]
    assert record.body
    assert ex.body.startswith(record.body)


def test_genai_async_works_across_event_loops(fake: FakeProvider, captured: Captured) -> None:
    """CAPTURE.md pitfall 6: one connection pool per event loop, each one tapped."""
    from google import genai

    client = captured.recorder.instrument(
        genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    )

    async def once() -> str | None:
        r = await client.aio.models.generate_content(model="fake-normal", contents="Hi.")
        # google-genai cannot close a finished loop's pool later (its sockets would be
        # left to the GC): close this loop's own pool before the loop ends.
        # Any: genai types this as a plain (optional) AsyncClient, not its per-loop mixin.
        pool: Any = client._api_client._async_httpx_client
        await pool._client_for_running_loop().aclose()
        return r.text

    try:
        first = asyncio.run(once())
        second = asyncio.run(once())
    finally:
        asyncio.run(client.aio.aclose())
        client.close()
    assert first == second
    assert first
    records = captured.records(2)
    assert all(r.end_state is EndState.COMPLETE for r in records)


def test_genai_async_goes_through_httpx2_even_with_aiohttp_installed(
    fake: FakeProvider, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAPTURE.md pitfall 5: aiohttp decompresses in its parser; the tap needs httpx2.

    aiohttp is not a test dependency (it would change every other genai test); the
    SDK's own ``has_aiohttp`` flag stands in for it being importable.
    """
    from google import genai
    from google.genai import _api_client

    monkeypatch.setattr(_api_client, "has_aiohttp", True)
    plain = genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    tapped = captured.recorder.instrument(
        genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    )
    assert plain._api_client._use_aiohttp() is True  # without the tap: aiohttp
    assert tapped._api_client._use_aiohttp() is False
    plain.close()

    async def call() -> Any:
        r = await tapped.aio.models.generate_content(model="fake-gzip", contents="Hi.")
        await tapped.aio.aclose()
        return r.text

    try:
        assert asyncio.run(call())
    finally:
        tapped.close()
    (record,) = captured.records(1)
    ex = [e for e in fake.exchanges if e.provider == "gemini"][-1]
    assert record.body == ex.body
    assert record.header("content-encoding") == "gzip"
