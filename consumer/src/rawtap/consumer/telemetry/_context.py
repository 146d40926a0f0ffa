"""A record span's ids and its parent: the stable ids from ``rawtap.record_id``, the
caller's trace context from the recorded W3C ``traceparent``/``tracestate``."""

import hashlib

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from rawtap.shared import Record

_HEX = frozenset("0123456789abcdef")


def record_span_ids(record_id: str) -> tuple[int, int]:
    """(trace id, span id) of a record's span: a root's trace id, and the span id, both stable."""
    digest = hashlib.blake2b(record_id.encode(), digest_size=24, person=b"rawtap-span").digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


def recorded_context(record: Record) -> SpanContext | None:
    """The span context the producer captured, or None when absent or malformed.

    W3C ``traceparent``: ``version-traceid-parentid-flags`` in lowercase hex
    (the tap writes version 00; later versions may append fields).
    """
    header = record.traceparent
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or [len(p) for p in parts[:4]] != [2, 32, 16, 2]:
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if not _HEX.issuperset(trace_hex + span_hex + flags_hex + version):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([record.tracestate]) if record.tracestate else None
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(int(flags_hex, 16)),
        trace_state=state,
    )
