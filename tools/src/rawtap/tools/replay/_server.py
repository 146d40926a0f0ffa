"""The replay HTTP server: a bounded thread per connection, a loop that ``close`` can stop.

Matching lives in :mod:`._match`, writing responses in :mod:`._http`.
"""

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from socketserver import BaseRequestHandler
from types import TracebackType
from typing import Any, Self

import orjson

from rawtap.shared import Record
from rawtap.tools.replay._http import handler_for
from rawtap.tools.replay._match import Matcher, MatchMode

logger = logging.getLogger("rawtap.tools.replay")

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
    """An HTTP server that answers requests with stored records (see the package docstring).

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
        if speed <= 0:
            raise ValueError("speed must be greater than zero")
        for name, value in (
            ("max_connections", max_connections),
            ("idle_timeout_s", idle_timeout_s),
            ("max_request_bytes", max_request_bytes),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        self._matcher = Matcher(records, match, max_misses)
        self.match: MatchMode = match
        self.records = self._matcher.records
        self.host = host
        self.timing = timing
        self.speed = speed
        self.idle_timeout_s = idle_timeout_s
        self.max_request_bytes = max_request_bytes
        self.unsafe_headers = 0
        """Stored headers left out of replayed responses (see the package docstring)."""
        self._httpd = _BoundedServer((host, port), handler_for(self), max_connections)
        # Never block in accept(): readiness can be stale when a client gives up first.
        self._httpd.socket.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._state = threading.Lock()
        self._stopping = False
        self._released = False
        self._loop_thread: int | None = None
        self._loop_done = threading.Event()
        self._thread: threading.Thread | None = None

    def lookup(self, method: str, path: str, body: bytes) -> Record | None:
        """The record that answers this request (advancing its queue), or None."""
        return self._matcher.lookup(method, path, body)

    def left_out_header(self) -> None:
        """Count a stored header left out of a response (``unsafe_headers``)."""
        self.unsafe_headers += 1

    @property
    def miss_count(self) -> int:
        """Requests that matched no record, all of them (``misses`` keeps the last ones)."""
        return self._matcher.miss_count

    @property
    def served(self) -> int:
        """Requests answered with a record."""
        return self._matcher.served

    @property
    def misses(self) -> list[str]:
        """``METHOD /path`` of the last ``max_misses`` requests that matched no record."""
        return self._matcher.misses

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
