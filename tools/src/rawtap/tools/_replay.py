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
gets a 404 whose JSON body says so, and is counted in :attr:`ReplayServer.miss_count`;
the last ``max_misses`` of them are listed in :attr:`ReplayServer.misses`.
A record that ended before its headers (``transport_error``) closes the connection
without a response; a stream that did not complete is cut off without its end.

What a client can make it hold is bounded: at most ``max_connections`` connections
are served at once (each on its own thread; one more is answered 503 and closed),
a connection idle for ``idle_timeout_s`` is closed, a request body above
``max_request_bytes`` gets a 413, and a miss is kept with its path cut to
``MISS_PATH_CHARS``. A stored header that cannot be sent as one header line (CR,
LF or NUL in its value, a name that is not an HTTP token) is left out of the
replayed response, logged and counted in :attr:`ReplayServer.unsafe_headers`:
it is never sent raw, so a record cannot split the response.

:meth:`ReplayServer.close` stops :meth:`~ReplayServer.serve_forever` at once,
whichever thread runs it (also from a signal handler in that thread), and
closes the connections still open.
"""

import contextlib
import logging
import re
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseRequestHandler
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import orjson

from rawtap.shared import EndState, Record

logger = logging.getLogger(__name__)

MatchMode = Literal["request", "path", "sequence"]

_SKIP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


MISS_PATH_CHARS = 256
"""A miss is kept as ``METHOD /path``, the path cut to this many characters (then ``…``)."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP field name (RFC 9110 token)."""

_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")

_BUSY_BODY = orjson.dumps(
    {
        "error": {
            "message": "rawtap replay: too many connections",
            "type": "rawtap_replay_busy",
            "code": 503,
        }
    }
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


def _header_line(name: str, value: str) -> tuple[str, str] | None:
    """``(name, value)`` ready for ``send_header``, or None when it cannot be one header line."""
    if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
        return None
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        # send_header encodes latin-1: pass the UTF-8 bytes through unchanged instead of failing.
        value = value.encode("utf-8").decode("latin-1")
    return name, value


def _canonical_body(body: bytes) -> bytes:
    if body[:1] in (b"{", b"["):
        try:
            return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            pass
    return body


def _path(url: str | None) -> str:
    return urlsplit(url).path if url else "/"


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them; the rest get a 503."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseRequestHandler],
        max_connections: int,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open_lock = threading.Lock()
        self.open: set[socket.socket] = set()
        """Connections being served (closed by :meth:`close_connections`)."""
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):
                # A fresh socket's send buffer takes these ~200 bytes without blocking.
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        with self._open_lock:
            self.open.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        with self._open_lock:
            self.open.discard(request)
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is routine for a test server: no traceback.
        logger.debug("replay: connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut every open connection down, so its thread ends now."""
        with self._open_lock:
            connections = list(self.open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class ReplayServer:
    """An HTTP server that answers requests with stored records (see the module docstring).

    ``with ReplayServer(records) as server:`` starts it on a free port in a
    background thread; ``serve_forever()`` runs it in the calling thread instead,
    until :meth:`close`. ``timing=True`` sends each stream chunk at its recorded
    offset divided by ``speed``. ``max_connections``, ``idle_timeout_s``,
    ``max_request_bytes`` and ``max_misses`` bound what clients can make it hold.
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
        max_connections: int = 128,
        idle_timeout_s: float = 10.0,
        max_request_bytes: int = 64 * 1024 * 1024,
        max_misses: int = 1000,
    ) -> None:
        if match not in ("request", "path", "sequence"):
            raise ValueError(f"match={match!r}: use request, path or sequence")
        if speed <= 0:
            raise ValueError("speed must be greater than zero")
        for name, value in (
            ("max_connections", max_connections),
            ("idle_timeout_s", idle_timeout_s),
            ("max_request_bytes", max_request_bytes),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if max_misses < 0:
            raise ValueError("max_misses must be zero or more")
        self.match: MatchMode = match
        self.host = host
        self.timing = timing
        self.speed = speed
        self.idle_timeout_s = idle_timeout_s
        self.max_request_bytes = max_request_bytes
        self.records = sorted(records, key=lambda r: (r.captured_at_ns, r.record_id))
        self._misses: deque[str] = deque(maxlen=max_misses)
        self.miss_count = 0
        """Requests that matched no record, all of them (``misses`` keeps the last ones)."""
        self.served = 0
        self.unsafe_headers = 0
        """Stored headers left out of replayed responses (see the module docstring)."""
        self._queues: dict[tuple[str, ...], deque[Record]] = {}
        for record in self.records:
            self._queues.setdefault(self._key_of(record), deque()).append(record)
        self._lock = threading.Lock()
        self._httpd = _BoundedServer((host, port), _handler_for(self), max_connections)
        # Never block in accept(): readiness can be stale when a client gives up first.
        self._httpd.socket.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._state = threading.Lock()
        self._stopping = False
        self._released = False
        self._loop_thread: int | None = None
        self._loop_done = threading.Event()
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
                self.miss_count += 1
                self._misses.append(f"{method} {_cut(path)}")
                return None
            record = queue[0]
            if len(queue) > 1:
                queue.popleft()
            self.served += 1
            return record

    @property
    def misses(self) -> list[str]:
        """``METHOD /path`` of the last ``max_misses`` requests that matched no record."""
        with self._lock:
            return list(self._misses)

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 because ``max_connections`` were being served."""
        return self._httpd.refused

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        return len(self._httpd.open)

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
                target=self.serve_forever, name="rawtap-replay", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`close` (from any thread or a signal handler).

        Returns at once if the server is closed or already served from another thread.
        """
        with self._state:
            if self._stopping or self._loop_thread is not None:
                return
            self._loop_thread = threading.get_ident()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._httpd.socket, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _ in selector.select():
                        if key.fileobj is self._wake_r or self._stopping:
                            continue
                        self._accept()
        finally:
            self._release()
            self._loop_done.set()

    def _accept(self) -> None:
        try:
            request, address = self._httpd.get_request()
        except OSError:  # nothing to accept after all (the client went away)
            return
        if self._httpd.verify_request(request, address):
            self._httpd.process_request(request, address)
        else:
            self._httpd.shutdown_request(request)

    def close(self) -> None:
        """Stop serving, close open connections and release the port; idempotent.

        From another thread it returns once :meth:`serve_forever` has returned;
        from the serving thread itself (a signal handler) it only asks it to stop.
        """
        with self._state:
            self._stopping = True
            serving = self._loop_thread is not None and not self._loop_done.is_set()
            if not self._released:
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"x")
        if not serving:
            self._release()
        elif self._loop_thread != threading.get_ident():
            self._loop_done.wait(5)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _release(self) -> None:
        with self._state:
            if self._released:
                return
            self._released = True
        self._httpd.server_close()
        self._httpd.close_connections()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _cut(path: str) -> str:
    return path if len(path) <= MISS_PATH_CHARS else path[:MISS_PATH_CHARS] + "…"


def _handler_for(server: ReplayServer) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - one handler class; its methods are counted as the function's
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
            message = f"rawtap replay: no recorded response for {self.command} {_cut(path)}"
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
            for name, value in record.response_headers:
                if name.lower() in _SKIP_HEADERS:
                    continue
                line = _header_line(name, value)
                if line is None:
                    server.unsafe_headers += 1
                    logger.warning(
                        "rawtap replay: record %s: header %r left out (CR, LF or NUL in it, "
                        "or not a valid name)",
                        record.record_id,
                        name[:80],
                    )
                    continue
                self.send_header(*line)
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
