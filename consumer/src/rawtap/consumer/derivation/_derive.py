"""derive(): a record's raw bytes into Derived, never raising."""

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from rawtap.consumer.derivation._body import body_of, looks_like_sse
from rawtap.consumer.derivation._derived import Derived
from rawtap.consumer.derivation._fields import Fields, Parser, loads
from rawtap.consumer.derivation._parser import PARSER_VERSIONS, pick_by_content, route
from rawtap.consumer.derivation._request import read_request
from rawtap.consumer.derivation._sse import sse_events
from rawtap.consumer.derivation._unmasked import mask_derived
from rawtap.shared import BodyDecodeError, Record

logger = logging.getLogger(__name__)

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id")


def request_model(record: Record) -> str | None:
    """The model the request asked for: its JSON body's ``model``, else the URL's ``/models/…``."""
    return read_request(record, params=False)[0]


def _headers(record: Record) -> dict[str, str]:
    """The response headers by lowercased name, the first of each name (one pass)."""
    first: dict[str, str] = {}
    for name, value in record.response_headers:
        first.setdefault(name.lower(), value)
    return first


def _request_id(headers: dict[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def derive(record: Record, *, with_request_model: bool = False) -> Derived:
    """The derived fields of ``record``; never raises (a failure is in ``parse_error``).

    Secrets the producer could only digest (split over stream deltas) are masked.
    ``with_request_model`` fills ``request_model`` and ``request`` (telemetry's
    ``gen_ai.request.*``), the request body parsed once for both; otherwise it is parsed
    only when the response names no model.
    """
    derived = _derive(record, with_request_model)
    if record.masked_digests:
        try:
            return mask_derived(derived, record)
        except Exception:  # fail safe: no derived text rather than a secret
            logger.debug("masking derived fields of %s failed", record.record_id, exc_info=True)
            return derived.model_copy(update={"text": None, "tool_calls": []})
    return derived


def _derive(record: Record, with_request_model: bool) -> Derived:
    # The request body (a prompt can be megabytes) is parsed at most once: for its model and
    # parameters when asked for, or for its model as the fallback when the response names none.
    known: list[str | None] = []
    base: dict[str, Any] = {}
    if with_request_model:
        model, params = read_request(record, params=True)
        known.append(model)
        base.update(request_model=model, request=params)

    def requested() -> str | None:
        if not known:
            known.append(request_model(record))
        return known[0]

    headers = _headers(record)
    base["request_id"] = _request_id(headers)
    parser: Parser | None = None
    try:
        body = body_of(record, headers.get("content-encoding"))
        head = body.head
        parser, endpoint = route(record.url)
        if parser is None and not endpoint.known:
            # A URL naming an endpoint no parser reads (embedContent, /v1/models) is left
            # alone: guessing by content or provider would misread it as a chat.
            parser = pick_by_content(record.provider, head)
        if parser is None:
            if endpoint.known and record.status is not None and record.status >= 400:
                return Derived(**base, model=requested(), provider_error=_status_text(record))
            return Derived(**base, model=requested())
        base.update(parser=parser.name, parser_version=parser.version)
        if not head or head.isspace():
            # Nothing to parse: an empty body is not a failure.
            return Derived(**base, model=requested())
        fields = Fields()
        if looks_like_sse(head):
            parser.read_stream(sse_events(body.pieces, body.joined), body, fields)
        else:
            doc = loads(body.joined, "the body")
            parser.read_json(doc, fields, record.first_byte_ns)
            if fields.ttft_ns is None and (fields.text or fields.tool_calls):
                fields.ttft_ns = record.first_byte_ns  # a JSON body arrives all at once
        if not fields.seen:
            if record.status is not None and record.status >= 400:
                return Derived(**base, model=requested(), provider_error=f"HTTP {record.status}")
            raise ValueError(f"the body is not a {parser.name} response")  # noqa: TRY301
        return Derived(
            **base,
            model=fields.model or requested(),
            response_id=fields.response_id,
            input_tokens=fields.input_tokens,
            output_tokens=fields.output_tokens,
            cached_tokens=fields.cached_tokens,
            reasoning_tokens=fields.reasoning_tokens,
            cache_write_tokens=fields.cache_write_tokens,
            service_tier=fields.service_tier,
            system_fingerprint=fields.system_fingerprint,
            finish_reason=fields.finish_reason,
            text="".join(fields.text) if fields.text is not None else None,
            tool_calls=fields.tool_calls,
            ttft_ns=fields.ttft_ns,
            provider_error=fields.provider_error,
        )
    except (ValueError, BodyDecodeError) as e:
        return _failure(record, base, requested(), e)
    except Exception as e:
        logger.debug(
            "parser %s crashed on %s", parser and parser.name, record.record_id, exc_info=True
        )
        return _failure(record, base, requested(), e)


def _failure(
    record: Record, base: dict[str, Any], requested: str | None, error: Exception
) -> Derived:
    base = {**base, "model": requested}
    if record.status is not None and record.status >= 400:
        # An error page (HTML, plain text) is the provider's answer, not a parser failure.
        return Derived(**base, provider_error=_status_text(record))
    message = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    return Derived(**base, parse_error=message)


def _status_text(record: Record) -> str:
    """``HTTP <status>: <the body's first bytes>``, for an error no parser reads."""
    snippet = record.body[:200].decode("utf-8", errors="replace").strip()
    return f"HTTP {record.status}: {snippet}"[:300]


def derive_all(records: Sequence[Record], *, with_request_model: bool = False) -> list[Derived]:
    """``derive`` for each record, in order."""
    return [derive(record, with_request_model=with_request_model) for record in records]


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
