"""OpenRouter's wire format: OpenAI's chat completions under ``/api/v1``, with its keep-alives.

OpenRouter starts answering before the upstream model does: a JSON reply is
sent chunked and begins with newline padding, a stream begins with
``: OPENROUTER PROCESSING`` SSE comments. JSON parsers and SSE decoders
discard both, a raw capture keeps them. Usage is always in the stream's last
data chunk, and there is no request-id header (the body's ``gen-…`` id is the
handle).
"""

from __future__ import annotations

from typing import Any

from rawtap.tools.fake_provider._content import (
    CREATED,
    Usage,
    compact,
    hex_id,
    prompt_tokens,
    reply_pieces,
    reply_text,
)
from rawtap.tools.fake_provider._openai import retry_headers, sse_data
from rawtap.tools.fake_provider._reply import FRAMING, REASONS, Call, Headers, Reply, http_date

JSON = "application/json"
SSE = "text/event-stream"
PROCESSING = b": OPENROUTER PROCESSING\n\n"
PADDING = b"\n"
# How many keep-alives precede the first real byte.
KEEPALIVES = 2


def headers(seq: int, content_type: str, extra: list[tuple[str, str]] | None = None) -> Headers:
    """OpenRouter's response headers (Cloudflare in front)."""
    return [
        ("Date", http_date()),
        ("Content-Type", content_type),
        FRAMING,
        ("Connection", "keep-alive"),
        ("Access-Control-Allow-Origin", "*"),
        ("Cache-Control", "no-cache"),
        *(extra or []),
        ("Vary", "Accept-Encoding"),
        ("Server", "cloudflare"),
        ("CF-RAY", f"{hex_id(seq, 16)}-AMS"),
    ]


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cost": 0,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def error(seq: int, status: int, model: str, retry_after_ms: int | None, detail: str = "") -> Reply:
    """An OpenRouter error: ``{"error": {message, code, metadata}, "user_id": …}``."""
    messages = {
        400: detail or "Bad Request",
        401: "No auth credentials found",
        429: f"{model} is temporarily rate-limited upstream. Please retry shortly.",
        500: "Internal Server Error",
        503: "No endpoints found that can handle the request.",
        529: "Provider returned error",
    }
    err: dict[str, Any] = {"message": messages.get(status, detail), "code": status}
    if status == 429:
        err["metadata"] = {
            "raw": f"{model} is temporarily rate-limited upstream.",
            "provider_name": "OpenAI",
        }
    body = compact({"error": err, "user_id": "user_fake"})
    extra = retry_headers(retry_after_ms) if status in {429, 500, 503, 529} else []
    return Reply(status, REASONS[status], headers(seq, JSON, extra), body=body)


def chat_completion(call: Call) -> Reply:
    """``POST /api/v1/chat/completions``."""
    usage = Usage(prompt_tokens(call.body), call.words)
    gid = f"gen-{CREATED}-{hex_id(call.seq, 20)}"
    text = reply_text(call.words)
    base: dict[str, Any] = {
        "id": gid,
        "provider": "OpenAI",
        "model": call.model,
        "object": "chat.completion.chunk" if call.stream else "chat.completion",
        "created": CREATED,
    }
    if not call.stream:
        body = compact(
            {
                **base,
                "choices": [
                    {
                        "logprobs": None,
                        "finish_reason": "stop",
                        "native_finish_reason": "stop",
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "reasoning": None,
                        },
                    }
                ],
                "system_fingerprint": None,
                "usage": _usage(usage),
            }
        )
        return Reply(
            200,
            "OK",
            headers(call.seq, JSON),
            chunks=[PADDING] * KEEPALIVES + [body],
            text=text,
            usage=usage,
            finish_reason="stop",
            response_id=gid,
        )

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {
            "index": 0,
            "delta": delta,
            "finish_reason": finish,
            "native_finish_reason": finish,
            "logprobs": None,
        }
        return sse_data(compact({**base, "choices": [choice]}))

    chunks = [PROCESSING] * KEEPALIVES
    chunks += [
        chunk({"role": "assistant", "content": piece}, None) for piece in reply_pieces(call.words)
    ]
    chunks.append(chunk({"role": "assistant", "content": ""}, "stop"))
    chunks.append(sse_data(compact({**base, "choices": [], "usage": _usage(usage)})))
    chunks.append(sse_data(b"[DONE]"))
    return Reply(
        200,
        "OK",
        headers(call.seq, SSE),
        chunks=chunks,
        text=text,
        usage=usage,
        finish_reason="stop",
        response_id=gid,
    )
