"""OpenAI's wire format: chat completions and the Responses API, JSON and SSE.

Whole bodies are indented JSON (errors with four spaces, replies with two),
stream events are compact JSON; chat completion streams end with
``data: [DONE]``, Responses streams with ``event: response.completed``. A
chat stream carries usage only when the request asks for it
(``stream_options.include_usage``), as the real API does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rawtap.tools.fake_provider._content import (
    CREATED,
    Usage,
    compact,
    hex_id,
    pretty,
    prompt_tokens,
    reply_pieces,
    reply_text,
)
from rawtap.tools.fake_provider._reply import FRAMING, REASONS, Call, Headers, Reply, http_date

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
FINGERPRINT = "fp_fake0b1e5d"


def request_id(seq: int) -> str:
    """The ``x-request-id`` of exchange ``seq``."""
    return "req_" + hex_id(seq, 32)


def headers(seq: int, content_type: str, extra: Sequence[tuple[str, str]] = ()) -> Headers:
    """OpenAI's response headers, in the order its edge sends them."""
    return [
        ("Date", http_date()),
        ("Content-Type", content_type),
        FRAMING,
        ("Connection", "keep-alive"),
        ("access-control-expose-headers", "X-Request-ID"),
        ("openai-organization", "org-fake"),
        ("openai-processing-ms", "42"),
        ("openai-project", "proj_fake"),
        ("openai-version", "2020-10-01"),
        ("x-envoy-upstream-service-time", "44"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "10000000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "9999990"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-reset-tokens", "0s"),
        *extra,
        ("x-request-id", request_id(seq)),
        ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
        ("cf-cache-status", "DYNAMIC"),
        ("X-Content-Type-Options", "nosniff"),
        ("Server", "cloudflare"),
        ("CF-RAY", f"{hex_id(seq, 16)}-SJC"),
        ("alt-svc", 'h3=":443"; ma=86400'),
    ]


def retry_headers(retry_after_ms: int | None) -> Headers:
    """``retry-after-ms`` / ``retry-after`` as the Stainless SDKs read them (ms wins)."""
    if retry_after_ms is None:
        return []
    return [("retry-after-ms", str(retry_after_ms)), ("retry-after", str(retry_after_ms // 1000))]


_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "{detail}", None),
    401: (
        "invalid_request_error",
        "Incorrect API key provided: sk-fake. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
    ),
    429: (
        "requests",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20ms.",
        "rate_limit_exceeded",
    ),
    500: (
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    503: ("server_error", "The engine is currently overloaded, please try again later.", None),
    529: ("server_error", "The server is overloaded, please try again later.", None),
}


def error(seq: int, status: int, model: str, retry_after_ms: int | None, detail: str = "") -> Reply:
    """An OpenAI error response: ``{"error": {message, type, param, code}}``."""
    kind, message, code = _ERRORS.get(status, _ERRORS[400])
    body = pretty(
        {
            "error": {
                "message": message.format(model=model, detail=detail),
                "type": kind,
                "param": None,
                "code": code,
            }
        },
        indent=4,
    )
    extra = retry_headers(retry_after_ms) if status in {429, 500, 503, 529} else []
    return Reply(
        status,
        REASONS[status],
        headers(seq, JSON, extra),
        body=body,
        request_id=request_id(seq),
    )


def chat_usage(usage: Usage) -> dict[str, Any]:
    """Chat completions' usage object."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def sse_data(payload: bytes) -> bytes:
    """One ``data:`` event."""
    return b"data: " + payload + b"\n\n"


def chat_completion(call: Call) -> Reply:
    """``POST /v1/chat/completions``: a chat completion or a stream of chunks."""
    usage = Usage(prompt_tokens(call.body), call.words)
    cid = "chatcmpl-" + hex_id(call.seq, 29)
    text = reply_text(call.words)
    if not call.stream:
        body = pretty(
            {
                "id": cid,
                "object": "chat.completion",
                "created": CREATED,
                "model": call.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": chat_usage(usage),
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
            }
        )
        return Reply(
            200,
            "OK",
            headers(call.seq, JSON),
            body=body,
            text=text,
            usage=usage,
            finish_reason="stop",
            response_id=cid,
            request_id=request_id(call.seq),
        )
    options = call.payload.get("stream_options") or {}
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    base: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": call.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        event: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            event["usage"] = None
        return sse_data(compact(event))

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    chunks += [chunk({"content": piece}, None) for piece in reply_pieces(call.words)]
    chunks.append(chunk({}, "stop"))
    if include_usage:
        chunks.append(sse_data(compact({**base, "choices": [], "usage": chat_usage(usage)})))
    chunks.append(sse_data(b"[DONE]"))
    return Reply(
        200,
        "OK",
        headers(call.seq, SSE),
        chunks=chunks,
        text=text,
        usage=usage if include_usage else None,
        finish_reason="stop",
        response_id=cid,
        request_id=request_id(call.seq),
    )


def _response_object(
    call: Call, rid: str, status: str, output: list[Any], usage: Usage | None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": call.payload.get("instructions"),
        "max_output_tokens": call.payload.get("max_output_tokens"),
        "model": call.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        },
        "user": None,
        "metadata": {},
    }


def responses(call: Call) -> Reply:
    """``POST /v1/responses``: a response object or its stream of typed events."""
    usage = Usage(prompt_tokens(call.body), call.words)
    rid = "resp_" + hex_id(call.seq, 48)
    mid = "msg_" + hex_id(call.seq, 48)
    text = reply_text(call.words)
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {
        "id": mid,
        "type": "message",
        "status": "completed",
        "content": [part],
        "role": "assistant",
    }
    if not call.stream:
        body = pretty(_response_object(call, rid, "completed", [item], usage))
        return Reply(
            200,
            "OK",
            headers(call.seq, JSON),
            body=body,
            text=text,
            usage=usage,
            finish_reason="completed",
            response_id=rid,
            request_id=request_id(call.seq),
        )
    events: list[tuple[str, dict[str, Any]]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **fields}))

    in_progress = _response_object(call, rid, "in_progress", [], None)
    emit("response.created", response=in_progress)
    emit("response.in_progress", response=in_progress)
    where = {"item_id": mid, "output_index": 0, "content_index": 0}
    emit(
        "response.output_item.added",
        output_index=0,
        item={**item, "status": "in_progress", "content": []},
    )
    emit("response.content_part.added", **where, part={**part, "text": ""})
    for piece in reply_pieces(call.words):
        emit("response.output_text.delta", **where, delta=piece, logprobs=[])
    emit("response.output_text.done", **where, text=text, logprobs=[])
    emit("response.content_part.done", **where, part=part)
    emit("response.output_item.done", output_index=0, item=item)
    emit("response.completed", response=_response_object(call, rid, "completed", [item], usage))
    chunks = [f"event: {kind}\n".encode() + sse_data(compact(data)) for kind, data in events]
    return Reply(
        200,
        "OK",
        headers(call.seq, SSE),
        chunks=chunks,
        text=text,
        usage=usage,
        finish_reason="completed",
        response_id=rid,
        request_id=request_id(call.seq),
    )
