"""Writing a stored record back as an HTTP/1.1 response: status, safe headers, body or chunks.

The handler class is built per server (:func:`handler_for`) because
``http.server`` instantiates it per connection and passes no context.
"""

import logging
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from rawtap.shared import EndState, Record
from rawtap.tools.replay._match import cut_path

logger = logging.getLogger("rawtap.tools.replay")

_SKIP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP field name (RFC 9110 token)."""

_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")


class ReplaySource(Protocol):
    """What a handler needs of its server: the bounds, the pace and the records."""

    idle_timeout_s: float
    max_request_bytes: int
    timing: bool
    speed: float

    def lookup(self, method: str, path: str, body: bytes) -> Record | None:
        """The record that answers this request, or None."""

    def left_out_header(self) -> None:
        """Count a stored header that could not be sent as one header line."""


def header_line(name: str, value: str) -> tuple[str, str] | None:
    """``(name, value)`` ready for ``send_header``, or None when it cannot be one header line."""
    if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
        return None
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        # send_header encodes latin-1: pass the UTF-8 bytes through unchanged instead of failing.
        value = value.encode("utf-8").decode("latin-1")
    return name, value


def handler_for(server: ReplaySource) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - one handler class; its methods are counted as the function's
    """A request handler class that answers from ``server``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Applies to each blocking read and write: a connection idle this long is closed.
        timeout = server.idle_timeout_s
        # Head and body are separate writes: without TCP_NODELAY, Nagle and the client's
        # delayed ACK hold each keep-alive answer back ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("replay: " + format, *args)  # noqa: G003 - http.server hands us its format

        def _answer(self) -> None:
            length = self._length()
            if length is None:
                return
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            record = server.lookup(self.command, path, body)
            if record is None:
                self._miss(path)
                return
            self._replay(record, time.monotonic())

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

        def _length(self) -> int | None:
            """The request's Content-Length, or None after answering 400/413 for a bad one."""
            text = self.headers.get("Content-Length") or "0"
            length = int(text) if text.isdigit() else -1
            if length < 0:
                self._refuse(400, f"Content-Length {text[:40]!r} is not a byte count")
                return None
            if length > server.max_request_bytes:
                self._refuse(413, f"request body above {server.max_request_bytes} bytes")
                return None
            return length

        def _refuse(self, status: int, message: str) -> None:
            self.close_connection = True  # the unread body is not to be taken for a request
            self._error(status, "rawtap_replay_bad_request", f"rawtap replay: {message}")

        def _miss(self, path: str) -> None:
            message = f"rawtap replay: no recorded response for {self.command} {cut_path(path)}"
            self._error(404, "rawtap_replay_miss", message)

        def _error(self, status: int, kind: str, message: str) -> None:
            payload = orjson.dumps({"error": {"message": message, "type": kind, "code": status}})
            self.send_response_only(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def _wait(self, start: float, offset_ns: int | None) -> None:
            if server.timing and offset_ns:
                delay = start + offset_ns / 1e9 / server.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        def _replay(self, record: Record, start: float) -> None:
            if record.status is None or record.end_state is EndState.TRANSPORT_ERROR:
                self.close_connection = True  # no response was ever received
                return
            streamed = record.stream or bool(record.chunks)
            complete = record.end_state is EndState.COMPLETE
            first = record.chunks[0].offset_ns if record.chunks else record.first_byte_ns
            self._wait(start, first)
            self.send_response_only(record.status)
            self._headers(record)
            if not streamed:
                self.send_header("Content-Length", str(len(record.body)))
                self.end_headers()
                self.wfile.write(record.body)
                if not complete:
                    self.close_connection = True
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pieces = record.chunk_bytes() if record.chunks else [record.body]
            offsets: list[int | None] = [c.offset_ns for c in record.chunks] or [first]
            for piece, offset in zip(pieces, offsets, strict=True):
                if not piece:
                    continue
                self._wait(start, offset)
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            if complete:
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.close_connection = True  # cut off as the original stream was

        def _headers(self, record: Record) -> None:
            for name, value in record.response_headers:
                if name.lower() in _SKIP_HEADERS:
                    continue
                line = header_line(name, value)
                if line is None:
                    server.left_out_header()
                    logger.warning(
                        "rawtap replay: record %s: header %r left out (CR, LF or NUL in it, "
                        "or not a valid name)",
                        record.record_id,
                        name[:80],
                    )
                    continue
                self.send_header(*line)

    return Handler
