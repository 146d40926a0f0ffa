"""OpenAI chat completions (also OpenRouter, Azure, compatible servers)."""

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
    loads,
)
from rawtap.consumer.derivation._sse import SseEvent
from rawtap.shared import names_read_as


def chat_usage(usage: Any, f: Fields) -> None:
    """Chat-style ``usage``: prompt, completion, cached and reasoning tokens."""
    usage = as_dict(usage)
    if not usage:
        return
    f.input_tokens = as_int(usage.get("prompt_tokens"))
    f.output_tokens = as_int(usage.get("completion_tokens"))
    f.cached_tokens = as_int(as_dict(usage.get("prompt_tokens_details")).get("cached_tokens"))
    f.reasoning_tokens = as_int(
        as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens")
    )


def backend(doc: dict[str, Any], f: Fields) -> None:
    """The response's ``service_tier`` and ``system_fingerprint``, when it states them."""
    tier = doc.get("service_tier")
    if isinstance(tier, str):
        f.service_tier = tier
    fingerprint = doc.get("system_fingerprint")
    if isinstance(fingerprint, str):
        f.system_fingerprint = fingerprint


def _first_choice(doc: dict[str, Any]) -> dict[str, Any] | None:
    choices = [c for c in as_list(doc.get("choices")) if isinstance(c, dict)]
    for choice in choices:
        if choice.get("index", 0) == 0:
            return choice
    return None


def _chat_json(doc: Any, f: Fields) -> None:
    doc = as_dict(doc)
    if "error" in doc:
        f.provider_error = error_text(doc["error"])
        f.seen = True
    if not ({"choices", "usage", "model"} & doc.keys()):
        return
    f.seen = True
    f.model = as_str(doc.get("model")) or f.model
    f.response_id = as_str(doc.get("id"))
    backend(doc, f)
    chat_usage(doc.get("usage"), f)
    choice = _first_choice(doc)
    if choice is None:
        return
    f.finish_reason = as_str(choice.get("finish_reason"))
    message = as_dict(choice.get("message"))
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            f.add_text(as_dict(part).get("text"))
    else:
        f.add_text(content)
    for raw_call in as_list(message.get("tool_calls")):
        call = as_dict(raw_call)
        function = as_dict(call.get("function"))
        f.tool_calls.append(
            ToolCall(
                id=as_str(call.get("id")),
                name=as_str(function.get("name")),
                arguments=as_str(function.get("arguments")) or "",
            )
        )
    legacy = as_dict(message.get("function_call"))
    if legacy:
        f.tool_calls.append(
            ToolCall(
                name=as_str(legacy.get("name")), arguments=as_str(legacy.get("arguments")) or ""
            )
        )


def _chat_stream(events: list[SseEvent], body: Body, f: Fields) -> None:
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.data.strip() == "[DONE]":
            f.seen = True
            continue
        doc = as_dict(loads(event.data, "a stream event"))
        if "error" in doc:
            f.provider_error = error_text(doc["error"])
            f.seen = True
        if not ({"choices", "usage", "model", "id"} & doc.keys()):
            continue
        f.seen = True
        f.model = f.model if f.model and "model" not in doc else as_str(doc.get("model")) or f.model
        f.response_id = f.response_id or as_str(doc.get("id"))
        backend(doc, f)
        if doc.get("usage"):
            chat_usage(doc["usage"], f)
        choice = _first_choice(doc)
        if choice is None:
            continue
        delta = as_dict(choice.get("delta"))
        content = delta.get("content")
        produced = False
        if isinstance(content, str) and content:
            f.add_text(content)
            produced = True
        for raw_call in as_list(delta.get("tool_calls")):
            call = as_dict(raw_call)
            slot = calls.setdefault(
                as_int(call.get("index")) or 0, {"id": None, "name": None, "args": []}
            )
            slot["id"] = slot["id"] or as_str(call.get("id"))
            function = as_dict(call.get("function"))
            slot["name"] = slot["name"] or as_str(function.get("name"))
            if isinstance(function.get("arguments"), str):
                slot["args"].append(function["arguments"])
            produced = True
        if produced and f.ttft_ns is None:
            f.ttft_ns = body.offsets[event.chunk]
        if choice.get("finish_reason"):
            f.finish_reason = as_str(choice["finish_reason"])
    for _, slot in sorted(calls.items()):
        f.tool_calls.append(
            ToolCall(id=slot["id"], name=slot["name"], arguments="".join(slot["args"]))
        )


def _matches(path: str) -> bool:
    return path.endswith("/chat/completions")


PARSER = Parser(
    name="openai.chat",
    version=1,
    matches_path=_matches,
    markers=(b"chat.completion",),
    providers=names_read_as("openai.chat"),
    operation="chat",
    read_json=lambda d, f, _o: _chat_json(d, f),
    read_stream=_chat_stream,
)
