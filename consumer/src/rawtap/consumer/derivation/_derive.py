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
    gemini.generate     Gemini generateContent / streamGenerateContent (SSE or JSON array)"""

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from rawtap.consumer.derivation._derived import Derived
from rawtap.consumer.derivation._fields import Body, Fields, as_dict, loads
from rawtap.consumer.derivation._parser import (
    PARSER_VERSIONS,
    PARSERS,
    Parser,
    pick_by_content,
    pick_by_url,
)
from rawtap.consumer.derivation._sse import sse_events
from rawtap.consumer.derivation._unmasked import mask_derived
from rawtap.shared import BodyDecodeError, Record

logger = logging.getLogger(__name__)


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id")


_SNIFF_BYTES = 4096


def request_model(record: Record) -> str | None:
    """The model the request asked for (JSON body ``model``, or Gemini's URL path)."""
    if record.request_body[:1] == b"{":
        try:
            model = as_dict(orjson.loads(record.request_body)).get("model")
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


def _body(record: Record) -> Body:
    pieces = record.decoded_chunks()
    if record.chunks:
        offsets: list[int | None] = [c.offset_ns for c in record.chunks]
    else:
        offsets = [record.first_byte_ns] * len(pieces)
    return Body(pieces, offsets)


def _looks_like_sse(head: bytes) -> bool:
    start = head.lstrip()
    return start.startswith((b"data:", b"event:", b":", b"id:", b"retry:"))


def derive(record: Record) -> Derived:
    """The derived fields of ``record``; never raises (a failure is in ``parse_error``).

    Secrets the producer could only digest (split over stream deltas) are masked.
    """
    derived = _derive_one(record)
    if record.masked_digests:
        try:
            return mask_derived(derived, record)
        except Exception:  # fail safe: no derived text rather than a secret
            logger.debug("masking derived fields of %s failed", record.record_id, exc_info=True)
            return derived.model_copy(update={"text": None, "tool_calls": []})
    return derived


def _derive_one(record: Record) -> Derived:
    # The request's model is a fallback: parse the request body (large prompts, images)
    # only when the response does not name its model.
    base: dict[str, Any] = {"request_id": _request_id(record)}
    parser: Parser | None = None
    try:
        body = _body(record)
        head = b"".join(body.pieces)[:_SNIFF_BYTES] if body.pieces else b""
        name = pick_by_url(record.url) or pick_by_content(record.provider, head)
        if name is None:
            return Derived(**base, model=request_model(record))
        parser = PARSERS[name]
        base.update(parser=parser.name, parser_version=parser.version)
        if not head.strip():
            # Nothing to parse: an empty body is not a failure.
            return Derived(**base, model=request_model(record))
        fields = Fields()
        if _looks_like_sse(head):
            parser.read_stream(sse_events(body.pieces), body, fields)
        else:
            doc = loads(b"".join(body.pieces), "the body")
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
