"""Anthropic's wire format: the Messages API, JSON and named SSE events.

Bodies and event data are compact JSON. A stream runs ``message_start``,
``content_block_start``, ``ping``, one ``content_block_delta`` per word,
``content_block_stop``, ``message_delta`` (stop reason and the final output
token count), ``message_stop``. The request id is the ``request-id`` header,
echoed as ``request_id`` in error bodies.
"""

from __future__ import annotations

from typing import Any

from rawtap.tools.fake_provider._content import (
    Usage,
    compact,
    hex_id,
    prompt_tokens,
    reply_pieces,
    reply_text,
)
from rawtap.tools.fake_provider._openai import retry_headers
from rawtap.tools.fake_provider._reply import FRAMING, REASONS, Call, Headers, Reply, http_date

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"


def request_id(seq: int) -> str:
    """The ``request-id`` of exchange ``seq``."""
    return "req_011CFake" + hex_id(seq, 14)


def headers(seq: int, content_type: str, extra: list[tuple[str, str]] | None = None) -> Headers:
    """Anthropic's response headers, in the order its edge sends them."""
    return [
        ("Date", http_date()),
        ("Content-Type", content_type),
        FRAMING,
        ("Connection", "keep-alive"),
        ("Cache-Control", "no-cache") if content_type == SSE else ("Vary", "Accept-Encoding"),
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", "3999"),
        ("anthropic-ratelimit-requests-reset", "2025-11-24T16:00:00Z"),
        ("anthropic-ratelimit-input-tokens-limit", "2000000"),
        ("anthropic-ratelimit-input-tokens-remaining", "2000000"),
        ("anthropic-ratelimit-output-tokens-limit", "400000"),
        ("anthropic-ratelimit-output-tokens-remaining", "400000"),
        *(extra or []),
        ("request-id", request_id(seq)),
        ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
        ("anthropic-organization-id", "00000000-0000-4000-8000-00000000fake"),
        ("via", "1.1 google"),
        ("cf-cache-status", "DYNAMIC"),
        ("X-Robots-Tag", "none"),
        ("Server", "cloudflare"),
        ("CF-RAY", f"{hex_id(seq, 16)}-LHR"),
    ]


_ERRORS = {
    400: ("invalid_request_error", "{detail}"),
    401: ("authentication_error", "invalid x-api-key"),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization "
        "(00000000-0000-4000-8000-00000000fake) of 50 input tokens per minute.",
    ),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


def error(seq: int, status: int, model: str, retry_after_ms: int | None, detail: str = "") -> Reply:
    """An Anthropic error: ``{"type": "error", "error": {type, message}, "request_id": …}``."""
    kind, message = _ERRORS.get(status, _ERRORS[400])
    body = compact(
        {
            "type": "error",
            "error": {"type": kind, "message": message.format(detail=detail, model=model)},
            "request_id": request_id(seq),
        }
    )
    extra = retry_headers(retry_after_ms) if status in {429, 500, 503, 529} else []
    return Reply(
        status, REASONS[status], headers(seq, JSON, extra), body=body, request_id=request_id(seq)
    )


def _usage(usage: Usage, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\n".encode() + b"data: " + compact({"type": kind, **data}) + b"\n\n"


def messages(call: Call) -> Reply:
    """``POST /v1/messages``: a message or its event stream."""
    usage = Usage(prompt_tokens(call.body), call.words)
    mid = "msg_01Fake" + hex_id(call.seq, 16)
    text = reply_text(call.words)
    message: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _usage(usage, usage.output_tokens),
    }
    if not call.stream:
        return Reply(
            200,
            "OK",
            headers(call.seq, JSON),
            body=compact(message),
            text=text,
            usage=usage,
            finish_reason="end_turn",
            response_id=mid,
            request_id=request_id(call.seq),
        )
    start = {**message, "content": [], "stop_reason": None, "usage": _usage(usage, 1)}
    chunks = [
        _event("message_start", {"message": start}),
        _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        _event("ping", {}),
    ]
    chunks += [
        _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        for piece in reply_pieces(call.words)
    ]
    chunks += [
        _event("content_block_stop", {"index": 0}),
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage.output_tokens},
            },
        ),
        _event("message_stop", {}),
    ]
    return Reply(
        200,
        "OK",
        headers(call.seq, SSE),
        chunks=chunks,
        text=text,
        usage=usage,
        finish_reason="end_turn",
        response_id=mid,
        request_id=request_id(call.seq),
    )
