"""The OpenAI Responses API."""

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
)
from rawtap.consumer.derivation._sse import SseEvent
from rawtap.shared import names_read_as


def _response_object(resp: Any, f: Fields) -> None:
    resp = as_dict(resp)
    if not resp:
        return
    f.seen = True
    f.model = as_str(resp.get("model")) or f.model
    f.response_id = as_str(resp.get("id")) or f.response_id
    if isinstance(resp.get("service_tier"), str):
        f.service_tier = resp["service_tier"]
    incomplete = as_dict(resp.get("incomplete_details"))
    f.finish_reason = as_str(incomplete.get("reason")) or as_str(resp.get("status"))
    if resp.get("error"):
        f.provider_error = error_text(resp["error"])
    usage = as_dict(resp.get("usage"))
    if usage:
        f.input_tokens = as_int(usage.get("input_tokens"))
        f.output_tokens = as_int(usage.get("output_tokens"))
        f.cached_tokens = as_int(as_dict(usage.get("input_tokens_details")).get("cached_tokens"))
        f.reasoning_tokens = as_int(
            as_dict(usage.get("output_tokens_details")).get("reasoning_tokens")
        )
    output = as_list(resp.get("output"))
    if output:
        f.text = None
        f.tool_calls = []
    for raw_item in output:
        item = as_dict(raw_item)
        kind = item.get("type")
        if kind == "message":
            for raw_part in as_list(item.get("content")):
                part = as_dict(raw_part)
                if part.get("type") == "output_text":
                    f.add_text(part.get("text"))
        elif kind in {"function_call", "custom_tool_call"}:
            f.tool_calls.append(_responses_call(item))


def _responses_call(item: dict[str, Any]) -> ToolCall:
    args = item.get("arguments", item.get("input"))
    return ToolCall(
        id=as_str(item.get("call_id")) or as_str(item.get("id")),
        name=as_str(item.get("name")),
        arguments=args if isinstance(args, str) else json_text(args or {}),
    )


def _responses_json(doc: Any, f: Fields) -> None:
    doc = as_dict(doc)
    if "error" in doc and doc.get("object") != "response":
        f.provider_error = error_text(doc["error"])
        f.seen = True
        return
    if doc.get("object") == "response" or "output" in doc:
        _response_object(doc, f)


_RESPONSES_TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def _responses_stream(events: list[SseEvent], body: Body, f: Fields) -> None:
    terminal: Any = None
    calls: list[ToolCall] = []
    for event in events:
        doc = as_dict(loads(event.data, "a stream event"))
        kind = doc.get("type") or event.name
        if not isinstance(kind, str):
            continue
        f.seen = True
        if kind in _RESPONSES_TERMINAL:
            terminal = doc.get("response")
        elif kind in {"response.created", "response.in_progress"}:
            resp = as_dict(doc.get("response"))
            f.model = as_str(resp.get("model")) or f.model
            f.response_id = as_str(resp.get("id")) or f.response_id
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
            item = as_dict(doc.get("item"))
            if item.get("type") in {"function_call", "custom_tool_call"}:
                calls.append(_responses_call(item))
        elif kind == "error":
            f.provider_error = error_text(doc.get("error") or doc)
    if terminal is not None:
        _response_object(terminal, f)  # authoritative: replaces what the deltas built
    else:
        f.tool_calls = calls


def _matches(path: str) -> bool:
    return path.endswith("/responses")


PARSER = Parser(
    name="openai.responses",
    version=1,
    matches_path=_matches,
    markers=(b'"object":"response"', b"response.created"),
    providers=names_read_as("openai.responses"),
    operation="chat",
    read_json=lambda d, f, _o: _responses_json(d, f),
    read_stream=_responses_stream,
)
