"""Capture metadata at the edges (issue #11): end states, original_size, call ids.

* Every way a caller can stop reading a stream, sync and async, through
  openai, anthropic, google-genai and plain httpx2/httpx clients, gives one
  record with the end state the table in docs/capture.md promises
  (``closed_early``: the caller's code stopped it; ``abandoned``: only found by
  the garbage collector).
* A body past ``max_record_bytes`` is cut, and ``original_size`` is its exact
  size (counted by the tap even for bytes it did not keep); ``error`` stays
  empty for a complete exchange.
* Retries through clients derived from an instrumented one (``with_options``,
  ``copy``, ``with_raw_response``, ``with_streaming_response``,
  ``extra_headers``) share one ``call_id`` with attempts ``0..n``, and each
  attempt is recorded once.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rawtap.producer import Recorder
from rawtap.shared import EndState, Record
from rawtap.tools.fake_provider import FakeProvider
from tests.support.tap import API_KEY, MESSAGES, Captured

pytestmark = pytest.mark.redis

# Paced slowly enough (200 chunks, 40 ms apart) that no stream can end by itself
# before the caller stops it after its first item.
SLOW = "fake-slow-40+long-200"

CLOSED_EARLY = EndState.CLOSED_EARLY
ABANDONED = EndState.ABANDONED
CANCELLED = EndState.CANCELLED


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reset_delay=0.02) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeProvider) -> None:
    fake.clear()


@pytest.fixture
def captured(redis_url: str, stream_prefix: str, redis_client: Any) -> Iterator[Captured]:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    yield Captured(recorder, redis_client, stream_prefix)
    recorder.close()


# -- ways to stop reading -------------------------------------------------------------

Stop = Callable[[FakeProvider, Recorder], None]
AStop = Callable[[FakeProvider, Recorder], Awaitable[None]]


def _chat_body(model: str = SLOW) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "stream": True}


def _http(package: str, recorder: Recorder, fake: FakeProvider) -> Any:
    module = __import__(package)
    return recorder.instrument(module.Client(base_url=fake.openai_base_url))


def _ahttp(package: str, recorder: Recorder, fake: FakeProvider) -> Any:
    module = __import__(package)
    return recorder.instrument(module.AsyncClient(base_url=fake.openai_base_url))


def _http_break_in_with(package: str, method: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with (
            _http(package, recorder, fake) as client,
            client.stream("POST", "/chat/completions", json=_chat_body()) as resp,
        ):
            for _ in getattr(resp, method)():
                break

    return stop


def _http_break_then_close(package: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _http(package, recorder, fake) as client:
            resp = client.send(
                client.build_request("POST", "/chat/completions", json=_chat_body()), stream=True
            )
            for _ in resp.iter_lines():
                break
            resp.close()

    return stop


def _http_close_unread(package: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with (
            _http(package, recorder, fake) as client,
            client.stream("POST", "/chat/completions", json=_chat_body()),
        ):
            pass

    return stop


def _http_raise_in_loop(package: str, exc: type[BaseException]) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        def read(client: Any) -> None:
            with client.stream("POST", "/chat/completions", json=_chat_body()) as resp:
                for _ in resp.iter_lines():
                    raise exc

        with _http(package, recorder, fake) as client, pytest.raises(exc):
            read(client)

    return stop


def _http_break_never_close(package: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _http(package, recorder, fake) as client:
            resp = client.send(
                client.build_request("POST", "/chat/completions", json=_chat_body()), stream=True
            )
            for _ in resp.iter_lines():
                break
            del resp
            gc.collect()

    return stop


def _http_dropped_unread(package: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _http(package, recorder, fake) as client:
            resp = client.send(
                client.build_request("POST", "/chat/completions", json=_chat_body()), stream=True
            )
            del resp
            gc.collect()

    return stop


def _http_dropped_in_cycle(package: str) -> Stop:
    """A partly read response and its iterator, reachable only from a reference cycle."""

    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _http(package, recorder, fake) as client:
            resp = client.send(
                client.build_request("POST", "/chat/completions", json=_chat_body()), stream=True
            )
            lines = resp.iter_lines()
            next(lines)
            holder: dict[str, Any] = {"resp": resp, "lines": lines}
            holder["self"] = holder
            del resp, lines, holder
            gc.collect()

    return stop


def _openai(fake: FakeProvider, recorder: Recorder) -> Any:
    import openai

    return recorder.instrument(
        openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=0)
    )


def _anthropic(fake: FakeProvider, recorder: Recorder) -> Any:
    import anthropic

    return recorder.instrument(
        anthropic.Anthropic(api_key=API_KEY, base_url=fake.anthropic_base_url, max_retries=0)
    )


def _sdk_create(sdk: str, client: Any, **kw: Any) -> Any:
    if sdk == "openai":
        return client.chat.completions.create(model=SLOW, messages=MESSAGES, stream=True, **kw)
    return client.messages.create(model=SLOW, max_tokens=64, messages=MESSAGES, stream=True, **kw)


def _sdk_client(sdk: str, fake: FakeProvider, recorder: Recorder) -> Any:
    return _openai(fake, recorder) if sdk == "openai" else _anthropic(fake, recorder)


def _sdk_break_then_close(sdk: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _sdk_client(sdk, fake, recorder) as client:
            stream = _sdk_create(sdk, client)
            for _ in stream:
                break
            stream.close()

    return stop


def _sdk_break_in_with(sdk: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _sdk_client(sdk, fake, recorder) as client, _sdk_create(sdk, client) as stream:
            for _ in stream:
                break

    return stop


def _sdk_raise_in_with(sdk: str, exc: type[BaseException]) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        def read(client: Any) -> None:
            with _sdk_create(sdk, client) as stream:
                for _ in stream:
                    raise exc

        with _sdk_client(sdk, fake, recorder) as client, pytest.raises(exc):
            read(client)

    return stop


def _sdk_break_never_close(sdk: str) -> Stop:
    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _sdk_client(sdk, fake, recorder) as client:
            for _ in _sdk_create(sdk, client):
                break
            gc.collect()  # the SDK's Stream and its generator form a cycle

    return stop


def _sdk_streaming_response(sdk: str, method: str) -> Stop:
    """``with client.….with_streaming_response.create(...) as resp: for … in resp.iter_…()``."""

    def stop(fake: FakeProvider, recorder: Recorder) -> None:
        with _sdk_client(sdk, fake, recorder) as client:
            resource = client.chat.completions if sdk == "openai" else client.messages
            kw: dict[str, Any] = {"model": SLOW, "messages": MESSAGES, "stream": True}
            if sdk == "anthropic":
                kw["max_tokens"] = 64
            with resource.with_streaming_response.create(**kw) as resp:
                for _ in getattr(resp, method)():
                    break

    return stop


def _genai(fake: FakeProvider, recorder: Recorder) -> Any:
    from google import genai

    return recorder.instrument(
        genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    )


def _genai_stream(client: Any) -> Any:
    return client.models.generate_content_stream(model=SLOW, contents="Say something.")


def _genai_close(fake: FakeProvider, recorder: Recorder) -> None:
    client = _genai(fake, recorder)
    try:
        gen = _genai_stream(client)
        next(gen)
        gen.close()
    finally:
        client.close()


def _genai_break(fake: FakeProvider, recorder: Recorder) -> None:
    client = _genai(fake, recorder)
    try:
        for _ in _genai_stream(client):
            break
        gc.collect()
    finally:
        client.close()


def _genai_raise(fake: FakeProvider, recorder: Recorder) -> None:
    def read(client: Any) -> None:
        for _ in _genai_stream(client):
            raise ValueError("stop")

    client = _genai(fake, recorder)
    try:
        with pytest.raises(ValueError, match="stop"):
            read(client)
    finally:
        client.close()


def _genai_dropped_in_cycle(fake: FakeProvider, recorder: Recorder) -> None:
    client = _genai(fake, recorder)
    try:
        gen = _genai_stream(client)
        next(gen)
        holder: dict[str, Any] = {"gen": gen}
        holder["self"] = holder
        del gen, holder
        gc.collect()
    finally:
        client.close()


@dataclass(frozen=True)
class Row:
    """One row of the end-state table in docs/capture.md."""

    id: str
    stop: Stop
    expected: EndState


def _sync_rows() -> list[Row]:
    rows: list[Row] = []
    for pkg in ("httpx2", "httpx"):
        rows.extend(
            Row(f"{pkg}-break-{method}-in-with", _http_break_in_with(pkg, method), CLOSED_EARLY)
            for method in ("iter_lines", "iter_bytes", "iter_raw", "iter_text")
        )
        rows += [
            Row(f"{pkg}-break-then-close", _http_break_then_close(pkg), CLOSED_EARLY),
            Row(f"{pkg}-with-exit-unread", _http_close_unread(pkg), CLOSED_EARLY),
            Row(f"{pkg}-exception-in-loop", _http_raise_in_loop(pkg, ValueError), CLOSED_EARLY),
            Row(f"{pkg}-dropped-unread", _http_dropped_unread(pkg), ABANDONED),
            Row(f"{pkg}-dropped-in-cycle", _http_dropped_in_cycle(pkg), ABANDONED),
        ]
    # httpx2's iter_raw closes the response in its ``finally`` as soon as the loop drops the
    # iterator; legacy httpx leaves it open until someone closes it (or the GC finds it).
    rows += [
        Row("httpx2-break-never-close", _http_break_never_close("httpx2"), CLOSED_EARLY),
        Row("httpx-break-never-close", _http_break_never_close("httpx"), ABANDONED),
        Row("httpx2-keyboardinterrupt-in-loop",
            _http_raise_in_loop("httpx2", KeyboardInterrupt), CLOSED_EARLY),
        Row("httpx-keyboardinterrupt-in-loop",
            _http_raise_in_loop("httpx", KeyboardInterrupt), CANCELLED),
    ]  # fmt: skip
    for sdk in ("openai", "anthropic"):
        rows += [
            Row(f"{sdk}-break-then-close", _sdk_break_then_close(sdk), CLOSED_EARLY),
            Row(f"{sdk}-break-in-with", _sdk_break_in_with(sdk), CLOSED_EARLY),
            Row(f"{sdk}-exception-in-with", _sdk_raise_in_with(sdk, ValueError), CLOSED_EARLY),
            Row(f"{sdk}-keyboardinterrupt-in-with",
                _sdk_raise_in_with(sdk, KeyboardInterrupt), CANCELLED),
            # openai's Stream and its generator form a reference cycle: dropped unclosed,
            # only the GC finds it. anthropic's generator holds a copy of the Stream, so
            # dropping it closes the response at once, as breaking out of iter_lines() does.
            Row(f"{sdk}-break-never-close", _sdk_break_never_close(sdk),
                ABANDONED if sdk == "openai" else CLOSED_EARLY),
        ]  # fmt: skip
        for method in ("iter_lines", "iter_bytes", "iter_text"):
            rows.append(Row(f"{sdk}-streaming-response-break-{method}",
                            _sdk_streaming_response(sdk, method), CLOSED_EARLY))  # fmt: skip
    rows += [
        Row("genai-generator-close", _genai_close, CLOSED_EARLY),
        Row("genai-break", _genai_break, CLOSED_EARLY),
        Row("genai-exception-in-loop", _genai_raise, CLOSED_EARLY),
        Row("genai-dropped-in-cycle", _genai_dropped_in_cycle, ABANDONED),
    ]
    return rows


SYNC_ROWS = _sync_rows()


def _check_one_early_record(captured: Captured, fake: FakeProvider, expected: EndState) -> None:
    (record,) = captured.records(1)
    assert record.end_state is expected, record.end_state
    assert record.status == 200
    assert record.error is None
    fake.wait_idle()
    (ex,) = fake.exchanges
    assert ex.body.startswith(record.body)
    assert len(record.body) < len(ex.body)  # stopped before the end


@pytest.mark.parametrize("row", SYNC_ROWS, ids=[r.id for r in SYNC_ROWS])
def test_sync_ways_to_stop_reading(row: Row, fake: FakeProvider, captured: Captured) -> None:
    row.stop(fake, captured.recorder)
    _check_one_early_record(captured, fake, row.expected)


# -- async ------------------------------------------------------------------------------


def _ahttp_break_in_with(package: str, method: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with (
            _ahttp(package, recorder, fake) as client,
            client.stream("POST", "/chat/completions", json=_chat_body()) as resp,
        ):
            async for _ in getattr(resp, method)():
                break

    return stop


def _ahttp_break_then_aclose(package: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _ahttp(package, recorder, fake) as client:
            req = client.build_request("POST", "/chat/completions", json=_chat_body())
            resp = await client.send(req, stream=True)
            async for _ in resp.aiter_lines():
                break
            await resp.aclose()

    return stop


def _ahttp_raise_in_loop(package: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async def read(client: Any) -> None:
            async with client.stream("POST", "/chat/completions", json=_chat_body()) as r:
                async for _ in r.aiter_lines():
                    raise ValueError("stop")

        async with _ahttp(package, recorder, fake) as client:
            with pytest.raises(ValueError, match="stop"):
                await read(client)

    return stop


def _ahttp_break_never_aclose(package: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _ahttp(package, recorder, fake) as client:
            req = client.build_request("POST", "/chat/completions", json=_chat_body())
            resp = await client.send(req, stream=True)
            async for _ in resp.aiter_lines():
                break
            del resp

    return stop


def _ahttp_dropped_unread(package: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _ahttp(package, recorder, fake) as client:
            req = client.build_request("POST", "/chat/completions", json=_chat_body())
            resp = await client.send(req, stream=True)
            del resp
            gc.collect()

    return stop


def _cancel_while(body: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> Awaitable[None]:
    """Run ``body`` as a task and cancel it once it has set the event it is given."""

    async def run() -> None:
        first = asyncio.Event()
        task: asyncio.Task[None] = asyncio.create_task(body(first))
        await asyncio.wait_for(first.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    return run()


def _ahttp_cancel(package: str, *, in_body: bool) -> AStop:
    """Cancelled while waiting for the next chunk, or while the loop body awaits."""

    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _ahttp(package, recorder, fake) as client:

            async def consume(first: asyncio.Event) -> None:
                async with client.stream("POST", "/chat/completions", json=_chat_body()) as r:
                    async for _ in r.aiter_lines():
                        first.set()
                        if in_body:
                            await asyncio.Event().wait()  # never set: only cancel ends it

            await _cancel_while(consume)

    return stop


def _aopenai(fake: FakeProvider, recorder: Recorder) -> Any:
    import openai

    return recorder.instrument(
        openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=0)
    )


def _aanthropic(fake: FakeProvider, recorder: Recorder) -> Any:
    import anthropic

    return recorder.instrument(
        anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.anthropic_base_url, max_retries=0)
    )


def _asdk_client(sdk: str, fake: FakeProvider, recorder: Recorder) -> Any:
    return _aopenai(fake, recorder) if sdk == "openai" else _aanthropic(fake, recorder)


def _asdk_break_then_close(sdk: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _asdk_client(sdk, fake, recorder) as client:
            stream = await _sdk_create(sdk, client)
            async for _ in stream:
                break
            await stream.close()

    return stop


def _asdk_break_in_with(sdk: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _asdk_client(sdk, fake, recorder) as client, await _sdk_create(sdk, client) as s:
            async for _ in s:
                break

    return stop


def _asdk_break_never_close(sdk: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _asdk_client(sdk, fake, recorder) as client:
            async for _ in await _sdk_create(sdk, client):
                break
            gc.collect()

    return stop


def _asdk_cancel(sdk: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _asdk_client(sdk, fake, recorder) as client:

            async def consume(first: asyncio.Event) -> None:
                async for _ in await _sdk_create(sdk, client):
                    first.set()

            await _cancel_while(consume)

    return stop


def _asdk_streaming_response(sdk: str) -> AStop:
    async def stop(fake: FakeProvider, recorder: Recorder) -> None:
        async with _asdk_client(sdk, fake, recorder) as client:
            resource = client.chat.completions if sdk == "openai" else client.messages
            kw: dict[str, Any] = {"model": SLOW, "messages": MESSAGES, "stream": True}
            if sdk == "anthropic":
                kw["max_tokens"] = 64
            async with resource.with_streaming_response.create(**kw) as resp:
                async for _ in resp.iter_lines():
                    break

    return stop


async def _agenai_break_then_aclose(fake: FakeProvider, recorder: Recorder) -> None:
    client = _genai(fake, recorder)
    try:
        gen = await client.aio.models.generate_content_stream(model=SLOW, contents="Hi.")
        async for _ in gen:
            break
        await gen.aclose()
    finally:
        await client.aio.aclose()
        client.close()


async def _agenai_break(fake: FakeProvider, recorder: Recorder) -> None:
    client = _genai(fake, recorder)
    try:
        async for _ in await client.aio.models.generate_content_stream(model=SLOW, contents="Hi."):
            break
    finally:
        await client.aio.aclose()
        client.close()


async def _agenai_cancel(fake: FakeProvider, recorder: Recorder) -> None:
    client = _genai(fake, recorder)
    try:

        async def consume(first: asyncio.Event) -> None:
            gen = await client.aio.models.generate_content_stream(model=SLOW, contents="Hi.")
            async for _ in gen:
                first.set()

        await _cancel_while(consume)
    finally:
        await client.aio.aclose()
        client.close()


@dataclass(frozen=True)
class ARow:
    """One async row of the end-state table."""

    id: str
    stop: AStop
    expected: EndState


def _async_rows() -> list[ARow]:
    rows: list[ARow] = []
    for pkg in ("httpx2", "httpx"):
        rows.extend(
            ARow(f"{pkg}-break-{method}-in-async-with", _ahttp_break_in_with(pkg, method),
                 CLOSED_EARLY)
            for method in ("aiter_lines", "aiter_bytes", "aiter_raw", "aiter_text")
        )  # fmt: skip
        rows += [
            ARow(f"{pkg}-break-then-aclose", _ahttp_break_then_aclose(pkg), CLOSED_EARLY),
            ARow(f"{pkg}-exception-in-loop", _ahttp_raise_in_loop(pkg), CLOSED_EARLY),
            ARow(f"{pkg}-dropped-unread", _ahttp_dropped_unread(pkg), ABANDONED),
            ARow(f"{pkg}-break-never-aclose", _ahttp_break_never_aclose(pkg), ABANDONED),
            ARow(f"{pkg}-cancel-while-reading", _ahttp_cancel(pkg, in_body=False), CANCELLED),
            ARow(f"{pkg}-cancel-in-loop-body", _ahttp_cancel(pkg, in_body=True), CANCELLED),
        ]
    for sdk in ("openai", "anthropic"):
        rows += [
            ARow(f"{sdk}-break-then-close", _asdk_break_then_close(sdk), CLOSED_EARLY),
            ARow(f"{sdk}-break-in-async-with", _asdk_break_in_with(sdk), CLOSED_EARLY),
            # A break out of ``async for`` closes nothing: asyncio closes the dropped
            # async generator later from a task of its own (finalizer hook, or
            # shutdown_asyncgens as the loop ends), or the GC finds it.
            ARow(f"{sdk}-break-never-close", _asdk_break_never_close(sdk), ABANDONED),
            ARow(f"{sdk}-cancel-while-reading", _asdk_cancel(sdk), CANCELLED),
            ARow(f"{sdk}-streaming-response-break", _asdk_streaming_response(sdk), CLOSED_EARLY),
        ]
    rows += [
        # genai's async generator nests async generators it does not close itself: after
        # the caller's aclose() asyncio's finalizer hook closes the inner ones (known limit).
        ARow("genai-break-then-aclose", _agenai_break_then_aclose, ABANDONED),
        ARow("genai-break", _agenai_break, ABANDONED),
        ARow("genai-cancel-while-reading", _agenai_cancel, CANCELLED),
    ]
    return rows


ASYNC_ROWS = _async_rows()


@pytest.mark.parametrize("row", ASYNC_ROWS, ids=[r.id for r in ASYNC_ROWS])
def test_async_ways_to_stop_reading(row: ARow, fake: FakeProvider, captured: Captured) -> None:
    recorder = captured.recorder

    async def main() -> None:
        await row.stop(fake, recorder)

    asyncio.run(main())
    gc.collect()  # rows that leave a stream to the GC: collect it before counting
    _check_one_early_record(captured, fake, row.expected)


# -- original_size -----------------------------------------------------------------------

LIMIT = 1024 * 1024
"""max_record_bytes of the truncation tests: a fifth of the 5 MB body."""

BIG = "fake-long-883000"
"""A JSON reply of a little over 5 MB (one Content-Length body, read in network pieces)."""


@pytest.fixture
def small_records(redis_url: str, stream_prefix: str, redis_client: Any) -> Iterator[Captured]:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, max_record_bytes=LIMIT)
    yield Captured(recorder, redis_client, stream_prefix)
    recorder.close()


def _user_messages() -> Any:
    return MESSAGES


def _assert_cut_exactly(record: Record, wire_body: bytes) -> None:
    assert record.end_state is EndState.COMPLETE
    assert record.error is None
    assert record.truncated
    assert record.original_size == len(wire_body)
    assert len(record.body) + len(record.request_body) == LIMIT
    assert wire_body.startswith(record.body)
    assert sum(c.size for c in record.chunks) == len(record.body)


def test_original_size_of_a_5mb_response_is_exact_every_time(
    fake: FakeProvider, small_records: Captured
) -> None:
    import openai

    client = small_records.recorder.instrument(
        openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=0)
    )
    texts = []
    try:
        for _ in range(3):
            r = client.chat.completions.create(model=BIG, messages=_user_messages())
            texts.append(r.choices[0].message.content)
    finally:
        client.close()
    fake.wait_idle()
    bodies = [ex.body for ex in fake.exchanges]
    assert len(bodies) == 3
    assert all(len(b) > 5_000_000 for b in bodies)
    assert texts[0] == texts[1] == texts[2]  # the application got all of it
    records = small_records.records(3)
    for record, body in zip(records, bodies, strict=True):
        _assert_cut_exactly(record, body)
    # Deterministic: the same response size gives the same cut, wherever the tap stopped
    # holding bytes (the replies differ only in their ids, not in length).
    assert len({len(b) for b in bodies}) == 1
    assert len({(r.original_size, len(r.body)) for r in records}) == 1


def test_original_size_of_a_truncated_stream(fake: FakeProvider, small_records: Captured) -> None:
    import httpx2

    client = small_records.recorder.instrument(httpx2.Client(base_url=fake.openai_base_url))
    with (
        client,
        client.stream("POST", "/chat/completions", json=_chat_body("fake-long-12000")) as r,
    ):
        got = b"".join(r.iter_raw())
    fake.wait_idle()
    (ex,) = fake.exchanges
    assert got == ex.body
    assert len(ex.body) > 2 * LIMIT
    (record,) = small_records.records(1)
    _assert_cut_exactly(record, ex.body)
    assert record.stream


def test_a_caller_given_original_size_marks_a_body_it_cut(small_records: Captured) -> None:
    """``Recorder.record(..., original_size=n)``: the body was cut before rawtap saw it."""
    recorder = small_records.recorder
    recorder.record("openai", b"x" * LIMIT, original_size=LIMIT + 10)  # exactly the limit held
    recorder.record("openai", b"y" * 100, original_size=1000)  # far below it
    recorder.record("openai", b"z" * 100, original_size=10)  # nonsense: smaller than the body
    cut_at_limit, cut_small, bad = small_records.records(3)
    assert (cut_at_limit.truncated, cut_at_limit.original_size) == (True, LIMIT + 10)
    assert cut_at_limit.body == b"x" * LIMIT
    assert (cut_small.truncated, cut_small.original_size, cut_small.error) == (True, 1000, None)
    assert (bad.truncated, bad.original_size, bad.body) == (False, None, b"z" * 100)
    assert bad.error == "original_size 10 is not a size of at least 100; ignored"


# -- retries through derived clients -----------------------------------------------------

SCENARIOS = {"429-then-200": 2, "500x2-then-200": 3}
"""Scenario -> attempts of one logical call."""


def _base(sdk: str, fake: FakeProvider, recorder: Recorder, retries: int, aio: bool) -> Any:
    import anthropic
    import openai

    if sdk == "openai":
        cls: Any = openai.AsyncOpenAI if aio else openai.OpenAI
        return recorder.instrument(
            cls(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=retries)
        )
    cls = anthropic.AsyncAnthropic if aio else anthropic.Anthropic
    return recorder.instrument(
        cls(api_key=API_KEY, base_url=fake.anthropic_base_url, max_retries=retries)
    )


def _resource(sdk: str, client: Any) -> Any:
    return client.chat.completions if sdk == "openai" else client.messages


def _kwargs(sdk: str, model: str) -> dict[str, Any]:
    if sdk == "openai":
        return {"model": model, "messages": MESSAGES}
    return {"model": model, "max_tokens": 64, "messages": MESSAGES}


# derivation -> (retry budget of the base client, how one call is made through it)
Derive = Callable[[Any, str, dict[str, Any]], Any]


def _via_with_options(client: Any, sdk: str, kw: dict[str, Any]) -> Any:
    return _resource(sdk, client.with_options(max_retries=2)).create(**kw)


def _via_copy(client: Any, sdk: str, kw: dict[str, Any]) -> Any:
    return _resource(sdk, client.copy(max_retries=2)).create(**kw)


def _via_nested(client: Any, sdk: str, kw: dict[str, Any]) -> Any:
    derived = client.with_options(timeout=30).copy(max_retries=2)
    return _resource(sdk, derived).create(**kw)


def _via_raw(client: Any, sdk: str, kw: dict[str, Any]) -> Any:
    return _resource(sdk, client).with_raw_response.create(**kw)


def _via_streaming_response(client: Any, sdk: str, kw: dict[str, Any]) -> Any:
    return _resource(sdk, client).with_streaming_response.create(**kw)


def _via_extra_headers(client: Any, sdk: str, kw: dict[str, Any]) -> Any:
    return _resource(sdk, client).create(**kw, extra_headers={"x-app": "edge"})


DERIVATIONS: dict[str, tuple[int, Derive]] = {
    "with_options": (0, _via_with_options),
    "copy": (0, _via_copy),
    "with_options-then-copy": (0, _via_nested),
    "with_raw_response": (2, _via_raw),
    "with_streaming_response": (2, _via_streaming_response),
    "extra_headers": (2, _via_extra_headers),
}


def _check_one_call(captured: Captured, fake: FakeProvider, attempts: int) -> None:
    records = captured.records(attempts)
    fake.wait_idle()
    assert len(fake.exchanges) == attempts  # each attempt recorded once, none twice
    assert [r.attempt for r in records] == list(range(attempts))
    assert len({r.call_id for r in records}) == 1
    assert records[0].call_id is not None
    assert [r.status for r in records][-1] == 200
    assert all(r.status is not None and r.status >= 400 for r in records[:-1])


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("derivation", DERIVATIONS)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_retries_through_derived_clients_share_one_call_id(
    sdk: str, derivation: str, scenario: str, fake: FakeProvider, captured: Captured
) -> None:
    retries, derive = DERIVATIONS[derivation]
    client = _base(sdk, fake, captured.recorder, retries, aio=False)
    try:
        result = derive(client, sdk, _kwargs(sdk, "fake-" + scenario))
        if derivation == "with_streaming_response":
            with result as resp:
                resp.read()
    finally:
        client.close()
    _check_one_call(captured, fake, SCENARIOS[scenario])


@pytest.mark.parametrize("derivation", ["with_options", "copy"])
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_async_retries_through_derived_clients_share_one_call_id(
    sdk: str, derivation: str, fake: FakeProvider, captured: Captured
) -> None:
    async def main() -> None:
        client = _base(sdk, fake, captured.recorder, 0, aio=True)
        try:
            derived = (
                client.with_options(max_retries=2)
                if derivation == "with_options"
                else client.copy(max_retries=2)
            )
            await _resource(sdk, derived).create(**_kwargs(sdk, "fake-500x2-then-200"))
        finally:
            await client.close()

    asyncio.run(main())
    _check_one_call(captured, fake, 3)


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_derived_client_with_its_own_http_client_is_recorded(
    sdk: str, fake: FakeProvider, captured: Captured
) -> None:
    import httpx2

    client = _base(sdk, fake, captured.recorder, 0, aio=False)
    own = httpx2.Client()
    try:
        derived = client.copy(http_client=own, max_retries=2)
        _resource(sdk, derived).create(**_kwargs(sdk, "fake-429-then-200"))
    finally:
        own.close()
        client.close()
    _check_one_call(captured, fake, 2)


def test_genai_per_request_retry_options_share_one_call_id(
    fake: FakeProvider, captured: Captured
) -> None:
    """google-genai has no copy(); per-request ``http_options`` is its way to derive."""
    from google.genai import types

    client = _genai(fake, captured.recorder)
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.01)
    try:
        client.models.generate_content(
            model="fake-500x2-then-200",
            contents="Hi.",
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(retry_options=retry, headers={"x-app": "edge"})
            ),
        )
    finally:
        client.close()
    _check_one_call(captured, fake, 3)
