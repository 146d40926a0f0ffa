"""Record → Redis → worker → each store → `show --raw` byte-exact → replay → the SDK parses the same.

The provider bytes here are exact wire payloads (tests.support.synthetic, one
gzip-encoded), recorded with ``Recorder.record``; the SDK's reading of the replay
from the store is compared with its reading of the same bytes served straight
from memory.
"""

from __future__ import annotations

import gzip
import random
from typing import Any

import pytest

from rawtap.consumer import Worker, open_sink
from rawtap.producer import Recorder
from rawtap.shared import Record
from rawtap.tools import ReplayServer
from tests.support.cli import run_cli
from tests.support.pipeline import drain, worker_thread
from tests.support.records import make_record
from tests.support.synthetic import anthropic, gemini, openai


def _sdk_results(url: str) -> dict[str, Any]:
    from anthropic import Anthropic
    from google import genai
    from google.genai import types
    from openai import OpenAI

    oa = OpenAI(api_key="sk-test", base_url=url + "/v1", max_retries=0)
    an = Anthropic(api_key="sk-ant", base_url=url, max_retries=0)
    gm = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=url, api_version="v1beta")
    )
    msgs: list[Any] = [{"role": "user", "content": "hi"}]
    chat = oa.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    chat_stream = [
        c.model_dump()
        for c in oa.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True)
    ]
    message = an.messages.create(model="claude-test", max_tokens=5, messages=msgs)
    with an.messages.stream(model="claude-test", max_tokens=5, messages=msgs) as s:
        streamed = s.get_final_message()
    gem = gm.models.generate_content(model="gemini-2.5-flash", contents="hi")
    gem_stream = [
        c.text for c in gm.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    ]
    oa.close()
    an.close()
    return {
        "chat": chat.model_dump(),
        "chat_stream": chat_stream,
        "message": message.model_dump(),
        "message_stream": streamed.model_dump(),
        "gemini": (gem.text, gem.usage_metadata.model_dump() if gem.usage_metadata else None),
        "gemini_stream": gem_stream,
    }


def test_recorded_bytes_survive_the_store_and_replay_identically(
    redis_url: str,
    stream_prefix: str,
    sink_url: str,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    rng = random.Random(99)
    replies = [
        openai(rng, False),
        openai(rng, True),
        anthropic(rng, False),
        anthropic(rng, True),
        gemini(rng, False),
        gemini(rng, True),
    ]
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    with open_sink(sink_url) as store:
        worker = Worker(
            redis_url=redis_url,
            stream_prefix=stream_prefix,
            sink_url=sink_url,
            consumer="e2e",
            block_ms=50,
            sink=store,
        )
        with worker_thread(worker):
            for i, reply in enumerate(replies):
                headers = [
                    ("content-type", "text/event-stream" if reply.stream else "application/json")
                ]
                body = reply.body
                if i == 0:  # the provider gzip-encoded this one
                    body = gzip.compress(body)
                    headers.append(("Content-Encoding", "gzip"))
                details: dict[str, Any] = (
                    {
                        "chunks": reply.chunks,
                        "chunk_offsets_ns": [(k + 1) * 1000 for k in range(len(reply.chunks))],
                    }
                    if reply.stream
                    else {}
                )
                recorder.record(
                    reply.provider, None if reply.stream else body, {"case": i}, "e2e",
                    status=200, method="POST", url=reply.url, request_body=reply.request_body,
                    response_headers=headers, stream=reply.stream, body_form="wire", **details,
                )  # fmt: skip
            drain(store, recorder.producer_id, len(replies))
        recorder.close()
        stored: list[Record] = sorted(
            (r for r, _ in store.iter_stored(recorder.producer_id)), key=lambda r: r.seq
        )

    originals = []  # the same bytes, as the provider sent them, never stored
    for record, reply in zip(stored, replies, strict=True):
        sent = b"".join(reply.chunks) if reply.stream else reply.body
        raw = run_cli(capsysbinary, "show", record.record_id, "--raw", "--sink", sink_url)
        assert raw.code == 0, raw.err
        assert raw.out == record.body
        assert record.decoded_body() == sent
        if reply.stream:
            assert record.chunk_bytes() == reply.chunks
        originals.append(
            make_record(
                reply.provider,
                raw.out if not reply.stream else b"",
                chunks=reply.chunks or None,
                url=reply.url,
                request_body=reply.request_body,
                headers=record.response_headers,
            )
        )

    assert gzip.decompress(stored[0].body) == replies[0].body
    with ReplayServer(stored, match="path") as from_store:
        replayed = _sdk_results(from_store.url)
    # The same bytes served from memory, never stored: the SDKs must read exactly the same.
    with ReplayServer(originals, match="path") as direct:
        expected = _sdk_results(direct.url)
    assert replayed == expected
    assert replayed["chat"]["choices"][0]["message"]["content"]
    assert replayed["gemini"][0]
