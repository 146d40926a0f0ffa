"""The request side of a record: the model it asked for and its generation parameters.

The request body (a prompt can be megabytes) is parsed once, here, for both.
The parameters are read by name across the wire formats: OpenAI's and
Anthropic's at the top level (``temperature``, ``max_tokens``,
``max_completion_tokens``, ``max_output_tokens``, ``n``, ``stop``,
``stop_sequences``, ``response_format``, ``text.format``, ``output_config.format``),
Gemini's in ``generationConfig`` (``temperature``, ``topP``, ``topK``,
``maxOutputTokens``, ``candidateCount``, ``stopSequences``, ``seed``,
``responseMimeType``, ``responseModalities``).
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from rawtap.consumer.derivation._derived import RequestParams
from rawtap.consumer.derivation._fields import as_dict, as_int, as_str
from rawtap.shared import Record

_JSON_FORMATS = frozenset({"json_object", "json_schema", "json"})
_MODALITIES = {"IMAGE": "image", "AUDIO": "speech"}


def read_request(record: Record, *, params: bool) -> tuple[str | None, RequestParams | None]:
    """The requested model (its JSON body's ``model``, else the URL's ``/models/…``) and,
    when ``params``, the generation parameters (None when the body is not a JSON object)."""
    doc: dict[str, Any] | None = None
    if record.request_body[:1] == b"{":
        try:
            doc = as_dict(orjson.loads(record.request_body))
        except orjson.JSONDecodeError:
            doc = None
    model = as_str(doc.get("model")) if doc is not None else None
    if model is None:
        model = _url_model(record.url)
    if not params:
        return model, None
    streamed = bool(record.url and ":streamGenerateContent" in record.url)
    if doc is None:
        return model, _STREAMED if streamed else None
    return model, _params(doc, streamed)


def _url_model(url: str | None) -> str | None:
    if url and "/models/" in url:
        try:
            path = urlsplit(url).path
        except ValueError:  # an unparsable URL (``http://[::1/…``) names no model
            return None
        tail = path.split("/models/", 1)[1]
        return tail.split(":", 1)[0] or None
    return None


def _number(value: Any) -> float | None:
    kind = type(value)  # exact types: a bool is no number here
    if kind is float:
        return value  # type: ignore[no-any-return]
    return float(value) if kind is int else None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _one_string(value: Any) -> list[str] | None:
    return [value] if isinstance(value, str) and value else None


_Coerce = Callable[[Any], Any]
_TOP: dict[str, tuple[str, _Coerce]] = {
    "temperature": ("temperature", _number),
    "top_p": ("top_p", _number),
    "top_k": ("top_k", _number),
    "max_tokens": ("max_tokens", as_int),
    "max_completion_tokens": ("max_tokens", as_int),
    "max_output_tokens": ("max_tokens", as_int),
    "seed": ("seed", as_int),
    "stop": ("stop_sequences", _strings),
    "stop_sequences": ("stop_sequences", _strings),
    "n": ("choice_count", as_int),
    "frequency_penalty": ("frequency_penalty", _number),
    "presence_penalty": ("presence_penalty", _number),
    "service_tier": ("service_tier", as_str),
    "encoding_format": ("encoding_formats", _one_string),
    "dimensions": ("dimensions", as_int),
    "outputDimensionality": ("dimensions", as_int),
}
"""Top-level body keys (OpenAI, Anthropic, Gemini's embeddings) and the parameter each states."""
_GEMINI: dict[str, tuple[str, _Coerce]] = {
    "temperature": ("temperature", _number),
    "topP": ("top_p", _number),
    "topK": ("top_k", _number),
    "maxOutputTokens": ("max_tokens", as_int),
    "seed": ("seed", as_int),
    "stopSequences": ("stop_sequences", _strings),
    "candidateCount": ("choice_count", as_int),
    "frequencyPenalty": ("frequency_penalty", _number),
    "presencePenalty": ("presence_penalty", _number),
}
"""Gemini's ``generationConfig`` keys."""
_FORMATS = frozenset({"response_format", "text", "output_config", "output_format"})
_OUTPUT_KEYS = frozenset({"responseMimeType", "responseModalities"})
_STREAMED = RequestParams(stream=True)
_PLAIN = RequestParams()


def _output_type(doc: dict[str, Any], config: dict[str, Any]) -> str | None:
    kind: Any = None
    if "response_format" in doc:  # OpenAI chat
        kind = as_dict(doc["response_format"]).get("type")
    elif "text" in doc:  # OpenAI Responses
        kind = as_dict(as_dict(doc["text"]).get("format")).get("type")
    elif "output_config" in doc:  # Anthropic structured outputs
        kind = as_dict(as_dict(doc["output_config"]).get("format")).get("type")
    elif "output_format" in doc:
        kind = as_dict(doc["output_format"]).get("type")
    if isinstance(kind, str):
        return "json" if kind in _JSON_FORMATS else "text" if kind == "text" else kind
    mime = as_str(config.get("responseMimeType"))
    if mime is not None and "json" in mime:
        return "json"
    modalities = config.get("responseModalities")
    if isinstance(modalities, list):
        for modality in modalities:
            if isinstance(modality, str) and modality.upper() in _MODALITIES:
                return _MODALITIES[modality.upper()]
    return "text" if mime is not None and mime.startswith("text/") else None


def _params(doc: dict[str, Any], streamed: bool) -> RequestParams:
    values: dict[str, Any] = {}
    for key, raw in doc.items():  # a body has few keys: each looked up (of synonyms, first wins)
        entry = _TOP.get(key)
        if entry is not None:
            name, coerce = entry
            value = coerce(raw)
            if value is not None and name not in values:
                values[name] = value
    config = doc.get("generationConfig") or doc.get("generation_config")
    if isinstance(config, dict) and config:
        for key, raw in config.items():
            entry = _GEMINI.get(key)
            if entry is not None:
                name, coerce = entry
                value = coerce(raw)
                if value is not None and name not in values:
                    values[name] = value
    else:
        config = {}
    if not _FORMATS.isdisjoint(doc) or not _OUTPUT_KEYS.isdisjoint(config):
        output = _output_type(doc, config)
        if output is not None:
            values["output_type"] = output
    if streamed or doc.get("stream") is True:
        values["stream"] = True
    if not values:
        return _PLAIN
    if len(values) == 1 and "stream" in values:
        return _STREAMED
    return RequestParams(**values)
