"""Server-sent events from a body delivered in chunks, each with the chunk that completed it."""

from collections.abc import Sequence
from typing import NamedTuple


class SseEvent(NamedTuple):
    """One server-sent event and the index of the chunk whose arrival completed it."""

    name: str | None
    data: str
    chunk: int


def sse_events(pieces: Sequence[bytes]) -> list[SseEvent]:
    """The events in a body delivered as ``pieces`` (any line ending; an unterminated tail dropped).

    As the SSE specification says, an event is dispatched at the blank line that
    ends it, so a stream cut in the middle of an event does not yield half of it.
    """
    events: list[SseEvent] = []
    pending = b""
    held_cr = b""
    for index, piece in enumerate(pieces):
        data = held_cr + piece
        held_cr = b""
        if data.endswith(b"\r"):  # may be the first half of a CRLF split across chunks
            data, held_cr = data[:-1], b"\r"
        pending += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while True:
            end = pending.find(b"\n\n")
            if end < 0:
                break
            block, pending = pending[:end], pending[end + 2 :]
            event = _parse_block(block, index)
            if event is not None:
                events.append(event)
    return events


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
