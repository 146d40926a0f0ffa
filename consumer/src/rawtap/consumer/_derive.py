"""Derivation: versioned per-provider parsers that read raw bodies into :class:`Derived`.

``derive(record)`` picks a parser from the request URL (``/chat/completions``,
``/responses``, ``/messages``, ``:generateContent``), else from the provider
name and the body itself; undoes the ``Content-Encoding``; reads a JSON body or
the server-sent events of a stream chunk by chunk (so the time to first token is
the arrival time of the chunk that carried it); and never raises: a body it
cannot read yields a :class:`Derived` whose ``parse_error`` says why.

Parsers and their versions (bump a version whenever a parser's output changes,
then ``rawtap rederive`` brings stored records up to date)::

    openai.chat         OpenAI chat completions (also OpenRouter, Azure, compatible servers)
    openai.responses    OpenAI Responses API
    anthropic.messages  Anthropic messages
    gemini.generate     Gemini generateContent / streamGenerateContent (SSE or JSON array)
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from rawtap.consumer._derived import Derived, ToolCall
from rawtap.consumer._unmasked import mask_derived
from rawtap.shared import BodyDecodeError, Record

logger = logging.getLogger(__name__)

PARSER_VERSIONS: dict[str, int] = {
    "openai.chat": 1,
    "openai.responses": 1,
    "anthropic.messages": 1,
    "gemini.generate": 1,
}
"""Every parser's current version, by name."""

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id")
_SNIFF_BYTES = 4096


class SseEvent(NamedTuple):
    """One server-sent event and the index of the chunk whose arrival completed it."""

    name: str | None
    data: str
    chunk: int


def sse_events(pieces: Sequence[bytes]) -> list[SseEvent]:
    """The events in a body delivered as ``pieces`` (any line ending; an unterminated tail dropped).

    As the SSE specification says, an event is dispatched at the blank line that
    ends it, so a stream cut in the middle of an event does not yield half of it.
    """
    events: list[SseEvent] = []
    pending = b""
    held_cr = b""
    for index, piece in enumerate(pieces):
        data = held_cr + piece
        held_cr = b""
        if data.endswith(b"\r"):  # may be the first half of a CRLF split across chunks
            data, held_cr = data[:-1], b"\r"
        pending += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while True:
            end = pending.find(b"\n\n")
            if end < 0:
                break
            block, pending = pending[:end], pending[end + 2 :]
            event = _parse_block(block, index)
            if event is not None:
                events.append(event)
    return events


def _parse_block(block: bytes, chunk: int) -> SseEvent | None:
    name: str | None = None
    data: list[str] = []
    for raw_line in block.split(b"\n"):
        line = raw_line.decode("utf-8", errors="replace")
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    if not data:
        return None
    return SseEvent(name, "\n".join(data), chunk)


@dataclass
class _Fields:
    """Mutable working copy of the derived fields while a parser runs."""

    model: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
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


class _Body(NamedTuple):
    pieces: list[bytes]
    offsets: list[int | None]


# -- small readers -----------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _normalize_arguments(text: str) -> str:
    """Stream fragments joined; re-serialized compactly when they form valid JSON."""
    if not text:
        return "{}"
    try:
        return _json_text(orjson.loads(text))
    except orjson.JSONDecodeError:
        return text


def _error_text(err: Any) -> str | None:
    if isinstance(err, str):
        return err
    err = _dict(err)
    if not err:
        return None
    kind = err.get("type") or err.get("status") or err.get("code")
    message = err.get("message")
    if kind is not None and message:
        return f"{kind}: {message}"
    return str(message or kind)


def _loads(data: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON ({e})") from e


# -- OpenAI chat completions ---------------------------------------------------------


def _chat_usage(usage: Any, f: _Fields) -> None:
    usage = _dict(usage)
    if not usage:
        return
    f.input_tokens = _int(usage.get("prompt_tokens"))
    f.output_tokens = _int(usage.get("completion_tokens"))
    f.cached_tokens = _int(_dict(usage.get("prompt_tokens_details")).get("cached_tokens"))
    f.reasoning_tokens = _int(_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))


def _first_choice(doc: dict[str, Any]) -> dict[str, Any] | None:
    choices = [c for c in _list(doc.get("choices")) if isinstance(c, dict)]
    for choice in choices:
        if choice.get("index", 0) == 0:
            return choice
    return None


def _chat_json(doc: Any, f: _Fields) -> None:
    doc = _dict(doc)
    if "error" in doc:
        f.provider_error = _error_text(doc["error"])
        f.seen = True
    if not ({"choices", "usage", "model"} & doc.keys()):
        return
    f.seen = True
    f.model = _str(doc.get("model")) or f.model
    f.response_id = _str(doc.get("id"))
    _chat_usage(doc.get("usage"), f)
    choice = _first_choice(doc)
    if choice is None:
        return
    f.finish_reason = _str(choice.get("finish_reason"))
    message = _dict(choice.get("message"))
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            f.add_text(_dict(part).get("text"))
    else:
        f.add_text(content)
    for raw_call in _list(message.get("tool_calls")):
        call = _dict(raw_call)
        function = _dict(call.get("function"))
        f.tool_calls.append(
            ToolCall(
                id=_str(call.get("id")),
                name=_str(function.get("name")),
                arguments=_str(function.get("arguments")) or "",
            )
        )
    legacy = _dict(message.get("function_call"))
    if legacy:
        f.tool_calls.append(
            ToolCall(name=_str(legacy.get("name")), arguments=_str(legacy.get("arguments")) or "")
        )


def _chat_stream(events: list[SseEvent], body: _Body, f: _Fields) -> None:
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.data.strip() == "[DONE]":
            f.seen = True
            continue
        doc = _dict(_loads(event.data, "a stream event"))
        if "error" in doc:
            f.provider_error = _error_text(doc["error"])
            f.seen = True
        if not ({"choices", "usage", "model", "id"} & doc.keys()):
            continue
        f.seen = True
        f.model = f.model if f.model and "model" not in doc else _str(doc.get("model")) or f.model
        f.response_id = f.response_id or _str(doc.get("id"))
        if doc.get("usage"):
            _chat_usage(doc["usage"], f)
        choice = _first_choice(doc)
        if choice is None:
            continue
        delta = _dict(choice.get("delta"))
        content = delta.get("content")
        produced = False
        if isinstance(content, str) and content:
            f.add_text(content)
            produced = True
        for raw_call in _list(delta.get("tool_calls")):
            call = _dict(raw_call)
            slot = calls.setdefault(
                _int(call.get("index")) or 0, {"id": None, "name": None, "args": []}
            )
            slot["id"] = slot["id"] or _str(call.get("id"))
            function = _dict(call.get("function"))
            slot["name"] = slot["name"] or _str(function.get("name"))
            if isinstance(function.get("arguments"), str):
                slot["args"].append(function["arguments"])
            produced = True
        if produced and f.ttft_ns is None:
            f.ttft_ns = body.offsets[event.chunk]
        if choice.get("finish_reason"):
            f.finish_reason = _str(choice["finish_reason"])
    for _, slot in sorted(calls.items()):
        f.tool_calls.append(
            ToolCall(id=slot["id"], name=slot["name"], arguments="".join(slot["args"]))
        )


# -- OpenAI Responses ------------------------------------------------------------------


def _response_object(resp: Any, f: _Fields) -> None:
    resp = _dict(resp)
    if not resp:
        return
    f.seen = True
    f.model = _str(resp.get("model")) or f.model
    f.response_id = _str(resp.get("id")) or f.response_id
    incomplete = _dict(resp.get("incomplete_details"))
    f.finish_reason = _str(incomplete.get("reason")) or _str(resp.get("status"))
    if resp.get("error"):
        f.provider_error = _error_text(resp["error"])
    usage = _dict(resp.get("usage"))
    if usage:
        f.input_tokens = _int(usage.get("input_tokens"))
        f.output_tokens = _int(usage.get("output_tokens"))
        f.cached_tokens = _int(_dict(usage.get("input_tokens_details")).get("cached_tokens"))
        f.reasoning_tokens = _int(_dict(usage.get("output_tokens_details")).get("reasoning_tokens"))
    output = _list(resp.get("output"))
    if output:
        f.text = None
        f.tool_calls = []
    for raw_item in output:
        item = _dict(raw_item)
        kind = item.get("type")
        if kind == "message":
            for raw_part in _list(item.get("content")):
                part = _dict(raw_part)
                if part.get("type") == "output_text":
                    f.add_text(part.get("text"))
        elif kind in {"function_call", "custom_tool_call"}:
            f.tool_calls.append(_responses_call(item))


def _responses_call(item: dict[str, Any]) -> ToolCall:
    args = item.get("arguments", item.get("input"))
    return ToolCall(
        id=_str(item.get("call_id")) or _str(item.get("id")),
        name=_str(item.get("name")),
        arguments=args if isinstance(args, str) else _json_text(args or {}),
    )


def _responses_json(doc: Any, f: _Fields) -> None:
    doc = _dict(doc)
    if "error" in doc and doc.get("object") != "response":
        f.provider_error = _error_text(doc["error"])
        f.seen = True
        return
    if doc.get("object") == "response" or "output" in doc:
        _response_object(doc, f)


_RESPONSES_TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def _responses_stream(events: list[SseEvent], body: _Body, f: _Fields) -> None:
    terminal: Any = None
    calls: list[ToolCall] = []
    for event in events:
        doc = _dict(_loads(event.data, "a stream event"))
        kind = doc.get("type") or event.name
        if not isinstance(kind, str):
            continue
        f.seen = True
        if kind in _RESPONSES_TERMINAL:
            terminal = doc.get("response")
        elif kind in {"response.created", "response.in_progress"}:
            resp = _dict(doc.get("response"))
            f.model = _str(resp.get("model")) or f.model
            f.response_id = _str(resp.get("id")) or f.response_id
        elif kind == "response.output_text.delta":
            delta = doc.get("delta")
            if isinstance(delta, str) and delta:
                f.add_text(delta)
                if f.ttft_ns is None:
                    f.ttft_ns = body.offsets[event.chunk]
        elif kind == "response.function_call_arguments.delta":
            if f.ttft_ns is None:
                f.ttft_ns = body.offsets[event.chunk]
        elif kind == "response.output_item.done":
            item = _dict(doc.get("item"))
            if item.get("type") in {"function_call", "custom_tool_call"}:
                calls.append(_responses_call(item))
        elif kind == "error":
            f.provider_error = _error_text(doc.get("error") or doc)
    if terminal is not None:
        _response_object(terminal, f)  # authoritative: replaces what the deltas built
    else:
        f.tool_calls = calls


# -- Anthropic messages --------------------------------------------------------------


def _anthropic_usage(usage: Any, f: _Fields) -> None:
    usage = _dict(usage)
    if "input_tokens" in usage and _int(usage["input_tokens"]) is not None:
        f.input_tokens = _int(usage["input_tokens"])
    if "output_tokens" in usage and _int(usage["output_tokens"]) is not None:
        f.output_tokens = _int(usage["output_tokens"])
    if _int(usage.get("cache_read_input_tokens")) is not None:
        f.cached_tokens = _int(usage["cache_read_input_tokens"])


def _anthropic_json(doc: Any, f: _Fields) -> None:
    doc = _dict(doc)
    if doc.get("type") == "error" or ("error" in doc and "content" not in doc):
        f.provider_error = _error_text(doc.get("error"))
        f.seen = True
        return
    if not ({"content", "usage", "model"} & doc.keys()):
        return
    f.seen = True
    f.model = _str(doc.get("model")) or f.model
    f.response_id = _str(doc.get("id"))
    f.finish_reason = _str(doc.get("stop_reason"))
    _anthropic_usage(doc.get("usage"), f)
    for raw_block in _list(doc.get("content")):
        block = _dict(raw_block)
        if block.get("type") == "text":
            f.add_text(block.get("text"))
        elif block.get("type") in {"tool_use", "server_tool_use"}:
            f.tool_calls.append(
                ToolCall(
                    id=_str(block.get("id")),
                    name=_str(block.get("name")),
                    arguments=_json_text(block.get("input") or {}),
                )
            )


def _anthropic_stream(events: list[SseEvent], body: _Body, f: _Fields) -> None:  # noqa: C901 - one pass over the event types
    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        doc = _dict(_loads(event.data, "a stream event"))
        kind = doc.get("type") or event.name
        if not isinstance(kind, str):
            continue
        f.seen = True
        if kind == "message_start":
            message = _dict(doc.get("message"))
            f.model = _str(message.get("model")) or f.model
            f.response_id = _str(message.get("id"))
            _anthropic_usage(message.get("usage"), f)
        elif kind == "content_block_start":
            block = _dict(doc.get("content_block"))
            slot: dict[str, Any] = {
                "type": block.get("type"),
                "text": [],
                "json": [],
                "block": block,
            }
            blocks[_int(doc.get("index")) or 0] = slot
            if isinstance(block.get("text"), str) and block["text"]:
                slot["text"].append(block["text"])
            if block.get("type") in {"tool_use", "server_tool_use"} and f.ttft_ns is None:
                f.ttft_ns = body.offsets[event.chunk]
        elif kind == "content_block_delta":
            delta = _dict(doc.get("delta"))
            slot = blocks.setdefault(
                _int(doc.get("index")) or 0, {"type": "text", "text": [], "json": [], "block": {}}
            )
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                slot["text"].append(delta["text"])
                if delta["text"] and f.ttft_ns is None:
                    f.ttft_ns = body.offsets[event.chunk]
            elif delta.get("type") == "input_json_delta" and isinstance(
                delta.get("partial_json"), str
            ):
                slot["json"].append(delta["partial_json"])
        elif kind == "message_delta":
            delta = _dict(doc.get("delta"))
            if delta.get("stop_reason"):
                f.finish_reason = _str(delta["stop_reason"])
            _anthropic_usage(doc.get("usage"), f)
        elif kind == "error":
            f.provider_error = _error_text(doc.get("error"))
    for _, slot in sorted(blocks.items()):
        if slot["type"] == "text":
            f.add_text("".join(slot["text"]))
        elif slot["type"] in {"tool_use", "server_tool_use"}:
            block = slot["block"]
            joined = "".join(slot["json"])
            f.tool_calls.append(
                ToolCall(
                    id=_str(block.get("id")),
                    name=_str(block.get("name")),
                    arguments=_normalize_arguments(joined)
                    if joined
                    else _json_text(block.get("input") or {}),
                )
            )


# -- Gemini generateContent ------------------------------------------------------------


def _gemini_piece(doc: Any, f: _Fields, offset: int | None) -> None:
    doc = _dict(doc)
    if "error" in doc and "candidates" not in doc:
        f.provider_error = _error_text(doc["error"])
        f.seen = True
        return
    if not ({"candidates", "usageMetadata", "promptFeedback", "modelVersion"} & doc.keys()):
        return
    f.seen = True
    f.model = _str(doc.get("modelVersion")) or f.model
    f.response_id = _str(doc.get("responseId")) or f.response_id
    usage = _dict(doc.get("usageMetadata"))
    if usage:
        f.input_tokens = _int(usage.get("promptTokenCount"))
        f.output_tokens = _int(usage.get("candidatesTokenCount"))
        f.cached_tokens = _int(usage.get("cachedContentTokenCount"))
        f.reasoning_tokens = _int(usage.get("thoughtsTokenCount"))
    blocked = _dict(doc.get("promptFeedback")).get("blockReason")
    if blocked:
        f.finish_reason = _str(blocked)
    candidates = [c for c in _list(doc.get("candidates")) if isinstance(c, dict)]
    candidate = next((c for c in candidates if c.get("index", 0) == 0), None)
    if candidate is None:
        return
    if candidate.get("finishReason"):
        f.finish_reason = _str(candidate["finishReason"])
    produced = False
    for raw_part in _list(_dict(candidate.get("content")).get("parts")):
        part = _dict(raw_part)
        if isinstance(part.get("text"), str) and not part.get("thought"):
            f.add_text(part["text"])
            produced = produced or bool(part["text"])
        call = _dict(part.get("functionCall"))
        if call:
            f.tool_calls.append(
                ToolCall(
                    id=_str(call.get("id")),
                    name=_str(call.get("name")),
                    arguments=_json_text(call.get("args") or {}),
                )
            )
            produced = True
    if produced and f.ttft_ns is None:
        f.ttft_ns = offset


def _gemini_json(doc: Any, f: _Fields, offset: int | None) -> None:
    # streamGenerateContent without alt=sse answers a JSON array of responses.
    for piece in doc if isinstance(doc, list) else [doc]:
        _gemini_piece(piece, f, offset)


def _gemini_stream(events: list[SseEvent], body: _Body, f: _Fields) -> None:
    for event in events:
        _gemini_piece(_loads(event.data, "a stream event"), f, body.offsets[event.chunk])


# -- dispatch ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parser:
    name: str
    read_json: Callable[[Any, _Fields, int | None], None]
    read_stream: Callable[[list[SseEvent], _Body, _Fields], None]

    @property
    def version(self) -> int:
        return PARSER_VERSIONS[self.name]


_PARSERS = {
    "openai.chat": _Parser("openai.chat", lambda d, f, _o: _chat_json(d, f), _chat_stream),
    "openai.responses": _Parser(
        "openai.responses", lambda d, f, _o: _responses_json(d, f), _responses_stream
    ),
    "anthropic.messages": _Parser(
        "anthropic.messages", lambda d, f, _o: _anthropic_json(d, f), _anthropic_stream
    ),
    "gemini.generate": _Parser("gemini.generate", _gemini_json, _gemini_stream),
}


def _pick_by_url(url: str | None) -> str | None:
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


def _pick_by_content(provider: str, head: bytes) -> str | None:
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


def request_model(record: Record) -> str | None:
    """The model the request asked for (JSON body ``model``, or Gemini's URL path)."""
    if record.request_body[:1] == b"{":
        try:
            model = _dict(orjson.loads(record.request_body)).get("model")
        except orjson.JSONDecodeError:
            model = None
        if isinstance(model, str):
            return model
    if record.url and "/models/" in record.url:
        tail = urlsplit(record.url).path.split("/models/", 1)[1]
        return tail.split(":", 1)[0] or None
    return None


def _request_id(record: Record) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = record.header(name)
        if value:
            return value
    return None


def _body(record: Record) -> _Body:
    pieces = record.decoded_chunks()
    if record.chunks:
        offsets: list[int | None] = [c.offset_ns for c in record.chunks]
    else:
        offsets = [record.first_byte_ns] * len(pieces)
    return _Body(pieces, offsets)


def _looks_like_sse(head: bytes) -> bool:
    start = head.lstrip()
    return start.startswith((b"data:", b"event:", b":", b"id:", b"retry:"))


def derive(record: Record) -> Derived:
    """The derived fields of ``record``; never raises (a failure is in ``parse_error``).

    Secrets the producer could only digest (split over stream deltas) are masked.
    """
    derived = _derive(record)
    if record.masked_digests:
        try:
            return mask_derived(derived, record)
        except Exception:  # fail safe: no derived text rather than a secret
            logger.debug("masking derived fields of %s failed", record.record_id, exc_info=True)
            return derived.model_copy(update={"text": None, "tool_calls": []})
    return derived


def _derive(record: Record) -> Derived:
    # The request's model is a fallback: parse the request body (large prompts, images)
    # only when the response does not name its model.
    base: dict[str, Any] = {"request_id": _request_id(record)}
    parser: _Parser | None = None
    try:
        body = _body(record)
        head = b"".join(body.pieces)[:_SNIFF_BYTES] if body.pieces else b""
        name = _pick_by_url(record.url) or _pick_by_content(record.provider, head)
        if name is None:
            return Derived(**base, model=request_model(record))
        parser = _PARSERS[name]
        base.update(parser=parser.name, parser_version=parser.version)
        if not head.strip():
            # Nothing to parse: an empty body is not a failure.
            return Derived(**base, model=request_model(record))
        fields = _Fields()
        if _looks_like_sse(head):
            parser.read_stream(sse_events(body.pieces), body, fields)
        else:
            doc = _loads(b"".join(body.pieces), "the body")
            parser.read_json(doc, fields, record.first_byte_ns)
            if fields.ttft_ns is None and (fields.text or fields.tool_calls):
                fields.ttft_ns = record.first_byte_ns  # a JSON body arrives all at once
        if not fields.seen:
            if record.status is not None and record.status >= 400:
                return Derived(
                    **base, model=request_model(record), provider_error=f"HTTP {record.status}"
                )
            raise ValueError(f"the body is not a {parser.name} response")  # noqa: TRY301
        return Derived(
            **base,
            model=fields.model or request_model(record),
            response_id=fields.response_id,
            input_tokens=fields.input_tokens,
            output_tokens=fields.output_tokens,
            cached_tokens=fields.cached_tokens,
            reasoning_tokens=fields.reasoning_tokens,
            finish_reason=fields.finish_reason,
            text="".join(fields.text) if fields.text is not None else None,
            tool_calls=fields.tool_calls,
            ttft_ns=fields.ttft_ns,
            provider_error=fields.provider_error,
        )
    except (ValueError, BodyDecodeError) as e:
        return _failure(record, base, e)
    except Exception as e:
        logger.debug(
            "parser %s crashed on %s", parser and parser.name, record.record_id, exc_info=True
        )
        return _failure(record, base, e)


def _failure(record: Record, base: dict[str, Any], error: Exception) -> Derived:
    base = {**base, "model": base.get("model") or request_model(record)}
    if record.status is not None and record.status >= 400:
        # An error page (HTML, plain text) is the provider's answer, not a parser failure.
        snippet = record.body[:200].decode("utf-8", errors="replace").strip()
        return Derived(**base, provider_error=f"HTTP {record.status}: {snippet}"[:300])
    message = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    return Derived(**base, parse_error=message)


def derive_all(records: Sequence[Record]) -> list[Derived]:
    """``derive`` for each record, in order."""
    return [derive(record) for record in records]


def is_stale(derived: Derived | None) -> bool:
    """True when ``derived`` is missing or was made by an older version of its parser."""
    if derived is None:
        return True
    if derived.parser is None:
        return False
    return derived.parser_version != PARSER_VERSIONS.get(derived.parser)


def iter_parsers() -> Iterator[tuple[str, int]]:
    """(name, version) of every parser."""
    return iter(PARSER_VERSIONS.items())
