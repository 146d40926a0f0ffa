"""The GenAI conventions, exactly, on records of the fake provider's replies (issue #16).

The real SDKs call ``rawtap.tools.fake_provider`` with the generation
parameters users set; each exchange's exact bytes become a record (under the
URL of the provider it stands for), the records go through the worker's
telemetry as one committed batch, and the span attributes and metric points
are checked against the conventions and against what the fake provider sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rawtap.consumer.derivation import derive
from rawtap.shared import Chunk, EndState, Record
from rawtap.tools.fake_provider import Exchange, FakeProvider
from tests.support.otel import Emitted, emit, points

MSGS: list[Any] = [{"role": "user", "content": "Say something about rawtap, please."}]
FINGERPRINT = "fp_fake0b1e5d"  # what the fake provider's chat replies carry
STEP_NS = 1_000_000  # chunk i arrives at (i + 1) ms


@dataclass
class Calls:
    """The fake provider's exchanges, by what each call was for."""

    by_name: dict[str, Exchange]

    def record(self, name: str, origin: str | None = None, **fields: Any) -> Record:
        """The record the tap would make of exchange ``name``, sent to ``origin``."""
        return _record(self.by_name[name], origin, **fields)


def _record(ex: Exchange, origin: str | None, **fields: Any) -> Record:
    chunks = ex.chunks if ex.stream else []
    body = b"".join(chunks) if chunks else ex.body
    values: dict[str, Any] = {
        "record_id": f"{ex.seq:040x}",
        "producer_id": "fake",
        "seq": ex.seq,
        "provider": ex.provider,
        "method": ex.request.method,
        "url": (origin or "https://provider.example") + ex.request.target,
        "request_body": ex.request.body,
        "status": ex.status,
        "response_headers": ex.headers,
        "body": body,
        "stream": ex.stream and ex.status == 200,
        "chunks": [Chunk((i + 1) * STEP_NS, len(c)) for i, c in enumerate(chunks)],
        "started_at_ns": 1_700_000_000_000_000_000,
        "captured_at_ns": 1_700_000_000_100_000_000,
        "first_byte_ns": STEP_NS // 2,
        "ended_ns": (len(chunks) + 1) * STEP_NS,
    }
    values.update(fields)
    return Record(**values)


@pytest.fixture(scope="module")
def calls() -> Iterator[Calls]:
    import openai
    from anthropic import Anthropic
    from google import genai
    from google.genai import types
    from openai import OpenAI

    with FakeProvider() as fake:
        oa = OpenAI(api_key="sk-test", base_url=fake.openai_base_url, max_retries=0)
        orr = OpenAI(api_key="sk-or", base_url=fake.openrouter_base_url, max_retries=0)
        an = Anthropic(api_key="sk-ant", base_url=fake.anthropic_base_url, max_retries=0)
        gm = genai.Client(api_key="k", http_options=fake.gemini_http_options())
        names: list[str] = []

        def call(name: str, run: Any) -> None:
            before = len(fake.exchanges)
            try:
                result = run()
                if not isinstance(result, str | bytes | dict) and hasattr(result, "__iter__"):
                    list(result)
            except (openai.APIError, openai.APIConnectionError, ConnectionError):
                pass
            assert len(fake.exchanges) == before + 1, name
            names.append(name)

        call("chat", lambda: oa.chat.completions.create(
            model="gpt-params", messages=MSGS, temperature=0.0, max_tokens=64, top_p=0.5,
            seed=7, stop=["\n\n", "END"], n=2, frequency_penalty=0.1, presence_penalty=0.2,
            response_format={"type": "json_object"}, service_tier="flex",
        ))  # fmt: skip
        call("chat-stream", lambda: oa.chat.completions.create(
            model="fake-long-6", messages=MSGS, stream=True,
            stream_options={"include_usage": True},
        ))  # fmt: skip
        call("stream-refused", lambda: oa.chat.completions.create(
            model="fake-429", messages=MSGS, stream=True
        ))  # fmt: skip
        call("stream-cut", lambda: oa.chat.completions.create(
            model="fake-reset-mid-body+long-8", messages=MSGS, stream=True
        ))  # fmt: skip
        call("responses", lambda: oa.responses.create(
            model="gpt-4.1", input="hi", max_output_tokens=32,
            text={"format": {"type": "text"}},
        ))  # fmt: skip
        call("openrouter", lambda: orr.chat.completions.create(
            model="openai/gpt-4o", messages=MSGS
        ))  # fmt: skip
        call("anthropic", lambda: an.messages.create(
            model="claude-params", max_tokens=50, messages=MSGS, stop_sequences=["STOP"],
            output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
            extra_body={"temperature": 1.0, "top_k": 5},  # no longer typed in this SDK
        ))  # fmt: skip
        call("gemini", lambda: gm.models.generate_content(
            model="gemini-2.5-flash", contents="hi",
            config=types.GenerateContentConfig(
                temperature=0.3, top_p=0.9, top_k=20, max_output_tokens=99, seed=11,
                stop_sequences=["Z"], response_mime_type="application/json",
                presence_penalty=0.5, frequency_penalty=0.25,
            ),
        ))  # fmt: skip
        call("gemini-stream", lambda: gm.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi"
        ))  # fmt: skip
        exchanges = fake.exchanges
        oa.close()
        orr.close()
        an.close()
        yield Calls(dict(zip(names, exchanges, strict=True)))


# -- 4. provider names -----------------------------------------------------------------------

GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"
VERTEX = (
    "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1"
    "/publishers/google/models/gemini-2.5-flash:generateContent"
)


def test_provider_names_by_host_and_provider(calls: Calls) -> None:
    azure_path = "/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
    azure_host_only = "https://myres.openai.azure.com/openai/deployments/gpt/chat/completions"
    urls = {
        "openai": ("chat", "https://api.openai.com/v1/chat/completions"),
        "azure.ai.openai": ("chat", azure_host_only),
        "azure.ai.openai (api-version)": ("chat", "https://llm-gateway.example" + azure_path),
        "anthropic": ("anthropic", "https://api.anthropic.com/v1/messages"),
        "gcp.gemini": ("gemini", "https://generativelanguage.googleapis.com" + GEMINI_PATH),
        "gcp.vertex_ai": ("gemini", VERTEX),
        "openrouter": ("openrouter", "https://openrouter.ai/api/v1/chat/completions"),
    }
    cases = {
        label: calls.record(name, url=url, record_id=f"{i:040x}")
        for i, (label, (name, url)) in enumerate(urls.items())
    }
    out = emit(list(cases.values()))
    systems = {"azure.ai.openai": "az.ai.openai", "gcp.gemini": "gemini",
               "gcp.vertex_ai": "vertex_ai"}  # fmt: skip
    for label, record in cases.items():
        want = label.split(" ")[0]
        attrs = out.attributes(record)
        assert attrs["gen_ai.provider.name"] == want, label
        assert attrs["gen_ai.system"] == systems.get(want, want), label
        assert attrs["server.port"] == 443, label
    provider_names = {a["gen_ai.provider.name"] for a, _ in
                      points(out.metrics, "gen_ai.client.operation.duration")}  # fmt: skip
    assert provider_names == {label.split(" ")[0] for label in cases}


# -- 5. stream flags, first chunk, chunk gaps, finish reasons, the deprecated system ----------


def test_request_stream_is_the_requests_and_chunk_timings_follow_the_response(
    calls: Calls,
) -> None:
    streamed = calls.record("chat-stream")
    refused = calls.record("stream-refused")  # asked for a stream, answered a JSON 429
    plain = calls.record("chat")
    out = emit([streamed, refused, plain])
    attrs = {name: out.attributes(r) for name, r in
             (("streamed", streamed), ("refused", refused), ("plain", plain))}  # fmt: skip
    assert attrs["streamed"]["gen_ai.request.stream"] is True
    assert attrs["refused"]["gen_ai.request.stream"] is True
    assert "gen_ai.request.stream" not in attrs["plain"]  # set if and only if streaming
    assert [attrs[n]["rawtap.response.stream"] for n in ("streamed", "refused", "plain")] == [
        True, False, False
    ]  # fmt: skip
    ttft = derive(streamed).ttft_ns
    assert ttft is not None
    assert attrs["streamed"]["gen_ai.response.time_to_first_chunk"] == ttft / 1e9
    assert "gen_ai.response.time_to_first_chunk" not in attrs["plain"]
    assert "gen_ai.response.time_to_first_chunk" not in attrs["refused"]
    first = points(out.metrics, "gen_ai.client.operation.time_to_first_chunk")
    assert [(a["gen_ai.request.model"], p.count, p.sum) for a, p in first] == [
        ("fake-long-6", 1, ttft / 1e9)
    ]
    # One value per chunk after the first one carrying output: the gap since the one before.
    after_first = [c for c in streamed.chunks if c.offset_ns > ttft]
    assert len(after_first) >= 6  # five more words, usage, [DONE]
    per_chunk = points(out.metrics, "gen_ai.client.operation.time_per_output_chunk")
    assert [(a["gen_ai.request.model"], p.count) for a, p in per_chunk] == [
        ("fake-long-6", len(after_first))
    ]
    assert per_chunk[0][1].sum == pytest.approx(len(after_first) * STEP_NS / 1e9)


def test_a_cut_stream_finishes_with_error(calls: Calls) -> None:
    cut = calls.record(
        "stream-cut", end_state=EndState.ERROR, stream=True,
        error="RemoteProtocolError: peer closed connection without sending complete message body",
    )  # fmt: skip
    assert calls.by_name["stream-cut"].complete is False
    attrs = emit([cut]).attributes(cut)
    assert list(attrs["gen_ai.response.finish_reasons"]) == ["error"]
    assert attrs["error.type"] == "error"
    whole = calls.record("chat-stream")  # the same kind of stream, not cut: its own reason
    assert list(emit([whole]).attributes(whole)["gen_ai.response.finish_reasons"]) == ["stop"]


@pytest.mark.parametrize(
    ("opt_in", "system"),
    [
        (None, True),
        ("http", True),
        ("gen_ai_latest_experimental", False),
        ("http/dup, gen_ai_latest_experimental ,database", False),
        ("gen_ai_latest_experimental_x", True),
        ("GEN_AI_LATEST_EXPERIMENTAL", True),  # compared exactly, as the instrumentations do
    ],
)
def test_gen_ai_system_is_emitted_unless_the_latest_conventions_are_opted_into(
    calls: Calls, monkeypatch: pytest.MonkeyPatch, opt_in: str | None, system: bool
) -> None:
    if opt_in is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    record = calls.record("anthropic")
    attrs = emit([record]).attributes(record)
    assert ("gen_ai.system" in attrs) is system
    assert attrs["gen_ai.provider.name"] == "anthropic"


# -- 6. request parameters, OpenAI's response attributes, the conversation ----------------------


def _params(out: Emitted, record: Record) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple | list) else v
        for k, v in out.attributes(record).items()
        if k.startswith(("gen_ai.request.", "gen_ai.output.", "openai."))
        and k not in ("gen_ai.request.model",)
    }


def test_request_parameters_come_from_the_stored_request_body(calls: Calls) -> None:
    chat, responses = calls.record("chat"), calls.record("responses")
    claude, gemini = calls.record("anthropic"), calls.record("gemini")
    gemini_stream = calls.record("gemini-stream")
    out = emit([chat, responses, claude, gemini, gemini_stream])
    assert _params(out, chat) == {
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ["\n\n", "END"],
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.frequency_penalty": 0.1,
        "gen_ai.request.presence_penalty": 0.2,
        "gen_ai.output.type": "json",
        "openai.request.service_tier": "flex",
        "openai.api.type": "chat_completions",
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": FINGERPRINT,
    }
    assert _params(out, responses) == {
        "gen_ai.request.max_tokens": 32,
        "gen_ai.output.type": "text",
        "openai.api.type": "responses",
        "openai.response.service_tier": "default",
    }
    assert _params(out, claude) == {
        "gen_ai.request.temperature": 1.0,
        "gen_ai.request.top_k": 5.0,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.stop_sequences": ["STOP"],
        "gen_ai.output.type": "json",
    }
    assert _params(out, gemini) == {
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 20.0,
        "gen_ai.request.max_tokens": 99,
        "gen_ai.request.seed": 11,
        "gen_ai.request.stop_sequences": ["Z"],
        "gen_ai.request.frequency_penalty": 0.25,
        "gen_ai.request.presence_penalty": 0.5,
        "gen_ai.output.type": "json",
    }
    # Gemini's stream is asked for by the URL (:streamGenerateContent), not the body.
    assert _params(out, gemini_stream) == {"gen_ai.request.stream": True}


def test_openai_attributes_only_for_openai(calls: Calls) -> None:
    router = calls.record("openrouter")
    attrs = emit([router]).attributes(router)
    assert attrs["gen_ai.provider.name"] == "openrouter"
    assert not [k for k in attrs if k.startswith("openai.")]


def test_the_session_is_the_conversation(calls: Calls) -> None:
    record = calls.record("anthropic", session_id="conv-42")
    attrs = emit([record]).attributes(record)
    assert attrs["gen_ai.conversation.id"] == attrs["session.id"] == "conv-42"
    alone = calls.record("gemini")
    assert "gen_ai.conversation.id" not in emit([alone]).attributes(alone)
