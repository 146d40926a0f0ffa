"""The body a parser reads: decoded pieces, their arrival times, the joined bytes, its head."""

import re
from typing import NamedTuple

from rawtap.shared import Record, decode_chunks

SNIFF_BYTES = 4096


class Body(NamedTuple):
    pieces: list[bytes]
    offsets: list[int | None]
    joined: bytes
    """``b"".join(pieces)``, made once."""

    @property
    def head(self) -> bytes:
        """The first bytes, for sniffing the format."""
        return self.joined[:SNIFF_BYTES]


def body_of(record: Record, content_encoding: str | None) -> Body:
    """The response body of ``record``, decoded (raises ``BodyDecodeError``).

    ``content_encoding`` is its ``Content-Encoding`` header (the caller has read the
    headers once; :meth:`Record.decoded_chunks` would scan them again).
    """
    if record.chunks:
        pieces = decode_chunks(record.chunk_bytes(), content_encoding)
    else:
        pieces = decode_chunks([record.body] if record.body else [], content_encoding)
    if record.chunks:
        offsets: list[int | None] = [c.offset_ns for c in record.chunks]
    else:
        offsets = [record.first_byte_ns] * len(pieces)
    return Body(pieces, offsets, b"".join(pieces))


_SSE_START = re.compile(rb"\s*(?:data:|event:|:|id:|retry:)")
"""A server-sent event field after any leading whitespace (matched in place, no copy)."""


def looks_like_sse(head: bytes) -> bool:
    """True when ``head`` starts (after whitespace) like a server-sent event stream."""
    return _SSE_START.match(head) is not None
