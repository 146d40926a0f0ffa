"""OpenAI's legacy completions (``/v1/completions``, compatible servers): ``choices[].text``."""

from typing import Any

from rawtap.consumer.derivation._body import Body
from rawtap.consumer.derivation._fields import (
    Fields,
    Parser,
    as_dict,
    as_list,
    as_str,
    error_text,
    loads,
)
from rawtap.consumer.derivation._providers._openai_chat import backend, chat_usage
from rawtap.consumer.derivation._sse import SseEvent


def _choice(doc: dict[str, Any]) -> dict[str, Any] | None:
    for choice in as_list(doc.get("choices")):
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _piece(doc: dict[str, Any], f: Fields) -> bool:
    """Read one document or stream chunk; True when it carried generated text."""
    f.seen = True
    f.model = as_str(doc.get("model")) or f.model
    f.response_id = f.response_id or as_str(doc.get("id"))
    backend(doc, f)
    if doc.get("usage"):
        chat_usage(doc["usage"], f)
    choice = _choice(doc)
    if choice is None:
        return False
    if choice.get("finish_reason"):
        f.finish_reason = as_str(choice["finish_reason"])
    text = choice.get("text")
    f.add_text(text)
    return isinstance(text, str) and bool(text)


def _json(doc: Any, f: Fields) -> None:
    doc = as_dict(doc)
    if "error" in doc and "choices" not in doc:
        f.provider_error = error_text(doc["error"])
        f.seen = True
        return
    if {"choices", "usage", "model"} & doc.keys():
        _piece(doc, f)


def _stream(events: list[SseEvent], body: Body, f: Fields) -> None:
    for event in events:
        if event.data.strip() == "[DONE]":
            f.seen = True
            continue
        doc = as_dict(loads(event.data, "a stream event"))
        carried = bool({"choices", "usage", "model", "id"} & doc.keys()) and _piece(doc, f)
        if carried and f.ttft_ns is None:
            f.ttft_ns = body.offsets[event.chunk]


def _matches(path: str) -> bool:
    return path.endswith("/completions") and not path.endswith("/chat/completions")


PARSER = Parser(
    name="openai.completions",
    version=1,
    matches_path=_matches,
    markers=(b'"object":"text_completion"',),
    providers=frozenset(),  # never the provider's default: chat completions are
    operation="text_completion",
    read_json=lambda d, f, _o: _json(d, f),
    read_stream=_stream,
)
