"""The body a parser reads: decoded pieces, their arrival times, the joined bytes, its head."""

from typing import NamedTuple

from rawtap.shared import Record

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


def body_of(record: Record) -> Body:
    """The response body of ``record``, decoded (raises ``BodyDecodeError``)."""
    pieces = record.decoded_chunks()
    if record.chunks:
        offsets: list[int | None] = [c.offset_ns for c in record.chunks]
    else:
        offsets = [record.first_byte_ns] * len(pieces)
    return Body(pieces, offsets, b"".join(pieces))


def looks_like_sse(head: bytes) -> bool:
    start = head.lstrip()
    return start.startswith((b"data:", b"event:", b":", b"id:", b"retry:"))
