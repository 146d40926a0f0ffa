"""Gemini generateContent / streamGenerateContent (SSE or a JSON array of responses)."""

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


def _gemini_piece(doc: Any, f: Fields, offset: int | None) -> None:
    doc = as_dict(doc)
    if "error" in doc and "candidates" not in doc:
        f.provider_error = error_text(doc["error"])
        f.seen = True
        return
    if not ({"candidates", "usageMetadata", "promptFeedback", "modelVersion"} & doc.keys()):
        return
    f.seen = True
    f.model = as_str(doc.get("modelVersion")) or f.model
    f.response_id = as_str(doc.get("responseId")) or f.response_id
    usage = as_dict(doc.get("usageMetadata"))
    if usage:
        f.input_tokens = as_int(usage.get("promptTokenCount"))
        f.output_tokens = as_int(usage.get("candidatesTokenCount"))
        f.cached_tokens = as_int(usage.get("cachedContentTokenCount"))
        f.reasoning_tokens = as_int(usage.get("thoughtsTokenCount"))
    blocked = as_dict(doc.get("promptFeedback")).get("blockReason")
    if blocked:
        f.finish_reason = as_str(blocked)
    candidates = [c for c in as_list(doc.get("candidates")) if isinstance(c, dict)]
    candidate = next((c for c in candidates if c.get("index", 0) == 0), None)
    if candidate is None:
        return
    if candidate.get("finishReason"):
        f.finish_reason = as_str(candidate["finishReason"])
    produced = False
    for raw_part in as_list(as_dict(candidate.get("content")).get("parts")):
        part = as_dict(raw_part)
        if isinstance(part.get("text"), str) and not part.get("thought"):
            f.add_text(part["text"])
            produced = produced or bool(part["text"])
        call = as_dict(part.get("functionCall"))
        if call:
            f.tool_calls.append(
                ToolCall(
                    id=as_str(call.get("id")),
                    name=as_str(call.get("name")),
                    arguments=json_text(call.get("args") or {}),
                )
            )
            produced = True
    if produced and f.ttft_ns is None:
        f.ttft_ns = offset


def _gemini_json(doc: Any, f: Fields, offset: int | None) -> None:
    # streamGenerateContent without alt=sse answers a JSON array of responses.
    for piece in doc if isinstance(doc, list) else [doc]:
        _gemini_piece(piece, f, offset)


def _gemini_stream(events: list[SseEvent], body: Body, f: Fields) -> None:
    for event in events:
        _gemini_piece(loads(event.data, "a stream event"), f, body.offsets[event.chunk])


def _matches(path: str) -> bool:
    return ":generateContent" in path or ":streamGenerateContent" in path


PARSER = Parser(
    name="gemini.generate",
    version=1,
    matches_path=_matches,
    markers=(b'"candidates"', b'"usageMetadata"'),
    providers=names_read_as("gemini.generate"),
    operation="generate_content",
    read_json=_gemini_json,
    read_stream=_gemini_stream,
    output_excludes_reasoning=True,  # candidatesTokenCount leaves out thoughtsTokenCount
)
