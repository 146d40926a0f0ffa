"""Server-sent events: the events of a body and the chunk whose arrival completed each."""

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from typing import NamedTuple


class SseEvent(NamedTuple):
    """One server-sent event and the index of the chunk whose arrival completed it."""

    name: str | None
    data: str
    chunk: int


def sse_events(pieces: Sequence[bytes], joined: bytes | None = None) -> list[SseEvent]:
    """The events in a body delivered as ``pieces`` (any line ending; an unterminated tail dropped).

    As the SSE specification says, an event is dispatched at the blank line that
    ends it, so a stream cut in the middle of an event does not yield half of it.
    ``joined`` is ``b"".join(pieces)`` when the caller has it already. The body is
    read once, joined; each piece's end is mapped to its offset in the normalized
    text, and an event belongs to the first piece that reaches its blank line.
    """
    if joined is None:
        joined = b"".join(pieces)
    if b"\r" in joined:
        ends = _normalized_ends(pieces)
        # A CR that ends the body may be the first half of a CRLF that never came: dropped.
        text = joined.removesuffix(b"\r").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    else:
        ends = list(accumulate(map(len, pieces)))
        text = joined
    events: list[SseEvent] = []
    start = 0
    while True:
        end = text.find(b"\n\n", start)
        if end < 0:
            return events
        event = _parse_block(text[start:end], bisect_left(ends, end + 2))
        if event is not None:
            events.append(event)
        start = end + 2


def _normalized_ends(pieces: Sequence[bytes]) -> list[int]:
    """Where each piece's contribution ends in the normalized text.

    A CR that ends a piece counts with the next piece (it may be the first half of
    a CRLF split across pieces), as a reader that sees one piece at a time holds it.
    """
    ends: list[int] = []
    total = 0
    held = False
    for piece in pieces:
        if piece:
            length = len(piece) - piece.count(b"\r\n")
            if held and piece[:1] != b"\n":
                length += 1  # the held CR was alone: it is a line ending of its own
            held = piece[-1:] == b"\r"
            total += length - held
        ends.append(total)
    return ends


def _parse_block(block: bytes, chunk: int) -> SseEvent | None:
    name: str | None = None
    data: list[str] = []
    for raw_line in block.split(b"\n"):
        line = raw_line.decode("utf-8", errors="replace")
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    if not data:
        return None
    return SseEvent(name, "\n".join(data), chunk)
