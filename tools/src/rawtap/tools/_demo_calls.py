"""The SDK calls ``rawtap demo`` makes: real OpenAI, Anthropic and Gemini clients, tapped.

Every provider is called sync and async, JSON and streamed, through clients
built exactly as an application would build them and then instrumented with
``recorder.instrument(client)``. A few calls hit the fake provider's
``429-then-200`` scenario, so retried attempts show up as records of their own.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtap.producer import Recorder
from rawtap.shared import RawtapError
from rawtap.tools.fake_provider import FakeProvider

PROVIDERS = ("openai", "openrouter", "anthropic", "gemini")
DEMO_KEY = "sk-rawtap-demo-key-never-stored"
"""The API key the demo clients send; the report checks it never reached the store."""
_PROMPT = "Say something about recording bytes."
_MODELS = {
    "openai": "gpt-4o-mini",
    "openrouter": "openai/gpt-4o-mini",
    "anthropic": "claude-sonnet-5-5",
    "gemini": "gemini-2.5-flash",
}


class DemoDependencyMissing(RawtapError):
    """The provider SDKs are not installed."""


@dataclass(frozen=True, slots=True)
class Call:
    """One logical SDK call of the demo."""

    provider: str
    stream: bool
    asynchronous: bool
    retried: bool
    """Aimed at ``429-then-200``: two HTTP attempts, two records."""

    @property
    def model(self) -> str:
        """The model name sent (the fake provider reads scenarios from it)."""
        return "fake-429-then-200" if self.retried else _MODELS[self.provider]


def plan(count: int) -> list[Call]:
    """``count`` calls cycling through providers, JSON/stream and sync/async; 1 in 5 retried."""
    calls = []
    for i in range(count):
        provider = PROVIDERS[i % 4]
        variant = i // 4
        calls.append(Call(provider, variant % 2 == 1, (variant // 2) % 2 == 1, variant % 5 == 4))
    return calls


class DemoClients:
    """Tapped SDK clients aimed at a fake provider (sync and async for each provider)."""

    def __init__(self, fake: FakeProvider, recorder: Recorder) -> None:
        try:
            import anthropic
            import openai
            from google import genai
            from google.genai import types
        except ImportError as e:
            raise DemoDependencyMissing(
                f"`rawtap demo` drives the provider SDKs and {e.name} is missing; "
                "install them with `pip install 'rawtap-tools[demo]'`"
            ) from None
        self.openai = recorder.instrument(
            openai.OpenAI(api_key=DEMO_KEY, base_url=fake.openai_base_url, max_retries=2)
        )
        self.openrouter = recorder.instrument(
            openai.OpenAI(api_key=DEMO_KEY, base_url=fake.openrouter_base_url, max_retries=2),
            provider="openrouter",  # inferred from the host for openrouter.ai; this is local
        )
        self.anthropic = recorder.instrument(
            anthropic.Anthropic(api_key=DEMO_KEY, base_url=fake.anthropic_base_url, max_retries=2)
        )
        gemini_options = fake.gemini_http_options(
            retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05)
        )
        self.gemini = recorder.instrument(
            genai.Client(api_key=DEMO_KEY, http_options=gemini_options)
        )
        self._async_factories: dict[str, Callable[[], Any]] = {
            "openai": lambda: openai.AsyncOpenAI(
                api_key=DEMO_KEY, base_url=fake.openai_base_url, max_retries=2
            ),
            "openrouter": lambda: openai.AsyncOpenAI(
                api_key=DEMO_KEY, base_url=fake.openrouter_base_url, max_retries=2
            ),
            "anthropic": lambda: anthropic.AsyncAnthropic(
                api_key=DEMO_KEY, base_url=fake.anthropic_base_url, max_retries=2
            ),
        }
        self._recorder = recorder

    def close(self) -> None:
        """Close the sync clients (async ones are closed by the call that made them)."""
        self.openai.close()
        self.openrouter.close()
        self.anthropic.close()
        self.gemini.close()

    # -- sync ---------------------------------------------------------------------

    def run(self, call: Call) -> str:
        """Make one sync call; return the text the application got."""
        if call.provider == "gemini":
            if not call.stream:
                return str(
                    self.gemini.models.generate_content(model=call.model, contents=_PROMPT).text
                )
            pieces = self.gemini.models.generate_content_stream(model=call.model, contents=_PROMPT)
            return "".join(p.text or "" for p in pieces)
        if call.provider == "anthropic":
            kwargs: dict[str, Any] = {
                "model": call.model,
                "max_tokens": 256,
                "messages": [{"role": "user", "content": _PROMPT}],
            }
            if not call.stream:
                message = self.anthropic.messages.create(**kwargs)
                return "".join(getattr(b, "text", "") for b in message.content)
            with self.anthropic.messages.stream(**kwargs) as stream:
                return "".join(stream.text_stream)
        client = self.openai if call.provider == "openai" else self.openrouter
        messages: Any = [{"role": "user", "content": _PROMPT}]
        if not call.stream:
            reply = client.chat.completions.create(model=call.model, messages=messages)
            return reply.choices[0].message.content or ""
        chunks = client.chat.completions.create(
            model=call.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        with chunks:
            return "".join((c.choices[0].delta.content or "") if c.choices else "" for c in chunks)

    # -- async --------------------------------------------------------------------

    async def run_async(self, calls: list[Call], concurrency: int = 8) -> list[str]:
        """Make ``calls`` on one event loop, ``concurrency`` at a time."""
        clients: dict[str, Any] = {
            name: self._recorder.instrument(make(), provider=name)
            for name, make in self._async_factories.items()
        }
        limit = asyncio.Semaphore(concurrency)

        async def one(call: Call) -> str:
            async with limit:
                return await self._one_async(clients, call)

        try:
            return list(await asyncio.gather(*(one(c) for c in calls)))
        finally:
            for client in clients.values():
                await client.close()

    async def _one_async(self, clients: dict[str, Any], call: Call) -> str:
        if call.provider == "gemini":
            aio = self.gemini.aio
            if not call.stream:
                reply = await aio.models.generate_content(model=call.model, contents=_PROMPT)
                return str(reply.text)
            pieces = await aio.models.generate_content_stream(model=call.model, contents=_PROMPT)
            return "".join([p.text or "" async for p in pieces])
        client = clients[call.provider]
        if call.provider == "anthropic":
            kwargs: dict[str, Any] = {
                "model": call.model,
                "max_tokens": 256,
                "messages": [{"role": "user", "content": _PROMPT}],
            }
            if not call.stream:
                message = await client.messages.create(**kwargs)
                return "".join(getattr(b, "text", "") for b in message.content)
            async with client.messages.stream(**kwargs) as stream:
                return "".join([t async for t in stream.text_stream])
        messages: Any = [{"role": "user", "content": _PROMPT}]
        if not call.stream:
            reply = await client.chat.completions.create(model=call.model, messages=messages)
            return str(reply.choices[0].message.content or "")
        chunks = await client.chat.completions.create(
            model=call.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with chunks:
            return "".join(
                [(c.choices[0].delta.content or "") if c.choices else "" async for c in chunks]
            )
