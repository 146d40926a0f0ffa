"""A stored body as the console shows it: decoded, pretty-printed, or as raw bytes.

Bodies are what a provider (or anyone on the path) sent: every view here is
plain text for the template to escape, and each is bounded, so a 50 MB body or
a compression bomb costs the page :data:`DISPLAY_LIMIT` bytes, not the body's size.
"""

import re
from dataclasses import dataclass, field

import orjson

from rawtap.shared import BodyDecodeError, decode_bounded

DISPLAY_LIMIT = 1 << 20
"""Decoded bytes a page shows of one body (1 MiB); the download has all of them."""

HEX_LIMIT = 64 * 1024
"""Bytes of a binary body shown as hex (64 KiB: 4,096 lines)."""

EVENT_LIMIT = 5_000
"""Server-sent events listed one per row; the rest are counted."""

_EVENT_SPLIT = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_SPLIT = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: its ``event:`` name (if any) and its data, pretty when JSON."""

    name: str | None
    data: str
    comment: bool = False


@dataclass(frozen=True, slots=True)
class BodyView:
    """One body's views: ``kind`` is ``empty``, ``json``, ``sse``, ``text`` or ``binary``."""

    kind: str
    size: int
    pretty: str = ""
    events: list[SseEvent] = field(default_factory=list)
    events_left: int = 0
    raw: str = ""
    """The bytes as text (UTF-8, undecodable bytes as U+FFFD) or, for binary, a hex dump."""
    raw_is_hex: bool = False
    notes: list[str] = field(default_factory=list)


def hex_dump(data: bytes, limit: int = HEX_LIMIT) -> str:
    """``offset  hex bytes  |ascii|`` lines, 16 bytes each, for at most ``limit`` bytes."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        row = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}  {hexes:<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit:,} more bytes (download the body for all of them)")
    return "\n".join(lines)


def _pretty_json(data: bytes) -> str | None:
    stripped = data.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return None
    try:
        return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # not JSON, or nested too deep
        return None


def _compact_json(data: bytes) -> str | None:
    """One event's JSON data on one line (keys in the provider's order), or None."""
    if data.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return orjson.dumps(orjson.loads(data)).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None


def sse_events(data: bytes, limit: int = EVENT_LIMIT) -> tuple[list[SseEvent], int]:
    """The events of an event-stream body, in order (at most ``limit``), and how many more."""
    events: list[SseEvent] = []
    blocks = [b for b in _EVENT_SPLIT.split(data) if b.strip()]
    for block in blocks[:limit]:
        name: str | None = None
        data_lines: list[bytes] = []
        comments: list[bytes] = []
        for line in _LINE_SPLIT.split(block):
            if line.startswith(b":"):
                comments.append(line[1:].lstrip())
                continue
            key, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if key == b"event":
                name = value.decode("utf-8", "replace")
            elif key == b"data":
                data_lines.append(value)
        if not data_lines and comments and name is None:
            text = b"\n".join(comments).decode("utf-8", "replace")
            events.append(SseEvent(None, text, comment=True))
            continue
        payload = b"\n".join(data_lines)
        text = _compact_json(payload) or payload.decode("utf-8", "replace")
        events.append(SseEvent(name, text))
    return events, max(0, len(blocks) - limit)


def _is_event_stream(content_type: str | None, stream: bool, data: bytes) -> bool:
    if content_type and "text/event-stream" in content_type.lower():
        return True
    head = data.lstrip()[:6]
    return stream and head.startswith((b"data:", b"event:"))


def body_view(
    body: bytes,
    *,
    content_encoding: str | None,
    content_type: str | None,
    stream: bool,
    limit: int = DISPLAY_LIMIT,
) -> BodyView:
    """The views of ``body`` as stored (``Content-Encoding`` undone, at most ``limit`` bytes)."""
    notes: list[str] = []
    if not body:
        return BodyView("empty", 0)
    try:
        data, whole = decode_bounded(body, content_encoding, limit)
    except BodyDecodeError as e:
        notes.append(f"The body cannot be decoded ({e}); shown as the bytes stored.")
        data, whole = body, True
    else:
        if content_encoding and data is not body:
            notes.append(f"Decoded from {content_encoding} ({len(body):,} bytes stored).")
    if len(data) > limit:  # no encoding (or none undone): the body itself is cut
        data, whole = data[:limit], False
    if not whole:
        notes.append(f"Only the first {limit:,} decoded bytes are shown; download the body.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # A cut may split a character at the end; anything else is binary.
        if whole or e.start < len(data) - 4:
            return BodyView("binary", len(body), raw=hex_dump(data), raw_is_hex=True, notes=notes)
        text = data.decode("utf-8", "replace")
    if _is_event_stream(content_type, stream, data):
        events, left = sse_events(data)
        return BodyView("sse", len(body), events=events, events_left=left, raw=text, notes=notes)
    pretty = _pretty_json(data) if whole else None
    if pretty is not None:
        return BodyView("json", len(body), pretty=pretty, raw=text, notes=notes)
    return BodyView("text", len(body), pretty=text, raw=text, notes=notes)
