"""The GenAI semantic conventions for a recorded call: provider, system and operation names,
span and metric attributes, the error type, the call's end on the wall clock.

Bodies never go into attributes.
"""

from typing import Any
from urllib.parse import urlsplit

from rawtap.consumer.derivation import PARSER_OPERATIONS, Derived
from rawtap.shared import PROVIDERS, EndState, Record

# gen_ai.provider.name (current conventions) and gen_ai.system (older ones) per rawtap
# provider, as rawtap.shared.PROVIDERS names them; any other provider name stands for itself.
PROVIDER_NAME = {p.name: p.gen_ai_name or p.name for p in PROVIDERS}
SYSTEM = {p.name: p.gen_ai_system or p.name for p in PROVIDERS}
OPERATION = PARSER_OPERATIONS
"""gen_ai.operation.name per derivation parser (each parser declares its own)."""
METRIC_ATTRIBUTES = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "server.address",
    }
)
"""The GenAI attributes that metrics carry (bounded cardinality: no ids)."""

_FAILED_STATES = (EndState.ERROR, EndState.TRANSPORT_ERROR)

GenAi = tuple[dict[str, Any], str | None, str | None]
"""A record's GenAI attributes, its operation name and its request model."""


def gen_ai_attributes(record: Record, fields: Derived) -> GenAi:
    """The GenAI attributes of a record, its operation name and request model.

    The request model is the one ``derive`` read (``fields.request_model``: the worker
    asks for it when telemetry is on); a :class:`Derived` read back from a store has
    none, and its records then carry no ``gen_ai.request.model``.
    """
    operation = OPERATION.get(fields.parser or "")
    request_model = fields.request_model
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": PROVIDER_NAME.get(record.provider, record.provider),
        "gen_ai.system": SYSTEM.get(record.provider, record.provider),
    }
    if operation:
        attributes["gen_ai.operation.name"] = operation
    if request_model:
        attributes["gen_ai.request.model"] = request_model
    if fields.model:
        attributes["gen_ai.response.model"] = fields.model
    if record.url:
        host, port = _server(record.url)
        if host:
            attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
    return attributes, operation, request_model


_SERVERS: dict[str, tuple[str | None, int | None]] = {}


def _server(url: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a URL (cached: a service calls few URLs)."""
    hit = _SERVERS.get(url)
    if hit is not None:
        return hit
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if len(_SERVERS) >= 1024:  # bounded: query strings may vary
        _SERVERS.clear()
    out = _SERVERS[url] = (parts.hostname, port)
    return out


def record_attributes(record: Record, fields: Derived) -> dict[str, Any]:
    """What the span carries besides the metric attributes: usage, outcome, rawtap's ids."""
    out: dict[str, Any] = {
        "rawtap.record_id": record.record_id,
        "rawtap.producer_id": record.producer_id,
        "rawtap.end_state": record.end_state.value,
        "gen_ai.request.stream": record.stream,
    }
    optional: dict[str, Any] = {
        "gen_ai.usage.input_tokens": fields.input_tokens,
        "gen_ai.usage.output_tokens": fields.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": fields.cached_tokens,
        "gen_ai.usage.reasoning.output_tokens": fields.reasoning_tokens,
        "gen_ai.response.id": fields.response_id,
        "gen_ai.response.time_to_first_chunk": (
            fields.ttft_ns / 1e9 if fields.ttft_ns is not None else None
        ),
        "http.request.method": record.method,
        "http.response.status_code": record.status,
        "error.type": error_type(record),
        "session.id": record.session_id,
        "rawtap.provider.request_id": fields.request_id,
        "rawtap.call_id": record.call_id,
        "rawtap.attempt": record.attempt,
        "rawtap.truncated": record.truncated or None,
        "rawtap.parse_error": fields.parse_error,
    }
    if fields.finish_reason is not None:
        out["gen_ai.response.finish_reasons"] = [fields.finish_reason]
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def error_type(record: Record) -> str | None:
    """``error.type``: the HTTP status from 400 up, else a failed end state, else None."""
    if record.status is not None and record.status >= 400:
        return str(record.status)
    if record.end_state in _FAILED_STATES:
        return record.end_state.value
    return None


def end_ns(record: Record) -> int:
    """The call's end on the wall clock: start plus the recorded (monotonic) end offset.

    A record without ``ended_ns`` (given to ``record()`` by hand) ends at its last
    chunk or first byte, else when it was captured.
    """
    start = record.started_at_ns
    if record.ended_ns is not None:
        return start + record.ended_ns
    last = max([c.offset_ns for c in record.chunks] + [record.first_byte_ns or 0])
    if last:
        return start + last
    return max(start, record.captured_at_ns)
