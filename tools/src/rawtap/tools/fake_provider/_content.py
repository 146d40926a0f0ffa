"""Deterministic reply content: the words, their token counts, ids and JSON spellings.

Every reply is the first ``n`` words of a fixed cycle (one word = one output
token, one word per stream chunk), so a test knows the text and the usage a
response carries without parsing it. The prompt is counted as one token per
four request-body bytes (at least one), the usual rule of thumb.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Two non-ASCII words make multi-byte UTF-8 cross chunk boundaries and partial writes.
_VOCABULARY = (
    "Every",
    "byte",
    "the",
    "provider",
    "sends",
    "back",
    "is",
    "recorded",
    "—",
    "naïve",
    "café",
    "tokens",
    "and",
    "finish",
    "reasons",
    "too.",
)

# A fixed `created` timestamp keeps bodies identical from run to run.
CREATED = 1764000000


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts a response reports, whatever the provider calls them.

    ``input_tokens`` is OpenAI's ``prompt_tokens`` / Gemini's
    ``promptTokenCount``; ``output_tokens`` is ``completion_tokens`` /
    ``candidatesTokenCount``.
    """

    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def reply_words(count: int) -> list[str]:
    """The first ``count`` words of the reply cycle."""
    return [_VOCABULARY[i % len(_VOCABULARY)] for i in range(count)]


def reply_pieces(count: int) -> list[str]:
    """The reply as stream deltas: the first word, then each next word with its space."""
    words = reply_words(count)
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def reply_text(count: int) -> str:
    """The whole reply of ``count`` words."""
    return " ".join(reply_words(count))


def prompt_tokens(request_body: bytes) -> int:
    """Input tokens the fake provider reports for a request body."""
    return max(1, len(request_body) // 4)


def compact(value: object) -> bytes:
    """JSON as OpenAI and Anthropic stream it: no spaces, raw UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def pretty(value: object, indent: int = 2) -> bytes:
    """JSON as the providers return whole bodies: indented, raw UTF-8, newline-terminated."""
    return json.dumps(value, indent=indent, ensure_ascii=False).encode() + b"\n"


def google_inline(value: object) -> bytes:
    """JSON as Gemini streams it: ``": "`` after keys, no space after commas."""
    return json.dumps(value, separators=(",", ": "), ensure_ascii=False).encode()


def hex_id(seq: int, width: int = 24) -> str:
    """A stable, unique-per-exchange hexadecimal id."""
    return f"{seq:0{width}x}"
