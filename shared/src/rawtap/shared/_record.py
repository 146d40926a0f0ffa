"""The record: one provider response (one physical HTTP attempt), byte-exact.

The same shape travels in the stream, sits in the sink and comes out of
``rawtap export``. Bodies are ``bytes`` end to end, never re-encoded JSON, so a
stored record can reproduce the provider's response byte for byte. Stream
chunks are kept as boundaries into ``body`` (offset in time and size), so a
streamed response is stored once, not twice.
"""

from enum import StrEnum
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, NamedTuple, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from rawtap.shared._decode import decode_body, decode_chunks

SCHEMA_VERSION = 1
"""Version of the record schema written by this release; bumped on any incompatible change."""

READABLE_SCHEMA_VERSIONS = range(1, SCHEMA_VERSION + 1)
"""The schema versions this release reads: the one rule, on the stream and in a store.

An entry a worker takes and a row a store gives back are read alike: every
version up to this release's (so a row an older release stored stays readable,
and so does an entry an older producer sent during a rolling upgrade); a newer
one is refused with "upgrade rawtap". :func:`schema_problem` applies it.
"""

_VERSION_SPELLINGS = {str(v).encode(): v for v in READABLE_SCHEMA_VERSIONS}
"""The entry field ``v`` in its only accepted spelling (ASCII digits, no sign, no zeros ahead)."""


def schema_problem(version: object, *, name: str = "schema version") -> str | None:
    """Why this release cannot read a record of schema ``version`` (one line), or None if it can.

    ``version`` is an entry's ``v`` field (bytes, as it arrived) or the integer of
    an envelope; ``name`` is what the message calls it.
    """
    if isinstance(version, bytes):
        if version in _VERSION_SPELLINGS:
            return None
        shown = repr(version[:20])
        newer = version[:20].isdigit() and int(version[:20]) > SCHEMA_VERSION
    elif isinstance(version, int) and not isinstance(version, bool):
        if version in READABLE_SCHEMA_VERSIONS:
            return None
        shown, newer = str(version), version > SCHEMA_VERSION
    else:
        shown, newer = repr(version)[:40], False
    readable = (
        f"version {SCHEMA_VERSION}" if SCHEMA_VERSION == 1 else f"versions 1 … {SCHEMA_VERSION}"
    )
    hint = ": upgrade rawtap to read it" if newer else ""
    return f"{name} {shown} is not supported (this release reads {readable}){hint}"


class EndState(StrEnum):
    """How the exchange ended, as the producer saw it."""

    COMPLETE = "complete"
    """The whole response arrived (EOF or the provider's terminal event)."""
    CLOSED_EARLY = "closed_early"
    """The caller's code stopped the response before the end (close, ``with`` exit, a break)."""
    CANCELLED = "cancelled"
    """The task reading the response was cancelled."""
    ERROR = "error"
    """Reading the response body failed after the headers arrived."""
    TRANSPORT_ERROR = "transport_error"
    """No response: connection, TLS or timeout failure before the headers."""
    ABANDONED = "abandoned"
    """Nobody closed it: the garbage collector, interpreter exit or asyncio's finalizer did."""


class BodyForm(StrEnum):
    """What ``raw_response`` was when it was handed to the recorder.

    Only ``wire`` and ``bytes`` are guaranteed to be the provider's exact bytes;
    the other forms were turned into bytes by rawtap on the writer thread.
    """

    WIRE = "wire"
    """Captured by the transport tap: the entity bytes as received."""
    BYTES = "bytes"
    """Passed as ``bytes`` by the caller, stored unchanged."""
    STR = "str"
    """Passed as ``str``; stored UTF-8 encoded (lone surrogates escaped)."""
    JSON = "json"
    """A JSON-able object (dict, list, …), serialized with orjson."""
    SDK_OBJECT = "sdk_object"
    """A pydantic model (an SDK response object), serialized with its own JSON dump."""
    REPR = "repr"
    """Nothing above worked; ``repr()`` of the object, and ``error`` says why."""


class Chunk(NamedTuple):
    """One piece of a streamed body, in arrival order."""

    offset_ns: int
    """When the chunk was read, in ns since the request started (monotonic clock)."""
    size: int
    """Its length in bytes; chunk ``i`` is ``body[sum(sizes[:i]) : sum(sizes[:i+1])]``."""


_PAIRS = frozenset({list, tuple, Chunk})
"""What a chunk arrives as: a JSON array, a tuple, or a Chunk built in code."""

_SIZE = itemgetter(1)
"""A chunk's size (``Chunk.size``), as a C-level getter for ``sum(map(…))``."""

_new_tuple = tuple.__new__
"""Builds a Chunk without NamedTuple's Python-level ``__new__`` (its cost is most of the gain)."""


def _int_pairs(items: list[Any]) -> bool:
    """True if every item is a list or tuple of two ints (bools and floats are not)."""
    # Sets of types and lengths, built in C: no Python call per chunk.
    return (
        set(map(type, items)) <= _PAIRS
        and set(map(len, items)) == {2}
        and set(map(type, chain.from_iterable(items))) == {int}
    )


Header = tuple[str, str]
"""A header as sent or received: original case, order and duplicates kept.

Values are decoded as latin-1, which maps every byte to one character, so any
header the wire carried survives the JSON envelope unchanged.
"""


class Record(BaseModel):
    """One provider exchange as rawtap stores it (schema version 1)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    schema_version: int = SCHEMA_VERSION
    # identity
    record_id: str = Field(min_length=1)
    producer_id: str = Field(min_length=1)
    seq: int = Field(ge=0)
    session_id: str | None = None
    service: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    call_id: str | None = None
    attempt: int | None = None
    # request
    provider: str = Field(min_length=1)
    method: str | None = None
    url: str | None = None
    request_headers: list[Header] = Field(default_factory=list)
    request_body: bytes = b""
    metadata: dict[str, Any] = Field(default_factory=dict)
    # response
    status: int | None = None
    response_headers: list[Header] = Field(default_factory=list)
    body: bytes = b""
    body_form: BodyForm = BodyForm.BYTES
    stream: bool = False
    chunks: list[Chunk] = Field(default_factory=list)
    # timing: wall clock for the start, monotonic offsets from it for the rest
    started_at_ns: int
    first_byte_ns: int | None = None
    ended_ns: int | None = None
    captured_at_ns: int
    # outcome
    end_state: EndState = EndState.COMPLETE
    error: str | None = None
    truncated: bool = False
    original_size: int | None = None
    """Exact size of the response body on the wire (set only when ``body`` was cut)."""
    original_request_size: int | None = None
    """Size of ``request_body`` before truncation (set only when it was cut)."""
    # credentials (docs/reliability.md, "No credential in any stored byte")
    masked: int = Field(default=0, ge=0)
    """How many credential values the producer masked in this record (0 in older records)."""
    masked_in: list[str] = Field(default_factory=list)
    """Where they were: ``headers``, ``url``, ``request_body``, ``body``, ``error``."""
    masked_digests: list[str] = Field(default_factory=list)
    """``"<length>:<hex>"`` keyed BLAKE2b digests (key: ``record_id``) of the request's
    credentials of 16 bytes or more, never the values: the consumer masks derived
    text with them."""
    body_decoded_from: str | None = None
    """The ``Content-Encoding`` rawtap undid to mask a secret in ``body``; the header was
    removed from ``response_headers`` and ``body`` holds the decoded bytes."""
    encoded_size: int | None = None
    """Size of the body as received (compressed) when ``body_decoded_from`` is set or the
    body was withheld."""

    @field_validator("chunks", mode="wrap")
    @classmethod
    def _chunk_pairs(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[Chunk]:
        # A streamed record has tens to hundreds of chunks, and pydantic validates a
        # NamedTuple item by item through its constructor (~3 µs each, most of a
        # streamed record's decode). Pairs of plain ints, which every producer
        # writes, are taken here in one pass; anything else gets pydantic's own
        # validation, coercions and messages.
        if type(value) is list and (not value or _int_pairs(value)):
            return list(map(_new_tuple, repeat(Chunk), value))
        return handler(value)  # type: ignore[no-any-return]

    @model_validator(mode="after")
    def _chunks_cover_body(self) -> Self:
        if self.chunks:
            total = sum(map(_SIZE, self.chunks))
            if total != len(self.body):
                raise ValueError(
                    f"chunk sizes add up to {total} bytes but the body has {len(self.body)}"
                )
        return self

    def chunk_bytes(self) -> list[bytes]:
        """The streamed chunks as bytes, in order (empty for a non-streamed body)."""
        out: list[bytes] = []
        pos = 0
        for chunk in self.chunks:
            out.append(self.body[pos : pos + chunk.size])
            pos += chunk.size
        return out

    def header(self, name: str) -> str | None:
        """The first response header called ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == lowered), None)

    def decoded_body(self) -> bytes:
        """``body`` with its ``Content-Encoding`` (gzip, deflate, br, zstd) undone.

        Raises :class:`~rawtap.shared.BodyDecodeError` for corrupt data or an
        encoding whose optional library is missing; a missing gzip trailer is tolerated.
        """
        return decode_body(self.body, self.header("content-encoding"))

    def decoded_chunks(self) -> list[bytes]:
        """Each streamed chunk's decoded bytes, one per chunk (``[body]`` if not chunked).

        With an encoding, a chunk's piece is what decoding that chunk completed, so
        it keeps the chunk's arrival time; pieces join to :meth:`decoded_body`.
        """
        pieces = self.chunk_bytes() if self.chunks else ([self.body] if self.body else [])
        return decode_chunks(pieces, self.header("content-encoding"))
