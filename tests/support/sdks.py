"""Driving the real provider SDKs against a ``FakeProvider``, one call at a time.

``call(fake, sdk, model, stream=…, mode=…)`` makes one logical call with a
freshly built client (closed afterwards, so no pool outlives a test) and
returns what the SDK parsed: text, usage and finish reason. ``sdk`` is one of
``SDKS``; ``mode`` is ``"sync"`` or ``"async"`` (run on its own event loop).
Retries: ``retries`` is the SDK's own retry budget (OpenAI/Anthropic
``max_retries``; Gemini ``HttpRetryOptions(attempts=retries + 1)`` with
10 ms backoff, since genai does not retry unless told to).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types as genai_types

from rawtap.tools.fake_provider import FakeProvider

SDKS = ("openai-chat", "openai-responses", "openrouter", "anthropic", "gemini")
MODES = ("sync", "async")
PROMPT = "Say something about recording bytes."
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]


@dataclass(frozen=True)
class Parsed:
    """What the SDK handed the application."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None


def call(
    fake: FakeProvider,
    sdk: str,
    model: str,
    *,
    stream: bool = False,
    mode: str = "sync",
    retries: int = 0,
) -> Parsed:
    """One logical call through ``sdk`` (see the module docstring)."""
    if mode == "sync":
        return _SYNC[sdk](fake, model, stream, retries)
    return asyncio.run(_ASYNC[sdk](fake, model, stream, retries))


def _openai_client(fake: FakeProvider, sdk: str, retries: int) -> openai.OpenAI:
    base = fake.openrouter_base_url if sdk == "openrouter" else fake.openai_base_url
    return openai.OpenAI(api_key="sk-fake", base_url=base, max_retries=retries)


def _openai_async_client(fake: FakeProvider, sdk: str, retries: int) -> openai.AsyncOpenAI:
    base = fake.openrouter_base_url if sdk == "openrouter" else fake.openai_base_url
    return openai.AsyncOpenAI(api_key="sk-fake", base_url=base, max_retries=retries)


class _ChatFold:
    """Folds chat completion chunks into a ``Parsed``."""

    def __init__(self) -> None:
        self.text = ""
        self.usage: Any = None
        self.finish: str | None = None

    def add(self, chunk: Any) -> None:
        if chunk.choices:
            self.text += chunk.choices[0].delta.content or ""
            self.finish = chunk.choices[0].finish_reason or self.finish
        if chunk.usage is not None:
            self.usage = chunk.usage

    def parsed(self) -> Parsed:
        u = self.usage
        return Parsed(
            self.text,
            u and u.prompt_tokens,
            u and u.completion_tokens,
            self.finish,
        )


def _chat_json(r: Any) -> Parsed:
    choice = r.choices[0]
    return Parsed(
        choice.message.content,
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
        choice.finish_reason,
    )


def _chat_kwargs(model: str, stream: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if stream:
        kwargs |= {"stream": True, "stream_options": {"include_usage": True}}
    return kwargs


def _openai_chat(fake: FakeProvider, model: str, stream: bool, retries: int, sdk: str) -> Parsed:
    with _openai_client(fake, sdk, retries) as client:
        result = client.chat.completions.create(**_chat_kwargs(model, stream))
        if not stream:
            return _chat_json(result)
        fold = _ChatFold()
        with result:
            for chunk in result:
                fold.add(chunk)
        return fold.parsed()


async def _openai_chat_async(
    fake: FakeProvider, model: str, stream: bool, retries: int, sdk: str
) -> Parsed:
    async with _openai_async_client(fake, sdk, retries) as client:
        result = await client.chat.completions.create(**_chat_kwargs(model, stream))
        if not stream:
            return _chat_json(result)
        fold = _ChatFold()
        async with result:
            async for chunk in result:
                fold.add(chunk)
        return fold.parsed()


class _ResponsesFold:
    def __init__(self) -> None:
        self.text = ""
        self.final: Any = None

    def add(self, event: Any) -> None:
        if event.type == "response.output_text.delta":
            self.text += event.delta
        elif event.type == "response.completed":
            self.final = event.response

    def parsed(self) -> Parsed:
        assert self.final is not None, "the stream ended without response.completed"
        assert self.final.output_text == self.text
        usage = self.final.usage
        return Parsed(self.text, usage.input_tokens, usage.output_tokens, self.final.status)


def _responses_json(r: Any) -> Parsed:
    return Parsed(r.output_text, r.usage.input_tokens, r.usage.output_tokens, r.status)


def _openai_responses(fake: FakeProvider, model: str, stream: bool, retries: int) -> Parsed:
    with _openai_client(fake, "openai", retries) as client:
        if not stream:
            return _responses_json(client.responses.create(model=model, input=PROMPT))
        fold = _ResponsesFold()
        with client.responses.create(model=model, input=PROMPT, stream=True) as events:
            for event in events:
                fold.add(event)
        return fold.parsed()


async def _openai_responses_async(
    fake: FakeProvider, model: str, stream: bool, retries: int
) -> Parsed:
    async with _openai_async_client(fake, "openai", retries) as client:
        if not stream:
            return _responses_json(await client.responses.create(model=model, input=PROMPT))
        fold = _ResponsesFold()
        async with await client.responses.create(model=model, input=PROMPT, stream=True) as events:
            async for event in events:
                fold.add(event)
        return fold.parsed()


class _AnthropicFold:
    def __init__(self) -> None:
        self.text = ""
        self.input: int | None = None
        self.output: int | None = None
        self.stop: str | None = None

    def add(self, event: Any) -> None:
        if event.type == "message_start":
            self.input = event.message.usage.input_tokens
        elif event.type == "content_block_delta":
            self.text += event.delta.text
        elif event.type == "message_delta":
            self.output = event.usage.output_tokens
            self.stop = event.delta.stop_reason

    def parsed(self) -> Parsed:
        return Parsed(self.text, self.input, self.output, self.stop)


def _anthropic_json(m: Any) -> Parsed:
    return Parsed(m.content[0].text, m.usage.input_tokens, m.usage.output_tokens, m.stop_reason)


def _anthropic(fake: FakeProvider, model: str, stream: bool, retries: int) -> Parsed:
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 64, "messages": MESSAGES}
    with anthropic.Anthropic(
        api_key="sk-ant-fake", base_url=fake.anthropic_base_url, max_retries=retries
    ) as client:
        if not stream:
            return _anthropic_json(client.messages.create(**kwargs))
        fold = _AnthropicFold()
        with client.messages.create(**kwargs, stream=True) as events:
            for event in events:
                fold.add(event)
        return fold.parsed()


async def _anthropic_async(fake: FakeProvider, model: str, stream: bool, retries: int) -> Parsed:
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 64, "messages": MESSAGES}
    async with anthropic.AsyncAnthropic(
        api_key="sk-ant-fake", base_url=fake.anthropic_base_url, max_retries=retries
    ) as client:
        if not stream:
            return _anthropic_json(await client.messages.create(**kwargs))
        fold = _AnthropicFold()
        async with await client.messages.create(**kwargs, stream=True) as events:
            async for event in events:
                fold.add(event)
        return fold.parsed()


def _gemini_client(fake: FakeProvider, retries: int) -> genai.Client:
    retry = None
    if retries:
        retry = genai_types.HttpRetryOptions(
            attempts=retries + 1, initial_delay=0.01, max_delay=0.05, jitter=0
        )
    return genai.Client(
        api_key="fake-key", http_options=fake.gemini_http_options(retry_options=retry)
    )


class _GeminiFold:
    def __init__(self) -> None:
        self.text = ""
        self.last: Any = None

    def add(self, chunk: Any) -> None:
        self.text += chunk.text or ""
        self.last = chunk

    def parsed(self) -> Parsed:
        return _gemini_parsed(self.text, self.last)


def _gemini_parsed(text: str, r: Any) -> Parsed:
    usage = r.usage_metadata
    finish = r.candidates[0].finish_reason
    return Parsed(
        text,
        usage.prompt_token_count,
        usage.candidates_token_count,
        finish.value if finish is not None else None,
    )


def _gemini(fake: FakeProvider, model: str, stream: bool, retries: int) -> Parsed:
    with _gemini_client(fake, retries) as client:
        if not stream:
            r = client.models.generate_content(model=model, contents=PROMPT)
            return _gemini_parsed(r.text or "", r)
        fold = _GeminiFold()
        for chunk in client.models.generate_content_stream(model=model, contents=PROMPT):
            fold.add(chunk)
        return fold.parsed()


async def _gemini_async(fake: FakeProvider, model: str, stream: bool, retries: int) -> Parsed:
    client = _gemini_client(fake, retries)
    try:
        async with client.aio as aio:
            if not stream:
                r = await aio.models.generate_content(model=model, contents=PROMPT)
                return _gemini_parsed(r.text or "", r)
            fold = _GeminiFold()
            async for chunk in await aio.models.generate_content_stream(
                model=model, contents=PROMPT
            ):
                fold.add(chunk)
            return fold.parsed()
    finally:
        client.close()


_SYNC: dict[str, Callable[[FakeProvider, str, bool, int], Parsed]] = {
    "openai-chat": lambda f, m, s, r: _openai_chat(f, m, s, r, "openai"),
    "openrouter": lambda f, m, s, r: _openai_chat(f, m, s, r, "openrouter"),
    "openai-responses": _openai_responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
}
_ASYNC: dict[str, Callable[[FakeProvider, str, bool, int], Coroutine[Any, Any, Parsed]]] = {
    "openai-chat": lambda f, m, s, r: _openai_chat_async(f, m, s, r, "openai"),
    "openrouter": lambda f, m, s, r: _openai_chat_async(f, m, s, r, "openrouter"),
    "openai-responses": _openai_responses_async,
    "anthropic": _anthropic_async,
    "gemini": _gemini_async,
}

# Where each SDK's requests land on the fake provider.
PATHS = {
    "openai-chat": "/v1/chat/completions",
    "openai-responses": "/v1/responses",
    "openrouter": "/api/v1/chat/completions",
    "anthropic": "/v1/messages",
}
PROVIDERS = {
    "openai-chat": "openai",
    "openai-responses": "openai",
    "openrouter": "openrouter",
    "anthropic": "anthropic",
    "gemini": "gemini",
}
