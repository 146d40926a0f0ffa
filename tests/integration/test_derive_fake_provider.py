"""Derivation checked against the fake provider's known replies, for every provider and mode.

The real SDKs call rawtap.tools.fake_provider; each exchange's exact bytes
(body or chunks as written, headers, request) become a record, and the parsers
must read back the token counts, text, finish reason and ids the server says it sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rawtap.consumer import derive
from rawtap.shared import Chunk, Record
from rawtap.tools.fake_provider import Exchange, FakeProvider

MSGS: list[Any] = [{"role": "user", "content": "Say something about rawtap, please."}]


@pytest.fixture(scope="module")
def exchanges() -> Iterator[list[Exchange]]:
    import openai
    from anthropic import Anthropic
    from google import genai
    from openai import OpenAI

    with FakeProvider() as fake:
        oa = OpenAI(api_key="sk-test", base_url=fake.openai_base_url, max_retries=0)
        orr = OpenAI(api_key="sk-or", base_url=fake.openrouter_base_url, max_retries=0)
        an = Anthropic(api_key="sk-ant", base_url=fake.anthropic_base_url, max_retries=0)
        gm = genai.Client(api_key="k", http_options=fake.gemini_http_options())
        for model in ("gpt-4o-mini", "fake-gzip", "fake-gzip-no-trailer"):
            oa.chat.completions.create(model=model, messages=MSGS)
            list(
                oa.chat.completions.create(
                    model=model, messages=MSGS, stream=True, stream_options={"include_usage": True}
                )
            )
        list(oa.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
        oa.responses.create(model="gpt-4.1", input="hi")
        list(oa.responses.create(model="gpt-4.1", input="hi", stream=True))
        orr.chat.completions.create(model="openai/gpt-4o", messages=MSGS)
        list(orr.chat.completions.create(model="openai/gpt-4o", messages=MSGS, stream=True))
        an.messages.create(model="claude-test", max_tokens=50, messages=MSGS)
        with an.messages.stream(model="claude-test", max_tokens=50, messages=MSGS) as s:
            s.get_final_message()
        gm.models.generate_content(model="gemini-2.5-flash", contents="hi")
        list(gm.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
        list(gm.models.generate_content_stream(model="fake-long-40", contents="hi"))
        with pytest.raises(openai.RateLimitError):
            oa.chat.completions.create(model="fake-429", messages=MSGS)
        oa.close()
        orr.close()
        an.close()
        yield fake.exchanges


def _record(ex: Exchange) -> Record:
    chunks = ex.chunks
    body = b"".join(chunks) if chunks else ex.body
    return Record(
        record_id=f"{ex.seq:040x}",
        producer_id="fake",
        seq=ex.seq,
        provider=ex.provider,
        method=ex.request.method,
        url="https://provider.example" + ex.request.target,
        request_headers=[],
        request_body=ex.request.body,
        status=ex.status,
        response_headers=ex.headers,
        body=body,
        stream=ex.stream,
        chunks=[Chunk((i + 1) * 1000, len(c)) for i, c in enumerate(chunks)] if ex.stream else [],
        started_at_ns=1,
        captured_at_ns=1,
        first_byte_ns=500,
    )


def test_every_provider_and_mode_derives_the_known_figures(exchanges: list[Exchange]) -> None:
    seen = set()
    for ex in exchanges:
        d = derive(_record(ex))
        label = f"{ex.provider}/{ex.api}/{ex.scenario.name}/stream={ex.stream}"
        assert not d.failed, (label, d.parse_error)
        if ex.status != 200:
            assert d.provider_error, label
            assert d.text is None, label
            continue
        seen.add((ex.provider, ex.api, ex.stream))
        if ex.usage is None:
            assert (d.input_tokens, d.output_tokens) == (None, None), label
        else:
            assert (d.input_tokens, d.output_tokens) == (
                ex.usage.input_tokens,
                ex.usage.output_tokens,
            ), label
        assert d.text == ex.text, label
        assert d.finish_reason == ex.finish_reason, label
        if ex.response_id:
            assert d.response_id == ex.response_id, label
        if ex.request_id:
            assert d.request_id == ex.request_id, label
        if ex.stream:
            assert d.ttft_ns is not None, label
        assert d.model, label
    assert seen == {
        (provider, api, stream)
        for provider, api in [
            ("openai", "chat.completions"),
            ("openai", "responses"),
            ("openrouter", "chat.completions"),
            ("anthropic", "messages"),
            ("gemini", "generateContent"),
            ("gemini", "streamGenerateContent"),
        ]
        for stream in (False, True)
        if not (api == "generateContent" and stream)
        and not (api == "streamGenerateContent" and not stream)
    }
    assert any(ex.gzipped and ex.stream for ex in exchanges)
