"""SDK -> tap -> Recorder -> Redis -> Worker -> SQLite, one provider at a time.

The bytes in the sink are the bytes the fake provider wrote, and no byte of
the SQLite file (WAL included) or of the Redis stream holds the API key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rawtap.consumer import SqliteSink, Worker
from rawtap.producer import Recorder
from rawtap.shared import EndState, Record
from rawtap.tools.fake_provider import FakeProvider
from tests.support.pipeline import drain, worker_thread
from tests.support.tap import API_KEY, MESSAGES, SDK_VERSIONS, raw_stream_bytes

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def _openai(fake: FakeProvider, recorder: Recorder, base: str, provider: str | None) -> None:
    import openai

    client = recorder.instrument(
        openai.OpenAI(api_key=API_KEY, base_url=getattr(fake, base)), provider=provider
    )
    with recorder.session("e2e", metadata={"sdk": f"openai {SDK_VERSIONS['openai']}"}):
        client.chat.completions.create(model="fake-normal", messages=MESSAGES)
        list(client.chat.completions.create(model="fake-gzip", messages=MESSAGES, stream=True))
    client.close()


def _anthropic(fake: FakeProvider, recorder: Recorder) -> None:
    import anthropic

    async def main() -> None:
        client = recorder.instrument(
            anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.anthropic_base_url)
        )
        async with recorder.session("e2e"):
            await client.messages.create(model="fake-normal", max_tokens=50, messages=MESSAGES)
            stream = await client.messages.create(
                model="fake-normal", max_tokens=50, messages=MESSAGES, stream=True
            )
            async for _ in stream:
                pass
        await client.close()

    asyncio.run(main())


def _gemini(fake: FakeProvider, recorder: Recorder) -> None:
    from google import genai

    client = recorder.instrument(
        genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options())
    )
    with recorder.session("e2e"):
        client.models.generate_content(model="fake-normal", contents="Hi.")

        async def stream() -> None:
            async for _ in await client.aio.models.generate_content_stream(
                model="fake-normal", contents="Hi."
            ):
                pass
            await client.aio.aclose()

        asyncio.run(stream())
    client.close()


CALLS: dict[str, Any] = {
    "openai": lambda f, r: _openai(f, r, "openai_base_url", None),
    "openrouter": lambda f, r: _openai(f, r, "openrouter_base_url", "openrouter"),
    "anthropic": _anthropic,
    "gemini": _gemini,
}


@pytest.mark.parametrize(
    "provider",
    list(CALLS),
    ids=[
        f"{p}-{'google-genai' if p == 'gemini' else 'openai' if p != 'anthropic' else p}"
        f"{SDK_VERSIONS['google-genai' if p == 'gemini' else 'openai' if p != 'anthropic' else p]}"
        for p in CALLS
    ],
)
def test_sdk_to_sqlite_keeps_the_providers_bytes(
    provider: str,
    fake: FakeProvider,
    redis_url: str,
    stream_prefix: str,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    fake.clear()
    db = tmp_path / "rawtap.db"
    sink = SqliteSink(db)
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, service="e2e")
    worker = Worker(
        redis_url=redis_url,
        stream_prefix=stream_prefix,
        sink_url=f"sqlite:///{db}",
        consumer="w1",
        block_ms=50,
        sink=sink,
    )
    try:
        with worker_thread(worker):
            CALLS[provider](fake, recorder)
            assert recorder.flush(10)
            drain(sink, recorder.producer_id, 2)
        stored: list[Record] = sorted(
            (rec for rec, _ in sink.iter_stored(recorder.producer_id)), key=lambda r: r.seq
        )
        fake.wait_idle()
        written = fake.exchanges
        assert len(stored) == len(written) == 2
        for record, ex in zip(stored, written, strict=True):
            assert record.provider == provider
            assert record.session_id == "e2e"
            assert record.end_state is EndState.COMPLETE
            assert record.status == ex.status == 200
            assert record.body == ex.body
            assert record.response_headers == ex.headers
            assert record.request_body == ex.request.body
        assert stored[1].stream
        stream_bytes = raw_stream_bytes(redis_client, stream_prefix)
    finally:
        recorder.close()
        sink.close()
    key = API_KEY.encode()
    assert key not in stream_bytes
    for path in tmp_path.iterdir():  # rawtap.db, -wal, -shm
        assert key not in path.read_bytes(), path.name
