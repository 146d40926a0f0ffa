"""Real SDKs → tap → Redis → worker → each store → `show --raw` → replay → the same SDK results.

The SDKs call the fake provider through ``recorder.instrument(client)``; every
stored body must be a body the provider wrote, ``rawtap show --raw`` must print
it unchanged, and the SDKs pointed at ``ReplayServer`` over the stored records
must parse exactly what they parsed live.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from rawtap.consumer import Worker, open_sink
from rawtap.producer import Recorder
from rawtap.shared import Record
from rawtap.tools import ReplayServer
from rawtap.tools.fake_provider import FakeProvider
from tests.support.cli import run_cli
from tests.support.pipeline import drain, worker_thread

MSGS: Any = [{"role": "user", "content": "hi"}]


def _sdk_results(url: str, recorder: Recorder | None = None) -> dict[str, Any]:
    """JSON and stream calls through each SDK aimed at ``url``; tapped if a recorder is given."""
    from anthropic import Anthropic
    from google import genai
    from google.genai import types
    from openai import OpenAI

    def tap(client: Any) -> Any:
        return recorder.instrument(client) if recorder is not None else client

    oa = tap(OpenAI(api_key="sk-e2e-secret", base_url=url + "/v1", max_retries=0))
    an = tap(Anthropic(api_key="sk-ant-e2e-secret", base_url=url, max_retries=0))
    gm = tap(
        genai.Client(
            api_key="gm-e2e-secret",
            http_options=types.HttpOptions(base_url=url, api_version="v1beta"),
        )
    )
    try:
        chat = oa.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        with oa.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        ) as chunks:
            chat_stream = [c.model_dump() for c in chunks]
        message = an.messages.create(model="claude-sonnet-5-5", max_tokens=50, messages=MSGS)
        with an.messages.stream(model="claude-sonnet-5-5", max_tokens=50, messages=MSGS) as s:
            final = s.get_final_message()
        # genai copies the HTTP headers into its objects; those are the transport's, not
        # the provider's answer (a replay server has its own Date and Server headers).
        skip = {"sdk_http_response"}
        gem = gm.models.generate_content(model="gemini-2.5-flash", contents="hi")
        gem_stream = [
            c.model_dump(exclude=skip)
            for c in gm.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
        ]
    finally:
        oa.close()
        an.close()
        gm.close()
    return {
        "chat": chat.model_dump(),
        "chat_stream": chat_stream,
        "message": message.model_dump(),
        "message_stream": final.model_dump(),
        "gemini": gem.model_dump(exclude=skip),
        "gemini_stream": gem_stream,
    }


def test_real_sdk_calls_are_stored_byte_exact_and_replay_identically(
    redis_url: str,
    stream_prefix: str,
    sink_url: str,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    with open_sink(sink_url) as store:
        worker = Worker(
            redis_url=redis_url,
            stream_prefix=stream_prefix,
            sink_url=sink_url,
            consumer="sdk-e2e",
            block_ms=50,
            sink=store,
        )
        with worker_thread(worker), FakeProvider() as fake:
            live = _sdk_results(fake.url, recorder)
            recorder.flush()
            written = Counter(ex.body for ex in fake.exchanges)
            assert sum(written.values()) == 6
            drain(store, recorder.producer_id, 6)
        recorder.close()
        stored: list[Record] = [r for r, _ in store.iter_stored(recorder.producer_id)]

    assert Counter(r.body for r in stored) == written  # every stored body is what was written
    assert {r.provider for r in stored} == {"openai", "anthropic", "gemini"}
    for record in stored:
        raw = run_cli(capsysbinary, "show", record.record_id, "--raw", "--sink", sink_url)
        assert raw.code == 0, raw.err
        assert raw.out == record.body
        for secret in (b"sk-e2e-secret", b"sk-ant-e2e-secret", b"gm-e2e-secret"):
            assert secret not in repr(record.model_dump()).encode()

    with ReplayServer(stored, match="request") as replay:
        replayed = _sdk_results(replay.url)
        assert replay.misses == []
    assert replayed == live
    assert live["chat"]["choices"][0]["message"]["content"]
