"""Synthetic provider responses shaped like OpenAI, Anthropic and Gemini replies.

Used by ``rawtap demo`` (and tests) to exercise the pipeline without a network:
JSON bodies and SSE streams in each provider's wire format, with a little
variety in size and token counts.
"""

import random
from dataclasses import dataclass, field

import orjson

PROVIDERS = ("openai", "anthropic", "gemini")

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "rawtap",
    "records",
    "every",
    "byte",
    "that",
    "the",
    "provider",
    "sends",
    "back",
    "including",
    "usage",
    "tokens",
    "and",
    "finish",
    "reasons",
]


@dataclass(frozen=True, slots=True)
class SyntheticResponse:
    """One made-up exchange: what the provider "sent" and how."""

    provider: str
    model: str
    stream: bool
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)
    request_body: bytes = b""
    url: str = ""


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _sse(events: list[tuple[str | None, object]]) -> list[bytes]:
    out = []
    for name, data in events:
        head = f"event: {name}\n".encode() if name else b""
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        out.append(head + b"data: " + payload + b"\n\n")
    return out


def openai(rng: random.Random, stream: bool) -> SyntheticResponse:
    """A chat completion (``/v1/chat/completions``)."""
    model = "gpt-4o-mini"
    rid = f"chatcmpl-{rng.getrandbits(64):016x}"
    text = _text(rng, rng.randint(20, 200))
    usage = {
        "prompt_tokens": rng.randint(5, 500),
        "completion_tokens": len(text.split()),
        "total_tokens": 0,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    request = orjson.dumps(
        {
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": _text(rng, 12)}],
        }
    )
    url = "https://api.openai.com/v1/chat/completions"
    if not stream:
        body = orjson.dumps(
            {
                "id": rid,
                "object": "chat.completion",
                "created": 1764000000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage,
            }
        )
        return SyntheticResponse("openai", model, False, body=body, request_body=request, url=url)
    base = {"id": rid, "object": "chat.completion.chunk", "created": 1764000000, "model": model}
    events: list[tuple[str | None, object]] = [
        (
            None,
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            },
        )
        for word in text.split()
    ]
    events.append(
        (
            None,
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": usage,
            },
        )
    )
    events.append((None, b"[DONE]"))
    return SyntheticResponse(
        "openai", model, True, chunks=_sse(events), request_body=request, url=url
    )


def anthropic(rng: random.Random, stream: bool) -> SyntheticResponse:
    """A message (``/v1/messages``)."""
    model = "claude-sonnet-4-5"
    mid = f"msg_{rng.getrandbits(64):016x}"
    text = _text(rng, rng.randint(20, 200))
    usage = {"input_tokens": rng.randint(5, 500), "output_tokens": len(text.split())}
    request = orjson.dumps(
        {
            "model": model,
            "max_tokens": 1024,
            "stream": stream,
            "messages": [{"role": "user", "content": _text(rng, 12)}],
        }
    )
    url = "https://api.anthropic.com/v1/messages"
    if not stream:
        body = orjson.dumps(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        )
        return SyntheticResponse(
            "anthropic", model, False, body=body, request_body=request, url=url
        )
    events: list[tuple[str | None, object]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word + " "},
            },
        )
        for word in text.split()
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return SyntheticResponse(
        "anthropic", model, True, chunks=_sse(events), request_body=request, url=url
    )


def gemini(rng: random.Random, stream: bool) -> SyntheticResponse:
    """A ``generateContent`` / ``streamGenerateContent?alt=sse`` reply."""
    model = "gemini-2.5-flash"
    text = _text(rng, rng.randint(20, 200))
    usage = {"promptTokenCount": rng.randint(5, 500), "candidatesTokenCount": len(text.split())}
    usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
    request = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": _text(rng, 12)}]}]})
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    url = f"https://generativelanguage.googleapis.com/v1beta/models/{model}:{action}"

    def piece(words: str, finish: bool) -> dict[str, object]:
        cand: dict[str, object] = {
            "content": {"role": "model", "parts": [{"text": words}]},
            "index": 0,
        }
        if finish:
            cand["finishReason"] = "STOP"
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}

    if not stream:
        return SyntheticResponse(
            "gemini",
            model,
            False,
            body=orjson.dumps(piece(text, True)),
            request_body=request,
            url=url,
        )
    words = text.split()
    events: list[tuple[str | None, object]] = [
        (None, piece(" ".join(words[i : i + 8]) + " ", i + 8 >= len(words)))
        for i in range(0, len(words), 8)
    ]
    return SyntheticResponse(
        "gemini", model, True, chunks=_sse(events), request_body=request, url=url
    )


_MAKERS = {"openai": openai, "anthropic": anthropic, "gemini": gemini}


def responses(count: int, seed: int = 7) -> list[SyntheticResponse]:
    """``count`` responses cycling through the providers, every other one streamed."""
    rng = random.Random(seed)
    return [_MAKERS[PROVIDERS[i % 3]](rng, stream=(i // 3) % 2 == 1) for i in range(count)]
