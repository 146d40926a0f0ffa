"""The GenAI conventions, exactly, on records of exact wire payloads (issue #16, first part).

Each record goes through the worker's telemetry as one committed batch
(``tests.support.otel.emit``) and the span attributes and metric points are
compared with what the conventions (the installed
``opentelemetry-semantic-conventions``) say for that payload.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rawtap.consumer.derivation import derive
from rawtap.consumer.store._rows import derived_values
from rawtap.shared import EndState, Record
from tests.support.otel import emit, points
from tests.support.records import make_record, sse

ANTHROPIC = "https://api.anthropic.com/v1/messages"
OPENAI = "https://api.openai.com/v1"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
TOKEN_USAGE = "gen_ai.client.token.usage"


def _tokens(data: Any, record_model: str, kind: str) -> float:
    return sum(
        float(p.sum)
        for a, p in points(data, TOKEN_USAGE)
        if a.get("gen_ai.response.model") == record_model and a["gen_ai.token.type"] == kind
    )


# -- 1. usage: the conventions' totals on the wire, the provider's split in the store --------


def _anthropic_cached() -> Record:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_cache", "type": "message", "role": "assistant", "model": "claude-cache",
            "content": [], "stop_reason": None,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 1000,
                      "cache_creation_input_tokens": 200, "output_tokens": 1},
        },
    }  # fmt: skip
    chunks = sse(
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "hello"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    )  # fmt: skip
    request = b'{"model":"claude-cache","max_tokens":64,"stream":true,"messages":[]}'
    return make_record("anthropic", chunks=chunks, url=ANTHROPIC, request_body=request)


def test_anthropic_input_tokens_add_cache_reads_and_writes_and_the_store_keeps_the_split() -> None:
    record = _anthropic_cached()
    out = emit([record])
    attrs = out.attributes(record)
    assert attrs["gen_ai.usage.input_tokens"] == 10 + 1000 + 200
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 200
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert _tokens(out.metrics, "claude-cache", "input") == 1210
    assert _tokens(out.metrics, "claude-cache", "output") == 7
    # The provider's own split is what the store keeps (and `rawtap show` prints).
    derived = derive(record)
    assert (derived.input_tokens, derived.cached_tokens, derived.cache_write_tokens) == (
        10,
        1000,
        200,
    )
    assert "cache_write_tokens" not in derived.model_dump()
    row = derived_values(derived)
    assert 10 in row
    assert 1210 not in row


def test_openai_cached_and_reasoning_tokens_are_parts_of_its_totals() -> None:
    body = orjson.dumps(
        {
            "id": "chatcmpl-r", "object": "chat.completion", "model": "o-reason",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50,
                      "prompt_tokens_details": {"cached_tokens": 40},
                      "completion_tokens_details": {"reasoning_tokens": 30}},
        }
    )  # fmt: skip
    record = make_record(body=body, url=f"{OPENAI}/chat/completions")
    out = emit([record])
    attrs = out.attributes(record)
    # prompt_tokens already counts the cached ones, completion_tokens the reasoning ones.
    assert attrs["gen_ai.usage.input_tokens"] == 100
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 40
    assert attrs["gen_ai.usage.output_tokens"] == 50
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 30
    assert "gen_ai.usage.cache_creation.input_tokens" not in attrs
    assert _tokens(out.metrics, "o-reason", "input") == 100


def test_gemini_thoughts_are_output_tokens() -> None:
    body = orjson.dumps(
        {
            "candidates": [{"content": {"parts": [{"text": "4"}], "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3,
                              "thoughtsTokenCount": 30, "cachedContentTokenCount": 8,
                              "totalTokenCount": 45},
            "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
        }
    )  # fmt: skip
    record = make_record("gemini", body, url=f"{GEMINI}:generateContent")
    out = emit([record])
    attrs = out.attributes(record)
    # candidatesTokenCount leaves the thoughts out; promptTokenCount includes the cached part.
    assert attrs["gen_ai.usage.output_tokens"] == 3 + 30
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 30
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 8
    assert _tokens(out.metrics, "gemini-2.5-flash", "output") == 33
    assert derive(record).output_tokens == 3  # the store keeps Gemini's own count


# -- 2. server.port whenever server.address ---------------------------------------------------


def test_server_port_is_the_urls_or_the_schemes_on_spans_and_metrics() -> None:
    body = b'{"object":"chat.completion","model":"%s","choices":[],"usage":{"prompt_tokens":1}}'
    cases = {
        "https://api.openai.com/v1/chat/completions": ("m-https", 443),
        "http://localhost/v1/chat/completions": ("m-http", 80),
        "https://gateway.example:8443/v1/chat/completions": ("m-explicit", 8443),
    }
    records = {
        url: make_record(body=body % model.encode(), url=url) for url, (model, _) in cases.items()
    }
    out = emit(list(records.values()))
    for url, (model, port) in cases.items():
        attrs = out.attributes(records[url])
        assert attrs["server.port"] == port, url
        for name in (TOKEN_USAGE, "gen_ai.client.operation.duration"):
            mine = [a for a, _ in points(out.metrics, name) if a["gen_ai.response.model"] == model]
            assert mine, (name, url)
            assert all(a["server.port"] == port for a in mine), (name, url)


# -- 3. operation names by endpoint; none for endpoints that are no GenAI operation -----------

_CHAT = b'{"object":"chat.completion","model":"gpt-x","choices":[],"usage":{"prompt_tokens":2}}'
_EMBEDDINGS = (
    b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],'
    b'"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}'
)
_COMPLETION = (
    b'{"id":"cmpl-1","object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":'
    b'[{"text":"hi","index":0,"finish_reason":"length"}],'
    b'"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}'
)
_MODELS = b'{"object":"list","data":[{"id":"gpt-4o","object":"model","owned_by":"system"}]}'
_GEMINI_EMBED = b'{"embedding":{"values":[0.1,0.2]}}'
_GEMINI_BATCH = b'{"embeddings":[{"values":[0.1]},{"values":[0.2]}]}'
_RESPONSE = (
    b'{"id":"resp_1","object":"response","status":"completed","model":"gpt-4.1","output":[],'
    b'"usage":{"input_tokens":3,"output_tokens":2}}'
)

OPERATIONS: list[tuple[str, str, str, bytes, str | None]] = [
    ("openai", "POST", f"{OPENAI}/chat/completions", _CHAT, "chat"),
    ("openai", "POST", f"{OPENAI}/responses", _RESPONSE, "chat"),
    ("openai", "POST", f"{OPENAI}/completions", _COMPLETION, "text_completion"),
    ("openai", "POST", f"{OPENAI}/embeddings", _EMBEDDINGS, "embeddings"),
    ("gemini", "POST", f"{GEMINI}:embedContent", _GEMINI_EMBED, "embeddings"),
    ("gemini", "POST", f"{GEMINI}:batchEmbedContents", _GEMINI_BATCH, "embeddings"),
    ("openai", "GET", f"{OPENAI}/models", _MODELS, None),
    ("openai", "GET", f"{OPENAI}/models/gpt-4o", b'{"id":"gpt-4o","object":"model"}', None),
    ("openai", "GET", f"{OPENAI}/files", b'{"object":"list","data":[]}', None),
    ("openai", "POST", f"{OPENAI}/batches", b'{"id":"batch_1","object":"batch"}', None),
    ("gemini", "GET", "https://generativelanguage.googleapis.com/v1beta/models",
     b'{"models":[{"name":"models/gemini-2.5-flash"}]}', None),
    ("gemini", "POST", f"{GEMINI}:countTokens", b'{"totalTokens":3}', None),
    ("anthropic", "POST", f"{ANTHROPIC}/count_tokens", b'{"input_tokens":12}', None),
]  # fmt: skip


def test_each_endpoint_gets_its_operation_and_the_others_none() -> None:
    records = [
        make_record(provider, body, url=url, request_body=b'{"model":"req-m"}').model_copy(
            update={"method": method}
        )
        for provider, method, url, body, _ in OPERATIONS
    ]
    out = emit(records)
    durations = points(out.metrics, "gen_ai.client.operation.duration")
    for record, (_, _, url, _, operation) in zip(records, OPERATIONS, strict=True):
        attrs = out.attributes(record)
        if operation is None:
            assert not [k for k in attrs if k.startswith("gen_ai.")], (url, attrs)
            assert out.spans[record.record_id].name == f"{record.method} {record.provider}"
            assert "rawtap.parse_error" not in attrs, url  # never misread as a chat
        else:
            assert attrs["gen_ai.operation.name"] == operation, url
            assert out.spans[record.record_id].name == f"{operation} req-m", url
    # Only the GenAI operations feed the GenAI metrics, each once, under its operation.
    want = sorted(op for *_, op in OPERATIONS if op is not None)
    assert sorted(a["gen_ai.operation.name"] for a, p in durations for _ in range(p.count)) == want
    # An embeddings response's usage counts as input, its model as the response model.
    (embedding,) = [a for a, _ in points(out.metrics, TOKEN_USAGE)
                    if a["gen_ai.operation.name"] == "embeddings"]  # fmt: skip
    assert embedding["gen_ai.response.model"] == "text-embedding-3-small"
    # An endpoint no parser reads still says what its error was.
    refused = make_record(body=b'{"error":{"message":"no"}}', url=f"{OPENAI}/models", status=401)
    assert derive(refused).provider_error == 'HTTP 401: {"error":{"message":"no"}}'
    legacy = out.attributes(records[2])
    assert list(legacy["gen_ai.response.finish_reasons"]) == ["length"]
    assert legacy["gen_ai.usage.output_tokens"] == 1
    assert out.attributes(records[1])["openai.api.type"] == "responses"
    assert out.attributes(records[0])["openai.api.type"] == "chat_completions"


# -- 5. finish reasons of a cut stream; the stream flags; the deprecated system ----------------

_CHAT_CHUNKS = sse(
    (None, {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}}]}),
    (None, {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": "b"}}]}),
)  # fmt: skip


@pytest.mark.parametrize(
    "state", [EndState.ERROR, EndState.CLOSED_EARLY, EndState.CANCELLED, EndState.ABANDONED]
)
def test_a_stream_cut_before_the_model_finished_has_finish_reason_error(state: EndState) -> None:
    record = make_record(
        chunks=_CHAT_CHUNKS, url=f"{OPENAI}/chat/completions", end_state=state,
        request_body=b'{"model":"gpt-x","stream":true}',
    )  # fmt: skip
    assert list(emit([record]).attributes(record)["gen_ai.response.finish_reasons"]) == ["error"]


def test_a_call_that_never_got_a_response_has_finish_reason_error() -> None:
    record = make_record(
        url=f"{OPENAI}/chat/completions", status=None, first_byte_ns=None,
        end_state=EndState.TRANSPORT_ERROR, error="ConnectError: refused",
        request_body=b'{"model":"gpt-x"}',
    )  # fmt: skip
    attrs = emit([record]).attributes(record)
    assert list(attrs["gen_ai.response.finish_reasons"]) == ["error"]
    assert attrs["error.type"] == "transport_error"


# -- docs/observability.md lists every attribute and metric -----------------------------------


def _documented() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()


def test_every_emitted_attribute_and_metric_is_in_the_docs_table() -> None:
    import re

    from rawtap.consumer.telemetry._metrics import COUNTERS, RECORD_HISTOGRAMS

    records = [
        _anthropic_cached(),
        make_record(
            body=_CHAT, url=f"{OPENAI}/chat/completions", session_id="s", call_id="c", attempt=2,
            truncated=True, request_body=orjson.dumps({
                "model": "gpt-x", "temperature": 0, "top_p": 1, "max_tokens": 5, "seed": 1,
                "stop": "x", "n": 2, "frequency_penalty": 0, "presence_penalty": 0,
                "response_format": {"type": "json_schema"}, "service_tier": "flex",
            }),
        ),
        make_record(body=_EMBEDDINGS, url=f"{OPENAI}/embeddings", request_body=orjson.dumps(
            {"model": "e", "input": "x", "encoding_format": "float", "dimensions": 8}
        )),
        make_record("gemini", b'{"candidates":[], "usageMetadata": {"thoughtsTokenCount": 2}}',
                    url=f"{GEMINI}:generateContent", request_body=b'{"generationConfig":{"topK":3}}'),
        make_record(chunks=_CHAT_CHUNKS, url=f"{OPENAI}/chat/completions", status=429,
                    end_state=EndState.ERROR, headers=[("x-request-id", "req_1")]),
        make_record(body=b"not json", url=f"{OPENAI}/chat/completions"),
    ]  # fmt: skip
    out = emit(records)
    keys = {k for span in out.spans.values() for k in (span.attributes or {})}
    keys |= {k for span in out.spans.values() for e in span.events for k in (e.attributes or {})}
    metric_keys = {k for m in ("gen_ai.client.token.usage", "gen_ai.client.operation.duration")
                   for a, _ in points(out.metrics, m) for k in a}  # fmt: skip
    docs = _documented()
    documented = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", docs))
    # A row may list siblings by their last part (`gen_ai.request.temperature`, `.top_p`).
    for row in re.findall(r"^\|.*$", docs, re.MULTILINE):
        head = re.search(r"`([a-z_.]+)\.[a-z_]+`", row)
        for tail in re.findall(r"`(\.[a-z_]+)`", row):
            if head:
                documented.add(head.group(1) + tail)
    assert len(keys) > 40
    assert keys - documented == set()
    assert metric_keys - documented == set()
    names = {name for name, *_ in RECORD_HISTOGRAMS} | {n for n, *_ in COUNTERS.values()}
    names |= {"messaging.client.consumed.messages", "messaging.process.duration"}
    missing = {n for n in names if f"`{n}`" not in docs and n.rpartition(".")[2] not in docs}
    assert missing == set()
