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

from typing import Any
from urllib.parse import urlsplit

import orjson

from rawtap.consumer.derivation._derived import RequestParams
from rawtap.consumer.derivation._fields import as_dict, as_int, as_str
from rawtap.shared import Record

_JSON_FORMATS = frozenset({"json_object", "json_schema", "json"})
_MODALITIES = {"IMAGE": "image", "AUDIO": "speech"}
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


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
        return model, RequestParams(stream=True) if streamed else None
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
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _get(doc: dict[str, Any], config: dict[str, Any], names: tuple[str, ...], gemini: str) -> Any:
    """The first of ``names`` the body states (0 and false count), else Gemini's config entry."""
    for name in names:
        value = doc.get(name)
        if value is not None:
            return value
    return config.get(gemini)


def _output_type(doc: dict[str, Any], config: dict[str, Any]) -> str | None:
    kind = (
        as_dict(doc.get("response_format")).get("type")
        or as_dict(as_dict(doc.get("text")).get("format")).get("type")
        or as_dict(as_dict(doc.get("output_config")).get("format")).get("type")
        or as_dict(doc.get("output_format")).get("type")
    )
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
    config = as_dict(doc.get("generationConfig") or doc.get("generation_config"))
    encoding = as_str(doc.get("encoding_format"))
    return RequestParams(
        stream=streamed or doc.get("stream") is True,
        temperature=_number(_get(doc, config, ("temperature",), "temperature")),
        top_p=_number(_get(doc, config, ("top_p",), "topP")),
        top_k=_number(_get(doc, config, ("top_k",), "topK")),
        max_tokens=as_int(_get(doc, config, _MAX_TOKENS, "maxOutputTokens")),
        seed=as_int(_get(doc, config, ("seed",), "seed")),
        stop_sequences=_strings(_get(doc, config, ("stop", "stop_sequences"), "stopSequences")),
        choice_count=as_int(_get(doc, config, ("n",), "candidateCount")),
        frequency_penalty=_number(_get(doc, config, ("frequency_penalty",), "frequencyPenalty")),
        presence_penalty=_number(_get(doc, config, ("presence_penalty",), "presencePenalty")),
        output_type=_output_type(doc, config),
        service_tier=as_str(doc.get("service_tier")),
        encoding_formats=[encoding] if encoding else None,
        dimensions=as_int(_get(doc, doc, ("dimensions",), "outputDimensionality")),
    )
