"""Gemini's wire format: ``generateContent`` and ``streamGenerateContent?alt=sse``.

Served under ``/v1``, ``/v1beta`` and ``/v1alpha`` alike (google-genai 3.x
defaults to ``v1`` for the Gemini API).

Whole bodies (replies and errors) are two-space indented JSON; stream events
are ``data: …`` lines with Google's inline JSON spelling, terminated by CRLF
CRLF. Every stream chunk carries ``usageMetadata`` (output counted so far);
the last carries ``finishReason: STOP``. Google's front end sends ``Vary``
three times and no request-id header: the body's ``responseId`` is the handle.
"""

from __future__ import annotations

from typing import Any

from rawtap.tools.fake_provider._content import (
    Usage,
    google_inline,
    hex_id,
    pretty,
    prompt_tokens,
    reply_pieces,
    reply_text,
)
from rawtap.tools.fake_provider._reply import FRAMING, REASONS, Call, Headers, Reply, http_date

JSON = "application/json; charset=UTF-8"
SSE = "text/event-stream"


def headers(seq: int, content_type: str) -> Headers:
    """Google's response headers, in the order its front end sends them."""
    return [
        ("Content-Type", content_type),
        ("Vary", "Origin"),
        ("Vary", "X-Origin"),
        ("Vary", "Referer"),
        FRAMING,
        ("Date", http_date()),
        ("Server", "scaffolding on HTTPServer2"),
        ("X-XSS-Protection", "0"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-Content-Type-Options", "nosniff"),
        ("Server-Timing", f"gfet4t7; dur={300 + seq % 100}"),
        ("Alt-Svc", 'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000'),
    ]


_ERRORS = {
    400: ("INVALID_ARGUMENT", "{detail}"),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    ),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    529: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def error(seq: int, status: int, model: str, detail: str = "") -> Reply:
    """A Google API error: ``{"error": {code, message, status}}``, indented."""
    kind, message = _ERRORS.get(status, _ERRORS[400])
    err: dict[str, Any] = {
        "code": status,
        "message": message.format(detail=detail, model=model),
        "status": kind,
    }
    if status == 429:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}]
    return Reply(status, REASONS[status], headers(seq, JSON), body=pretty({"error": err}))


def _usage(usage: Usage, output_tokens: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"promptTokenCount": usage.input_tokens}
    if output_tokens:
        meta["candidatesTokenCount"] = output_tokens
    meta["totalTokenCount"] = usage.input_tokens + output_tokens
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.input_tokens}]
    return meta


def _candidate(text: str, finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    return candidate


def generate(call: Call) -> Reply:
    """``:generateContent`` or ``:streamGenerateContent?alt=sse``."""
    usage = Usage(prompt_tokens(call.body), call.words)
    rid = "fake" + hex_id(call.seq, 18)
    text = reply_text(call.words)
    if not call.stream:
        body = pretty(
            {
                "candidates": [_candidate(text, finish=True)],
                "usageMetadata": _usage(usage, usage.output_tokens),
                "modelVersion": call.model,
                "responseId": rid,
            }
        )
        return Reply(
            200,
            "OK",
            headers(call.seq, JSON),
            body=body,
            text=text,
            usage=usage,
            finish_reason="STOP",
            response_id=rid,
        )
    pieces = reply_pieces(call.words)
    chunks = [
        b"data: "
        + google_inline(
            {
                "candidates": [_candidate(piece, finish=i == len(pieces) - 1)],
                "usageMetadata": _usage(usage, i + 1),
                "modelVersion": call.model,
                "responseId": rid,
            }
        )
        + b"\r\n\r\n"
        for i, piece in enumerate(pieces)
    ]
    return Reply(
        200,
        "OK",
        headers(call.seq, SSE),
        chunks=chunks,
        text=text,
        usage=usage,
        finish_reason="STOP",
        response_id=rid,
    )
