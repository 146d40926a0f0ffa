"""Helpers for the capture tap's tests: SDK drivers, reading records back from Redis.

A *driver* makes one kind of client (OpenAI, OpenRouter through the OpenAI
SDK, OpenAI Responses, Anthropic, Gemini) against the fake provider, sync or
async, and makes one JSON or streamed call, returning a comparable summary of
what the application saw (or of the exception it got).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from rawtap.producer import Recorder
from rawtap.shared import Record, decode_entry
from rawtap.tools.fake_provider import Exchange, FakeProvider
from tests.support.streams import xrange_entries

API_KEY = "sk-rawtap-test-4f1c2a9e7d3b6c5a"
"""The key every tapped test client sends; no stored byte may contain it."""

# Any: the same user turn goes to OpenAI, Anthropic and Gemini, whose SDKs each type
# it as their own TypedDict; no one static type fits all three.
MESSAGES: list[Any] = [{"role": "user", "content": "Say something."}]

SDK_VERSIONS = {
    name: importlib.metadata.version(name) for name in ("openai", "anthropic", "google-genai")
}
"""The SDK versions these tests ran with (they are in every test id)."""


def versions_line() -> str:
    """``openai 3.57.0, anthropic 2.14.0, google-genai 3.6.1``."""
    return ", ".join(f"{k} {v}" for k, v in SDK_VERSIONS.items())


# -- reading records --------------------------------------------------------------


def stream_records(client: redis.Redis, prefix: str) -> list[Record]:
    """Every record in the streams under ``prefix``, in ``seq`` order."""
    records: list[Record] = []
    for key in client.scan_iter(match=f"{prefix}:*"):
        if key.endswith(b"{dead}"):
            continue
        records.extend(decode_entry(fields) for _id, fields in xrange_entries(client, key))
    return sorted(records, key=lambda r: r.seq)


def raw_stream_bytes(client: redis.Redis, prefix: str) -> bytes:
    """Every field of every entry under ``prefix``, concatenated (for secret scans)."""
    out = bytearray()
    for key in client.scan_iter(match=f"{prefix}:*"):
        for _id, fields in xrange_entries(client, key):
            for name, value in fields.items():
                out += name + b"=" + value + b"\n"
    return bytes(out)


@dataclass
class Captured:
    """A real Recorder on the test Redis, and a way to read what it recorded."""

    recorder: Recorder
    redis: redis.Redis
    prefix: str

    def records(self, expected: int | None = None, timeout: float = 10.0) -> list[Record]:
        """The records so far; with ``expected``, wait until there are that many (exactly)."""
        deadline = time.monotonic() + timeout
        while True:
            self.recorder.flush(5)
            found = stream_records(self.redis, self.prefix)
            if expected is None or len(found) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if expected is not None:
            assert len(found) == expected, (
                f"expected {expected} records, found {len(found)}: "
                f"{[(r.status, r.end_state.value, r.url) for r in found]}"
            )
        return found


# -- drivers -------------------------------------------------------------------------


def _outcome(exc: BaseException) -> tuple[str, Any]:
    kind = (type(exc).__module__, type(exc).__qualname__)
    return ("raised", (*kind, getattr(exc, "status_code", None)))


@dataclass(frozen=True)
class Driver:
    """How to make a client of one SDK and call it (see the module docstring)."""

    name: str
    provider: str
    sdk: str
    path: str
    make: Callable[..., Any]
    make_async: Callable[..., Any]
    call: Callable[[Any, str, bool], Any]
    acall: Callable[[Any, str, bool], Any]
    close: Callable[[Any], None]
    aclose: Callable[[Any], Any]

    @property
    def id(self) -> str:
        """Test id naming the SDK version."""
        return f"{self.name}-{self.sdk}{SDK_VERSIONS[self.sdk]}"

    def run(self, client: Any, model: str, stream: bool) -> Any:
        """The call's summary, or how it failed."""
        try:
            return self.call(client, model, stream)
        except Exception as exc:
            return _outcome(exc)

    async def arun(self, client: Any, model: str, stream: bool) -> Any:
        """The async call's summary, or how it failed."""
        try:
            return await self.acall(client, model, stream)
        except Exception as exc:
            return _outcome(exc)


def _openai_make(base: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    import openai

    def make(fake: FakeProvider, **kw: Any) -> Any:
        kw.setdefault("max_retries", 2)
        return openai.OpenAI(api_key=API_KEY, base_url=getattr(fake, base), **kw)

    def make_async(fake: FakeProvider, **kw: Any) -> Any:
        kw.setdefault("max_retries", 2)
        return openai.AsyncOpenAI(api_key=API_KEY, base_url=getattr(fake, base), **kw)

    return make, make_async


def _chat(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (c.choices[0].delta.content, c.choices[0].finish_reason)
            for c in client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
            if c.choices
        ]
    r = client.chat.completions.create(model=model, messages=MESSAGES)
    return (r.choices[0].message.content, r.choices[0].finish_reason, r.usage.model_dump())


async def _achat(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (c.choices[0].delta.content, c.choices[0].finish_reason)
            async for c in await client.chat.completions.create(
                model=model, messages=MESSAGES, stream=True
            )
            if c.choices
        ]
    r = await client.chat.completions.create(model=model, messages=MESSAGES)
    return (r.choices[0].message.content, r.choices[0].finish_reason, r.usage.model_dump())


def _responses(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (e.type, getattr(e, "delta", None))
            for e in client.responses.create(model=model, input="Say something.", stream=True)
        ]
    r = client.responses.create(model=model, input="Say something.")
    return (r.output_text, r.status, r.usage.model_dump() if r.usage else None)


async def _aresponses(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (e.type, getattr(e, "delta", None))
            async for e in await client.responses.create(
                model=model, input="Say something.", stream=True
            )
        ]
    r = await client.responses.create(model=model, input="Say something.")
    return (r.output_text, r.status, r.usage.model_dump() if r.usage else None)


def _anthropic_make() -> tuple[Callable[..., Any], Callable[..., Any]]:
    import anthropic

    def make(fake: FakeProvider, **kw: Any) -> Any:
        kw.setdefault("max_retries", 2)
        return anthropic.Anthropic(api_key=API_KEY, base_url=fake.anthropic_base_url, **kw)

    def make_async(fake: FakeProvider, **kw: Any) -> Any:
        kw.setdefault("max_retries", 2)
        return anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.anthropic_base_url, **kw)

    return make, make_async


def _messages(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (e.type, getattr(getattr(e, "delta", None), "text", None))
            for e in client.messages.create(
                model=model, max_tokens=64, messages=MESSAGES, stream=True
            )
        ]
    r = client.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    return (r.content[0].text, r.stop_reason, r.usage.model_dump())


async def _amessages(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (e.type, getattr(getattr(e, "delta", None), "text", None))
            async for e in await client.messages.create(
                model=model, max_tokens=64, messages=MESSAGES, stream=True
            )
        ]
    r = await client.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    return (r.content[0].text, r.stop_reason, r.usage.model_dump())


def _genai_make() -> tuple[Callable[..., Any], Callable[..., Any]]:
    from google import genai

    def make(fake: FakeProvider, **kw: Any) -> Any:
        return genai.Client(api_key=API_KEY, http_options=fake.gemini_http_options(**kw))

    return make, make


def _generate(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (c.text, str(c.candidates[0].finish_reason))
            for c in client.models.generate_content_stream(model=model, contents="Say something.")
        ]
    r = client.models.generate_content(model=model, contents="Say something.")
    return (r.text, str(r.candidates[0].finish_reason), r.usage_metadata.model_dump())


async def _agenerate(client: Any, model: str, stream: bool) -> Any:
    if stream:
        return [
            (c.text, str(c.candidates[0].finish_reason))
            async for c in await client.aio.models.generate_content_stream(
                model=model, contents="Say something."
            )
        ]
    r = await client.aio.models.generate_content(model=model, contents="Say something.")
    return (r.text, str(r.candidates[0].finish_reason), r.usage_metadata.model_dump())


async def _aclose_plain(client: Any) -> None:
    await client.close()


async def _aclose_genai(client: Any) -> None:
    await client.aio.aclose()
    client.close()


def _drivers() -> list[Driver]:
    om, oma = _openai_make("openai_base_url")
    rm, rma = _openai_make("openrouter_base_url")
    am, ama = _anthropic_make()
    gm, gma = _genai_make()
    close = lambda c: c.close()  # noqa: E731
    ac = _aclose_plain
    return [
        Driver("openai", "openai", "openai", "/v1/chat/completions",
               om, oma, _chat, _achat, close, ac),
        Driver("responses", "openai", "openai", "/v1/responses",
               om, oma, _responses, _aresponses, close, ac),
        Driver("openrouter", "openrouter", "openai", "/api/v1/chat/completions",
               rm, rma, _chat, _achat, close, ac),
        Driver("anthropic", "anthropic", "anthropic", "/v1/messages",
               am, ama, _messages, _amessages, close, ac),
        Driver("gemini", "gemini", "google-genai", "",
               gm, gma, _generate, _agenerate, close, _aclose_genai),
    ]  # fmt: skip


DRIVERS = _drivers()
BY_NAME = {d.name: d for d in DRIVERS}


def exchanges(fake: FakeProvider, driver: Driver) -> list[Exchange]:
    """The fake's finished exchanges for ``driver``'s endpoint, in order."""
    fake.wait_idle()
    found = [
        ex
        for ex in fake.exchanges
        if (ex.request.path == driver.path if driver.path else ex.provider == "gemini")
    ]
    return [ex.wait() for ex in found]


def run_async(coro_fn: Callable[[], Any]) -> Any:
    """``asyncio.run`` of a coroutine function (each test gets a fresh loop)."""
    return asyncio.run(coro_fn())
