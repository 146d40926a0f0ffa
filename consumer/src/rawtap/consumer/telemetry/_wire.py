"""The OTLP protobuf of rawtap's spans, written directly (``ExportTraceServiceRequest`` bytes).

The SDK's encoder builds a protobuf object per span, attribute and value
(~140 µs a span here); rawtap's spans are few shapes of a few types, so this
writes the wire format itself: keys and repeated values are encoded once and
cached, and a span is a join of byte strings. The output decodes to what the
SDK's ``encode_spans`` makes of the same spans (a test holds them equal):
field for field, including the span flags (``HAS_IS_REMOTE``/``IS_REMOTE``)
and an empty ``status`` for unset.

Concatenated requests are one request (repeated ``resource_spans``): the
exporter joins a batch's bytes without decoding them.
"""

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack

FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200
KIND_CLIENT = 3
KIND_CONSUMER = 5


_SMALL = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    """Protobuf base-128 varint (negative int64 as its two's complement)."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag2(number: int) -> bytes:
    return varint(number << 3 | 2)


def delimited(number: int, payload: bytes) -> bytes:
    """A length-delimited field of any number."""
    return _tag2(number) + varint(len(payload)) + payload


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        raw = value.encode()
        return b"\x0a" + varint(len(raw)) + raw
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return b"\x3a" + varint(len(value)) + value
    if isinstance(value, Sequence):
        inner = b"".join(delimited(1, any_value(v)) for v in value)
        return b"\x2a" + varint(len(inner)) + inner
    raise TypeError(f"cannot encode attribute value {value!r}")


class Attributes:
    """Encodes ``KeyValue`` lists; each key, and each (key, value) but unique ids, is cached."""

    UNIQUE = frozenset(
        {
            "rawtap.record_id",
            "rawtap.producer_id",
            "rawtap.call_id",
            "rawtap.provider.request_id",
            "gen_ai.response.id",
            "session.id",
        }
    )
    """Keys whose values are (nearly) unique per span: never cached."""

    def __init__(self, number: int) -> None:
        self._tag = _tag2(number)
        self._keys: dict[str, bytes] = {}
        self._pairs: dict[tuple[str, type, Any], bytes] = {}

    def pair(self, key: str, value: Any) -> bytes:
        """One ``KeyValue`` field (tag, length, key, value)."""
        if type(value) is str and key in self.UNIQUE:  # an id: the common uncached case
            encoded_key = self._keys.get(key)
            if encoded_key is not None:
                raw = value.encode()
                size = len(raw)
                if size < 0x7C - len(encoded_key):  # every length fits one byte
                    inner = 2 + size
                    return b"".join((
                        self._tag, _SMALL[len(encoded_key) + 2 + inner], encoded_key,
                        b"\x12", _SMALL[inner], b"\x0a", _SMALL[size], raw,
                    ))  # fmt: skip
        cached = key not in self.UNIQUE and not isinstance(value, list | tuple)
        if cached:
            hit = self._pairs.get((key, type(value), value))
            if hit is not None:
                return hit
        encoded_key = self._keys.get(key)
        if encoded_key is None:
            raw = key.encode()
            encoded_key = self._keys[key] = b"\x0a" + varint(len(raw)) + raw
        encoded_value = any_value(value)
        payload = encoded_key + b"\x12" + varint(len(encoded_value)) + encoded_value
        out = self._tag + varint(len(payload)) + payload
        if cached:
            if len(self._pairs) >= 8192:  # bounded: token counts and models vary
                self._pairs.clear()
            self._pairs[(key, type(value), value)] = out
        return out

    def encode(self, attributes: Mapping[str, Any]) -> bytes:
        """Every pair of ``attributes``, in order."""
        pairs = self._pairs
        out = []
        for k, v in attributes.items():
            try:  # a repeated (key, value): one look-up
                out.append(pairs[(k, type(v), v)])
            except (KeyError, TypeError):  # new, unique or unhashable (a list)
                out.append(self.pair(k, v))
        return b"".join(out)


SPAN_ATTRIBUTES = Attributes(9)
EVENT_ATTRIBUTES = Attributes(3)
LINK_ATTRIBUTES = Attributes(4)
_RESOURCE_ATTRIBUTES = Attributes(1)


def span(
    trace_id: bytes,
    span_id: bytes,
    trace_state: str,
    parent_span_id: bytes | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: bytes,
    events: bytes,
    links: bytes,
    status: bytes,
    flags: int,
    dropped_links: int = 0,
    *,
    dropped_attributes: int = 0,
    dropped_events: int = 0,
) -> bytes:
    """One ``Span`` message (unframed) from pre-encoded attributes, events, links, status."""
    raw_name = name.encode()
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
    if trace_state:
        raw_state = trace_state.encode()
        parts += [b"\x1a", varint(len(raw_state)), raw_state]
    if parent_span_id is not None:
        parts += [b"\x22\x08", parent_span_id]
    parts += [b"\x2a", varint(len(raw_name)), raw_name, b"\x30", varint(kind)]
    parts += [b"\x39", _pack_q(start_ns), b"\x41", _pack_q(end_ns), attributes]
    if dropped_attributes:
        parts += [b"\x50", varint(dropped_attributes)]
    parts.append(events)
    if dropped_events:
        parts += [b"\x60", varint(dropped_events)]
    parts.append(links)
    if dropped_links:
        parts += [b"\x70", varint(dropped_links)]
    parts += [b"\x7a", varint(len(status)), status, b"\x85\x01", _pack_i(flags)]
    return b"".join(parts)


def event(name: str, time_ns: int, attributes: Mapping[str, Any], dropped: int = 0) -> bytes:
    """One ``Span.events`` field."""
    raw = name.encode()
    payload = b"\x09" + _pack_q(time_ns) + b"\x12" + varint(len(raw)) + raw
    payload += EVENT_ATTRIBUTES.encode(attributes)
    if dropped:
        payload += b"\x20" + varint(dropped)
    return b"\x5a" + varint(len(payload)) + payload


def link(trace_id: bytes, span_id: bytes, attributes: Mapping[str, Any], flags: int) -> bytes:
    """One ``Span.links`` field (the SDK writes no trace state on links)."""
    payload = b"\x0a\x10" + trace_id + b"\x12\x08" + span_id + LINK_ATTRIBUTES.encode(attributes)
    payload += b"\x35" + _pack_i(flags)
    return b"\x6a" + varint(len(payload)) + payload


def status(code: int, message: str | None) -> bytes:
    """A ``Status`` message (unframed): empty for unset."""
    out = b""
    if message:
        raw = message.encode()
        out += b"\x12" + varint(len(raw)) + raw
    if code:
        out += b"\x18" + varint(code)
    return out


def resource(value: Resource) -> bytes:
    """The ``Resource`` message (unframed) of a resource."""
    return _RESOURCE_ATTRIBUTES.encode(value.attributes)


def request(groups: Iterable[tuple[bytes, str | None, bytes, Sequence[bytes]]]) -> bytes:
    """An ``ExportTraceServiceRequest``: per (resource, schema, scope, spans), one group.

    ``resource`` and ``scope`` are unframed messages, the spans unframed ``Span``s.
    """
    out = []
    for encoded_resource, schema_url, scope, spans in groups:
        scope_spans = delimited(1, scope) + b"".join([delimited(2, s) for s in spans])
        payload = delimited(1, encoded_resource) + delimited(2, scope_spans)
        if schema_url:
            payload += delimited(3, schema_url.encode())
        out.append(delimited(1, payload))
    return b"".join(out)


def scope(name: str, version: str | None) -> bytes:
    """An ``InstrumentationScope`` message (unframed)."""
    raw = name.encode()
    out = b"\x0a" + varint(len(raw)) + raw
    if version:
        raw_version = version.encode()
        out += b"\x12" + varint(len(raw_version)) + raw_version
    return out
