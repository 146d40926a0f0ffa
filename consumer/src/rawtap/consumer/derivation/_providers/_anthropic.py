"""Anthropic messages."""

from typing import Any

from rawtap.consumer.derivation._body import Body
from rawtap.consumer.derivation._derived import ToolCall
from rawtap.consumer.derivation._fields import (
    Fields,
    Parser,
    as_dict,
    as_int,
    as_list,
    as_str,
    error_text,
    json_text,
    loads,
    normalize_arguments,
)
from rawtap.consumer.derivation._sse import SseEvent
from rawtap.shared import names_read_as


def _anthropic_usage(usage: Any, f: Fields) -> None:
    usage = as_dict(usage)
    if "input_tokens" in usage and as_int(usage["input_tokens"]) is not None:
        f.input_tokens = as_int(usage["input_tokens"])
    if "output_tokens" in usage and as_int(usage["output_tokens"]) is not None:
        f.output_tokens = as_int(usage["output_tokens"])
    if as_int(usage.get("cache_read_input_tokens")) is not None:
        f.cached_tokens = as_int(usage["cache_read_input_tokens"])
    if as_int(usage.get("cache_creation_input_tokens")) is not None:
        f.cache_write_tokens = as_int(usage["cache_creation_input_tokens"])


def _anthropic_json(doc: Any, f: Fields) -> None:
    doc = as_dict(doc)
    if doc.get("type") == "error" or ("error" in doc and "content" not in doc):
        f.provider_error = error_text(doc.get("error"))
        f.seen = True
        return
    if not ({"content", "usage", "model"} & doc.keys()):
        return
    f.seen = True
    f.model = as_str(doc.get("model")) or f.model
    f.response_id = as_str(doc.get("id"))
    f.finish_reason = as_str(doc.get("stop_reason"))
    _anthropic_usage(doc.get("usage"), f)
    for raw_block in as_list(doc.get("content")):
        block = as_dict(raw_block)
        if block.get("type") == "text":
            f.add_text(block.get("text"))
        elif block.get("type") in {"tool_use", "server_tool_use"}:
            f.tool_calls.append(
                ToolCall(
                    id=as_str(block.get("id")),
                    name=as_str(block.get("name")),
                    arguments=json_text(block.get("input") or {}),
                )
            )


def _anthropic_stream(events: list[SseEvent], body: Body, f: Fields) -> None:
    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        doc = as_dict(loads(event.data, "a stream event"))
        kind = doc.get("type") or event.name
        if not isinstance(kind, str):
            continue
        f.seen = True
        if kind == "message_start":
            message = as_dict(doc.get("message"))
            f.model = as_str(message.get("model")) or f.model
            f.response_id = as_str(message.get("id"))
            _anthropic_usage(message.get("usage"), f)
        elif kind == "content_block_start":
            _block_start(doc, blocks, event, body, f)
        elif kind == "content_block_delta":
            _block_delta(doc, blocks, event, body, f)
        elif kind == "message_delta":
            delta = as_dict(doc.get("delta"))
            if delta.get("stop_reason"):
                f.finish_reason = as_str(delta["stop_reason"])
            _anthropic_usage(doc.get("usage"), f)
        elif kind == "error":
            f.provider_error = error_text(doc.get("error"))
    _emit_blocks(blocks, f)


def _block_start(
    doc: dict[str, Any], blocks: dict[int, dict[str, Any]], event: SseEvent, body: Body, f: Fields
) -> None:
    block = as_dict(doc.get("content_block"))
    slot: dict[str, Any] = {
        "type": block.get("type"),
        "text": [],
        "json": [],
        "block": block,
    }
    blocks[as_int(doc.get("index")) or 0] = slot
    if isinstance(block.get("text"), str) and block["text"]:
        slot["text"].append(block["text"])
    if block.get("type") in {"tool_use", "server_tool_use"} and f.ttft_ns is None:
        f.ttft_ns = body.offsets[event.chunk]


def _block_delta(
    doc: dict[str, Any], blocks: dict[int, dict[str, Any]], event: SseEvent, body: Body, f: Fields
) -> None:
    delta = as_dict(doc.get("delta"))
    slot = blocks.setdefault(
        as_int(doc.get("index")) or 0, {"type": "text", "text": [], "json": [], "block": {}}
    )
    if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
        slot["text"].append(delta["text"])
        if delta["text"] and f.ttft_ns is None:
            f.ttft_ns = body.offsets[event.chunk]
    elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
        slot["json"].append(delta["partial_json"])


def _emit_blocks(blocks: dict[int, dict[str, Any]], f: Fields) -> None:
    """The text and tool calls of the content blocks, in index order."""
    for _, slot in sorted(blocks.items()):
        if slot["type"] == "text":
            f.add_text("".join(slot["text"]))
        elif slot["type"] in {"tool_use", "server_tool_use"}:
            block = slot["block"]
            joined = "".join(slot["json"])
            f.tool_calls.append(
                ToolCall(
                    id=as_str(block.get("id")),
                    name=as_str(block.get("name")),
                    arguments=normalize_arguments(joined)
                    if joined
                    else json_text(block.get("input") or {}),
                )
            )


def _matches(path: str) -> bool:
    return path.endswith("/messages")


PARSER = Parser(
    name="anthropic.messages",
    version=1,
    matches_path=_matches,
    markers=(b"message_start", b'"type":"message"'),
    providers=names_read_as("anthropic.messages"),
    operation="chat",
    read_json=lambda d, f, _o: _anthropic_json(d, f),
    read_stream=_anthropic_stream,
    input_excludes_cache=True,  # input_tokens + cache_read + cache_creation is the whole prompt
)
