"""Derivation: each provider's exact wire payloads, JSON and streamed, read into Derived."""

from __future__ import annotations

import random
import zlib
from typing import Any

import orjson
import pytest

from rawtap.consumer import PARSER_VERSIONS, Derived, ToolCall, derive, is_stale
from rawtap.consumer.derivation import sse_events
from tests.support.records import make_record, sse

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
OPENAI_RESPONSES = "https://api.openai.com/v1/responses"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_SSE = (
    "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
    ":streamGenerateContent?alt=sse"
)
MS = 1_000_000


def _ok(d: Derived) -> Derived:
    assert d.parse_error is None, d.parse_error
    return d


# -- OpenAI chat completions -------------------------------------------------------------


def test_openai_chat_json_with_tool_call_cached_and_reasoning_tokens() -> None:
    body = orjson.dumps(
        {
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 1764000000,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "get_weather",
                                    "arguments": '{"city":"Paris"}',
                                },
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 7},
            },
        }
    )
    d = _ok(
        derive(
            make_record(
                body=body,
                url=OPENAI_CHAT,
                headers=[("x-request-id", "req_123")],
                first_byte_ns=42 * MS,
                request_body=b'{"model":"gpt-4o","messages":[]}',
            )
        )
    )
    assert (d.parser, d.parser_version) == ("openai.chat", PARSER_VERSIONS["openai.chat"])
    assert d.model == "gpt-4o-2024-08-06"
    assert (d.response_id, d.request_id) == ("chatcmpl-abc", "req_123")
    assert (d.input_tokens, d.output_tokens, d.cached_tokens, d.reasoning_tokens) == (
        100,
        20,
        64,
        7,
    )
    assert d.finish_reason == "tool_calls"
    assert d.text is None
    assert d.tool_calls == [ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')]
    assert d.ttft_ns == 42 * MS  # a JSON body arrives at its first byte


def _chat_chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> object:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def test_openai_chat_stream_text_usage_and_time_to_first_token() -> None:
    chunks = sse(
        (None, _chat_chunk({"role": "assistant", "content": ""})),
        (None, _chat_chunk({"content": "Hello"})),
        (None, _chat_chunk({"content": " wörld"})),
        (None, _chat_chunk({}, "stop")),
        (
            None,
            {
                "id": "chatcmpl-s1",
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            },
        ),
        (None, b"[DONE]"),
    )
    d = _ok(derive(make_record(chunks=chunks, url=OPENAI_CHAT, chunk_step_ns=10 * MS)))
    assert d.text == "Hello wörld"
    assert (d.input_tokens, d.output_tokens, d.finish_reason) == (9, 2, "stop")
    assert d.model == "gpt-4o-mini-2024-07-18"
    assert d.response_id == "chatcmpl-s1"
    assert d.ttft_ns == 20 * MS  # the first chunk only carried the role, the second "Hello"


def test_openai_chat_stream_tool_call_fragments_are_joined() -> None:
    call = {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    chunks = sse(
        (None, _chat_chunk({"role": "assistant", "tool_calls": [call]})),
        (None, _chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]})),
        (None, _chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})),
        (None, _chat_chunk({}, "tool_calls")),
        (None, b"[DONE]"),
    )
    d = _ok(derive(make_record(chunks=chunks, url=OPENAI_CHAT)))
    assert d.tool_calls == [ToolCall(id="call_9", name="f", arguments='{"a":1}')]
    assert d.finish_reason == "tool_calls"
    assert d.text is None
    assert d.input_tokens is None  # no include_usage: OpenAI sends no usage in the stream


def test_gzip_stream_keeps_each_chunks_arrival_time() -> None:
    plain = sse(
        (None, _chat_chunk({"role": "assistant"})),
        (None, _chat_chunk({"content": "Hi"})),
        (None, _chat_chunk({}, "stop")),
        (None, b"[DONE]"),
    )
    compressor = zlib.compressobj(wbits=31)
    gz = [compressor.compress(c) + compressor.flush(zlib.Z_SYNC_FLUSH) for c in plain]
    # No final flush: the gzip trailer is missing, as when a stream is cut.
    record = make_record(
        chunks=gz, url=OPENAI_CHAT, headers=[("Content-Encoding", "gzip")], chunk_step_ns=MS
    )
    d = _ok(derive(record))
    assert (d.text, d.finish_reason, d.ttft_ns) == ("Hi", "stop", 2 * MS)
    assert record.decoded_body() == b"".join(plain)


# -- OpenAI Responses ----------------------------------------------------------------------

_RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1764000000,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"id": "rs_1", "type": "reasoning", "summary": []},
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Four.", "annotations": []}],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "call_id": "call_r1",
            "name": "lookup",
            "arguments": '{"q":"x"}',
            "status": "completed",
        },
    ],
    "usage": {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 42,
    },
    "incomplete_details": None,
}


def test_openai_responses_json() -> None:
    d = _ok(derive(make_record(body=orjson.dumps(_RESPONSE), url=OPENAI_RESPONSES)))
    assert d.parser == "openai.responses"
    assert (d.model, d.response_id, d.text, d.finish_reason) == (
        "gpt-4.1-2025-04-14",
        "resp_1",
        "Four.",
        "completed",
    )
    assert (d.input_tokens, d.output_tokens, d.cached_tokens, d.reasoning_tokens) == (30, 12, 10, 5)
    assert d.tool_calls == [ToolCall(id="call_r1", name="lookup", arguments='{"q":"x"}')]


def test_openai_responses_stream_uses_the_terminal_event() -> None:
    created = {**_RESPONSE, "status": "in_progress", "output": [], "usage": None}
    chunks = sse(
        (
            "response.created",
            {"type": "response.created", "response": created, "sequence_number": 0},
        ),
        (
            "response.output_text.delta",
            {"type": "response.output_text.delta", "delta": "Fo", "sequence_number": 1},
        ),
        (
            "response.output_text.delta",
            {"type": "response.output_text.delta", "delta": "ur.", "sequence_number": 2},
        ),
        ("response.completed", {"type": "response.completed", "response": _RESPONSE}),
    )
    d = _ok(derive(make_record(chunks=chunks, url=OPENAI_RESPONSES, chunk_step_ns=MS)))
    assert (d.text, d.input_tokens, d.output_tokens, d.ttft_ns) == ("Four.", 30, 12, 2 * MS)
    assert d.finish_reason == "completed"


def test_openai_responses_stream_cut_before_completion_keeps_the_deltas() -> None:
    chunks = sse(
        (
            "response.created",
            {"type": "response.created", "response": {"id": "resp_2", "model": "m"}},
        ),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Par"}),
    )
    chunks.append(b'event: response.output_text.delta\ndata: {"type":"resp')  # cut mid-event
    d = _ok(derive(make_record(chunks=chunks, url=OPENAI_RESPONSES, end_state="closed_early")))
    assert (d.text, d.response_id, d.model, d.finish_reason) == ("Par", "resp_2", "m", None)


def test_openai_responses_incomplete_reason() -> None:
    body = orjson.dumps(
        {**_RESPONSE, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    )
    assert derive(make_record(body=body, url=OPENAI_RESPONSES)).finish_reason == "max_output_tokens"


# -- Anthropic messages ----------------------------------------------------------------------


def test_anthropic_json_with_tool_use_and_cache_reads() -> None:
    body = orjson.dumps(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 50,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1200,
                "output_tokens": 33,
            },
        }
    )
    d = _ok(
        derive(make_record("anthropic", body, url=ANTHROPIC, headers=[("request-id", "req_a")]))
    )
    assert d.parser == "anthropic.messages"
    assert (d.model, d.response_id, d.request_id) == (
        "claude-sonnet-4-5-20250929",
        "msg_01",
        "req_a",
    )
    assert (d.input_tokens, d.output_tokens, d.cached_tokens) == (50, 33, 1200)
    assert (d.text, d.finish_reason) == ("Let me check.", "tool_use")
    assert d.tool_calls == [ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Oslo"}')]


def test_anthropic_stream_text_tool_input_and_usage() -> None:
    message: dict[str, Any] = {
        "id": "msg_s",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 3, "output_tokens": 1},
    }
    chunks = sse(
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_s", "name": "calc", "input": {}}},
        ),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"x": '}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "2}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 17}}),
        ("message_stop", {"type": "message_stop"}),
    )  # fmt: skip
    d = _ok(derive(make_record("anthropic", chunks=chunks, url=ANTHROPIC, chunk_step_ns=MS)))
    assert (d.text, d.finish_reason, d.model, d.response_id) == (
        "Hi there",
        "tool_use",
        "claude-haiku-4-5",
        "msg_s",
    )
    assert (d.input_tokens, d.output_tokens, d.cached_tokens) == (25, 17, 3)
    assert d.tool_calls == [ToolCall(id="toolu_s", name="calc", arguments='{"x":2}')]
    assert d.ttft_ns == 4 * MS  # message_start, block start and ping came first


def test_anthropic_error_event_in_stream() -> None:
    chunks = sse(
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    d = _ok(derive(make_record("anthropic", chunks=chunks, url=ANTHROPIC)))
    assert d.provider_error == "overloaded_error: Overloaded"


# -- Gemini -------------------------------------------------------------------------------------


def _gemini(
    text: str | None, finish: str | None, usage: dict[str, int], call: object = None
) -> dict[str, Any]:
    parts: list[object] = []
    if text is not None:
        parts.append({"text": text})
    if call is not None:
        parts.append({"functionCall": call})
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "gem-1",
    }


def test_gemini_json_with_function_call_thoughts_and_cache() -> None:
    usage = {
        "promptTokenCount": 40,
        "candidatesTokenCount": 6,
        "cachedContentTokenCount": 32,
        "thoughtsTokenCount": 11,
        "totalTokenCount": 57,
    }
    doc = _gemini("Sure.", "STOP", usage, call={"name": "search", "args": {"q": "rawtap"}})
    doc["candidates"][0]["content"]["parts"].insert(0, {"text": "thinking…", "thought": True})
    d = _ok(derive(make_record("gemini", orjson.dumps(doc), url=GEMINI)))
    assert d.parser == "gemini.generate"
    assert (d.model, d.response_id, d.text, d.finish_reason) == (
        "gemini-2.5-flash",
        "gem-1",
        "Sure.",
        "STOP",
    )
    assert (d.input_tokens, d.output_tokens, d.cached_tokens, d.reasoning_tokens) == (40, 6, 32, 11)
    assert d.tool_calls == [ToolCall(name="search", arguments='{"q":"rawtap"}')]


def test_gemini_sse_stream_and_json_array_stream_agree() -> None:
    pieces = [
        _gemini("One ", None, {"promptTokenCount": 8}),
        _gemini("two", None, {"promptTokenCount": 8}),
        _gemini(
            "", "STOP", {"promptTokenCount": 8, "candidatesTokenCount": 2, "totalTokenCount": 10}
        ),
    ]
    streamed = _ok(
        derive(make_record("gemini", chunks=sse(*[(None, p) for p in pieces]), url=GEMINI_SSE))
    )
    array_url = GEMINI_SSE.replace("?alt=sse", "")
    array = _ok(derive(make_record("gemini", orjson.dumps(pieces), url=array_url)))
    for d in (streamed, array):
        assert (d.text, d.finish_reason, d.input_tokens, d.output_tokens) == (
            "One two",
            "STOP",
            8,
            2,
        )
    assert streamed.ttft_ns == MS


def test_gemini_model_comes_from_the_url_when_the_body_is_an_error() -> None:
    body = orjson.dumps(
        {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}
    )
    d = _ok(derive(make_record("gemini", body, url=GEMINI, status=400)))
    assert d.model == "gemini-2.5-flash"
    assert d.provider_error == "INVALID_ARGUMENT: API key not valid."


# -- errors, odd bodies, dispatch ------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "url", "body", "expected"),
    [
        (
            "openai",
            OPENAI_CHAT,
            b'{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}',
            "requests: Rate limit reached",
        ),
        (
            "anthropic",
            ANTHROPIC,
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            "overloaded_error: Overloaded",
        ),
        ("openai", OPENAI_CHAT, b"<html><body>502 Bad Gateway</body></html>", "HTTP 429: <html>"),
    ],
)
def test_provider_errors_are_read_not_counted_as_failures(
    provider: str, url: str, body: bytes, expected: str
) -> None:
    d = derive(make_record(provider, body, url=url, status=429, request_body=b'{"model":"m-1"}'))
    assert not d.failed
    assert d.provider_error is not None
    assert d.provider_error.startswith(expected)
    assert d.model == "m-1"  # from the request


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": [',  # broken JSON
        bytes(range(256)),  # binary
        b"\xff\xfe\x00garbage",
        b'data: {"not json\n\n',  # a stream whose event is not JSON
        b'{"unrelated": true}',  # JSON, but not a chat completion
    ],
)
def test_unparseable_success_bodies_are_counted_never_raised(body: bytes) -> None:
    d = derive(make_record("openai", body, url=OPENAI_CHAT, request_body=b'{"model":"gpt-x"}'))
    assert d.failed
    assert d.parse_error
    assert "\n" not in d.parse_error
    assert d.parser == "openai.chat"
    assert d.model == "gpt-x"


def test_corrupt_gzip_is_a_parse_failure() -> None:
    d = derive(
        make_record(
            "openai", b"\x1f\x8bnot gzip", url=OPENAI_CHAT, headers=[("content-encoding", "gzip")]
        )
    )
    assert d.failed
    assert "gzip" in (d.parse_error or "")


def test_empty_bodies_and_transport_errors_are_not_failures() -> None:
    for record in (
        make_record("openai", b"", url=OPENAI_CHAT, status=204),
        make_record("openai", b"", url=OPENAI_CHAT, status=None, end_state="transport_error"),
    ):
        d = derive(record)
        assert not d.failed
        assert d.text is None


def test_parser_is_chosen_from_the_body_when_the_url_is_unknown() -> None:
    anthropic = b'{"id":"msg_1","type":"message","model":"claude","content":[{"type":"text","text":"x"}],"usage":{"input_tokens":1,"output_tokens":1}}'
    assert derive(make_record("custom", anthropic)).parser == "anthropic.messages"
    openrouter = b'{"id":"gen-1","object":"chat.completion","model":"openai/gpt-4o","choices":[{"index":0,"message":{"content":"ok"},"finish_reason":"stop"}]}'
    d = derive(
        make_record("openrouter", openrouter, url="https://openrouter.ai/api/v1/chat/completions")
    )
    assert (d.parser, d.text, d.model) == ("openai.chat", "ok", "openai/gpt-4o")
    assert derive(make_record("mystery", b"hello")).parser is None


def test_random_bytes_never_raise() -> None:
    rng = random.Random(5)
    for _ in range(300):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        prefix = rng.choice([b"", b"data: ", b"{", b"[", b"event: x\ndata: {"])
        url = rng.choice([OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC, GEMINI, None])
        enc = rng.choice([(), (("content-encoding", "gzip"),), (("content-encoding", "br"),)])
        d = derive(make_record("openai", prefix + body, url=url, headers=enc))
        assert isinstance(d, Derived)


def test_sse_events_handle_crlf_split_across_chunks_and_comments() -> None:
    pieces = [
        b": OPENROUTER PROCESSING\r\n\r",
        b'\ndata: {"a":1}\r',
        b"\n\r\ndata: x\n",
        b"data: y\n\n",
    ]
    events = sse_events(pieces)
    assert [(e.data, e.chunk) for e in events] == [('{"a":1}', 2), ("x\ny", 3)]


def test_sse_events_belong_to_the_piece_that_completes_their_blank_line() -> None:
    # A CR that ends a piece counts with the next piece, lone or half of a CRLF;
    # a CR that ends the body never completes an event.
    assert [(e.data, e.chunk) for e in sse_events([b"data: a\r", b"\rdata: b\n", b"", b"\n"])] == [
        ("a", 1),
        ("b", 3),
    ]
    assert sse_events([b"data: a\n\r"]) == []
    assert [(e.data, e.chunk) for e in sse_events([b"data: a\n", b"\ndata: b\n\n"])] == [
        ("a", 1),
        ("b", 1),
    ]


def test_staleness() -> None:
    assert is_stale(None)
    current = Derived(parser="openai.chat", parser_version=PARSER_VERSIONS["openai.chat"])
    assert not is_stale(current)
    assert is_stale(Derived(parser="openai.chat", parser_version=0))
    assert not is_stale(Derived())  # no parser applies: nothing to redo
