"""OpenAI embeddings (``/v1/embeddings``; also Azure, OpenRouter, compatible servers).

Only the model and the usage are read; the vectors are left alone.
"""

from typing import Any

from rawtap.consumer.derivation._body import Body
from rawtap.consumer.derivation._fields import (
    Fields,
    Parser,
    as_dict,
    as_int,
    as_str,
    error_text,
)
from rawtap.consumer.derivation._sse import SseEvent


def _json(doc: Any, f: Fields) -> None:
    doc = as_dict(doc)
    if "error" in doc and "data" not in doc:
        f.provider_error = error_text(doc["error"])
        f.seen = True
        return
    if not ({"data", "usage", "model"} & doc.keys()):
        return
    f.seen = True
    f.model = as_str(doc.get("model"))
    usage = as_dict(doc.get("usage"))
    if usage:
        f.input_tokens = as_int(usage.get("prompt_tokens"))


def _stream(_events: list[SseEvent], _body: Body, _f: Fields) -> None:
    raise ValueError("an embeddings response is never a stream")


def _matches(path: str) -> bool:
    return path.endswith("/embeddings")


PARSER = Parser(
    name="openai.embeddings",
    version=1,
    matches_path=_matches,
    markers=(),  # picked by URL only: the body names nothing a chat body could not
    providers=frozenset(),
    operation="embeddings",
    read_json=lambda d, f, _o: _json(d, f),
    read_stream=_stream,
)
