"""The parser registry: each wire format's parser and version, and how one is picked."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rawtap.consumer.derivation._fields import Body, Fields
from rawtap.consumer.derivation._providers._anthropic import anthropic_json, anthropic_stream
from rawtap.consumer.derivation._providers._gemini import gemini_json, gemini_stream
from rawtap.consumer.derivation._providers._openai_chat import chat_json, chat_stream
from rawtap.consumer.derivation._providers._openai_responses import responses_json, responses_stream
from rawtap.consumer.derivation._sse import SseEvent

PARSER_VERSIONS: dict[str, int] = {
    "openai.chat": 1,
    "openai.responses": 1,
    "anthropic.messages": 1,
    "gemini.generate": 1,
}
"""Every parser's current version, by name."""


@dataclass(frozen=True)
class Parser:
    name: str
    read_json: Callable[[Any, Fields, int | None], None]
    read_stream: Callable[[list[SseEvent], Body, Fields], None]

    @property
    def version(self) -> int:
        return PARSER_VERSIONS[self.name]


PARSERS = {
    "openai.chat": Parser("openai.chat", lambda d, f, _o: chat_json(d, f), chat_stream),
    "openai.responses": Parser(
        "openai.responses", lambda d, f, _o: responses_json(d, f), responses_stream
    ),
    "anthropic.messages": Parser(
        "anthropic.messages", lambda d, f, _o: anthropic_json(d, f), anthropic_stream
    ),
    "gemini.generate": Parser("gemini.generate", gemini_json, gemini_stream),
}


def pick_by_url(url: str | None) -> str | None:
    if not url:
        return None
    path = urlsplit(url).path
    if path.endswith("/chat/completions"):
        return "openai.chat"
    if path.endswith("/responses"):
        return "openai.responses"
    if path.endswith("/messages"):
        return "anthropic.messages"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini.generate"
    return None


def pick_by_content(provider: str, head: bytes) -> str | None:
    if b'"candidates"' in head or b'"usageMetadata"' in head:
        return "gemini.generate"
    if b"message_start" in head or b'"type":"message"' in head:
        return "anthropic.messages"
    if b'"object":"response"' in head or b"response.created" in head:
        return "openai.responses"
    if b"chat.completion" in head:
        return "openai.chat"
    name = provider.lower()
    if name in {"anthropic", "claude"}:
        return "anthropic.messages"
    if name in {"gemini", "google", "google-genai", "vertex", "vertexai"}:
        return "gemini.generate"
    if name in {"openai", "openrouter", "azure", "azure-openai"}:
        return "openai.chat"
    return None
