"""ReplayServer: serves stored records back over HTTP, byte for byte, in each provider's format.

Point a real SDK at it (``OpenAI(base_url=server.url + "/v1")``,
``Anthropic(base_url=server.url)``, ``genai.Client(http_options={"base_url": server.url})``)
and it gets the status, headers and body bytes the provider sent when the record
was made — including ``Content-Encoding`` and, for streams, the same chunks,
optionally at the recorded pace. Record in production, replay in CI.

How a request finds its record (``match``):

- ``request`` (default): same method, URL path and request body (JSON compared
  with sorted keys, so key order does not matter);
- ``path``: same method and URL path, in recorded order;
- ``sequence``: the next record, whatever was asked.

Records that match the same request are served in capture order (an SDK's retry
gets the next attempt); the last one is repeated. A request that matches nothing
gets a 404 whose JSON body says so, and is listed in :attr:`ReplayServer.misses`.
A record that ended before its headers (``transport_error``) closes the connection
without a response; a stream that did not complete is cut off without its end.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

import orjson

from rawtap.shared import EndState, Record

logger = logging.getLogger(__name__)

MatchMode = Literal["request", "path", "sequence"]

_SKIP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


def _canonical_body(body: bytes) -> bytes:
    if body[:1] in (b"{", b"["):
        try:
            return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            pass
    return body


def _path(url: str | None) -> str:
    return urlsplit(url).path if url else "/"


class ReplayServer:
    """An HTTP server that answers requests with stored records (see the module docstring).

    ``with ReplayServer(records) as server:`` starts it on a free port in a
    background thread; ``serve_forever()`` runs it in the calling thread instead.
    ``timing=True`` sends each stream chunk at its recorded offset divided by ``speed``.
    """

    def __init__(
        self,
        records: Iterable[Record],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        match: MatchMode = "request",
        timing: bool = False,
        speed: float = 1.0,
    ) -> None:
        if match not in ("request", "path", "sequence"):
            raise ValueError(f"match={match!r}: use request, path or sequence")
        if speed <= 0:
            raise ValueError("speed must be greater than zero")
        self.match: MatchMode = match
        self.host = host
        self.timing = timing
        self.speed = speed
        self.records = sorted(records, key=lambda r: (r.captured_at_ns, r.record_id))
        self.misses: list[str] = []
        """``METHOD /path`` of every request that matched no record."""
        self.served = 0
        self._queues: dict[tuple[str, ...], deque[Record]] = {}
        for record in self.records:
            self._queues.setdefault(self._key_of(record), deque()).append(record)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _key(self, method: str, path: str, body: bytes) -> tuple[str, ...]:
        if self.match == "sequence":
            return ("*",)
        if self.match == "path":
            return (method.upper(), path)
        return (method.upper(), path, _canonical_body(body).hex())

    def _key_of(self, record: Record) -> tuple[str, ...]:
        return self._key(record.method or "POST", _path(record.url), record.request_body)

    def lookup(self, method: str, path: str, body: bytes) -> Record | None:
        """The record that answers this request (advancing its queue), or None."""
        with self._lock:
            queue = self._queues.get(self._key(method, path, body))
            if not queue:
                self.misses.append(f"{method} {path}")
                return None
            record = queue[0]
            if len(queue) > 1:
                queue.popleft()
            self.served += 1
            return record

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="rawtap-replay", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`close` (from another thread or a signal)."""
        self._httpd.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread is not None or not getattr(self, "_closed", False):
            self._closed = True
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(5)
                self._thread = None
            self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _handler_for(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("replay: " + format, *args)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            record = server.lookup(self.command, path, body)
            if record is None:
                self._miss(path)
                return
            self._replay(record, time.monotonic())

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

        def _miss(self, path: str) -> None:
            message = f"rawtap replay: no recorded response for {self.command} {path}"
            payload = orjson.dumps(
                {"error": {"message": message, "type": "rawtap_replay_miss", "code": 404}}
            )
            self.send_response_only(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
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
            for name, value in record.response_headers:
                if name.lower() not in _SKIP_HEADERS:
                    self.send_header(name, value)
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

    return Handler
