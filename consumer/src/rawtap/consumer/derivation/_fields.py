"""What a parser fills in (:class:`Fields`), what a provider module exports (:class:`Parser`).

And the small JSON coercion helpers every parser uses.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from rawtap.consumer.derivation._body import Body
from rawtap.consumer.derivation._derived import ToolCall
from rawtap.consumer.derivation._sse import SseEvent


@dataclass
class Fields:
    """Mutable working copy of the derived fields while a parser runs."""

    model: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None
    service_tier: str | None = None
    system_fingerprint: str | None = None
    finish_reason: str | None = None
    text: list[str] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    ttft_ns: int | None = None
    provider_error: str | None = None
    seen: bool = False
    """A recognizable document or event was read (otherwise the body is not this format)."""

    def add_text(self, text: Any) -> None:
        if isinstance(text, str):
            if self.text is None:
                self.text = []
            self.text.append(text)


@dataclass(frozen=True)
class Parser:
    """One provider wire format: how to recognize it and how to read it.

    ``read_json`` reads a whole JSON document (with the body's first-byte time);
    ``read_stream`` reads the server-sent events of a stream.
    """

    name: str
    version: int
    """Bump whenever the parser's output changes; ``rawtap rederive`` then recomputes."""
    matches_path: Callable[[str], bool]
    """True for a request URL path this format answers."""
    markers: tuple[bytes, ...]
    """Byte strings whose presence in the body's head identifies the format."""
    providers: frozenset[str]
    """Lower-case provider names that speak the format (the last resort): those whose entry in
    :data:`rawtap.shared.PROVIDERS` names this format, with their aliases."""
    operation: str
    """The GenAI operation of a call in this format (``gen_ai.operation.name``) when the URL
    does not name one."""
    read_json: Callable[[Any, Fields, int | None], None]
    read_stream: Callable[[list[SseEvent], Body, Fields], None]
    input_excludes_cache: bool = False
    """The format's input count leaves out cache reads and writes (Anthropic): the GenAI
    conventions' ``gen_ai.usage.input_tokens`` adds them."""
    output_excludes_reasoning: bool = False
    """The format's output count leaves out reasoning tokens (Gemini's thoughts): the
    conventions' ``gen_ai.usage.output_tokens`` adds them."""


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_arguments(text: str) -> str:
    """Stream fragments joined; re-serialized compactly when they form valid JSON."""
    if not text:
        return "{}"
    try:
        return json_text(orjson.loads(text))
    except orjson.JSONDecodeError:
        return text


def error_text(err: Any) -> str | None:
    if isinstance(err, str):
        return err
    err = as_dict(err)
    if not err:
        return None
    kind = err.get("type") or err.get("status") or err.get("code")
    message = err.get("message")
    if kind is not None and message:
        return f"{kind}: {message}"
    return str(message or kind)


def loads(data: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON ({e})") from e
