"""The HTTP/1.1 layer: connections, request bodies, and writing a reply byte by recorded byte.

One daemon thread per connection (the SDKs keep connections alive and pool
them). ``ResponseWriter`` owns framing (Content-Length or chunked), gzip,
pacing and resets, the same for every provider, and records each write in
the exchange before making the next.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from rawtap.tools.fake_provider._log import Exchange
from rawtap.tools.fake_provider._reply import FRAMING, Headers, Reply

logger = logging.getLogger(__name__)

HEALTH_PATH = "/_fake/health"

# An RST instead of a FIN: SO_LINGER on, zero seconds.
_LINGER_ZERO = struct.pack("ii", 1, 0)
_MAX_BODY = 64 * 1024 * 1024


class ClientGone(Exception):
    """The client closed the connection while the server was writing."""


class Handler(BaseHTTPRequestHandler):
    """Reads requests off one keep-alive connection and hands them to the server's callback."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # stream chunks go out as written, not batched
    timeout = 120  # an idle keep-alive connection is dropped after this long
    server: Server

    def do_POST(self) -> None:
        self.server.serve(self)

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
            self.wfile.write(b"Content-Length: 3\r\n\r\nok\n")
            return
        self.server.serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)  # noqa: G003 - http.server hands us its format

    def read_body(self) -> bytes:
        """The request body: Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            # The trailer section runs to the first blank line.
            while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError(f"request body of {length} bytes is over the fake provider's limit")
        return self.rfile.read(length) if length else b""


class Server(HTTPServer):
    """An HTTPServer with one tracked daemon thread per connection."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], serve: Callable[[Handler], None]) -> None:
        self.serve = serve
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS.
        super(HTTPServer, self).server_bind()
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"fake-provider-{client_address[1]}",
            daemon=True,
        )
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one connection's failure must not stop the server
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fake provider: connection from %s failed", client_address, exc_info=True)

    def close_connections(self, timeout: float) -> None:
        """Wake every connection thread (shut its socket down) and wait for it to end."""
        with self._lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):  # already closed by its own thread
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


def accepts_gzip(accept_encoding: str | None, wanted: str = "gzip") -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (or the coding ``wanted``)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in {wanted, "*"}:
            q = params.strip().removeprefix("q=").strip()
            try:
                return q == "" or float(q) > 0
            except ValueError:
                return False
    return False


class ResponseWriter:
    """Writes one reply on a handler's connection, recording every byte in ``exchange``."""

    def __init__(self, handler: Handler, exchange: Exchange, reset_delay: float) -> None:
        self._handler = handler
        self._exchange = exchange
        self._reset_delay = reset_delay
        # Accumulated here and copied into the exchange once, in finish(): a
        # copy per write would be quadratic on long streams.
        self._wire = bytearray()
        self._body = bytearray()

    def finish(self) -> None:
        """Store what was written in the exchange; call once, whatever happened."""
        self._exchange.wire = bytes(self._wire)
        self._exchange.body = bytes(self._body)

    def reset_now(self) -> None:
        """Abort the connection with an RST before anything is written."""
        self._reset(0.0)

    def write(
        self,
        reply: Reply,
        *,
        gzip: bool,
        trailer: bool,
        delay: float,
        cut: bool,
        coding: str = "gzip",
    ) -> None:
        """Write ``reply`` on the connection.

        ``gzip`` codes the entity (``trailer=False`` leaves the gzip trailer
        off), ``delay`` seconds pass before each body write, and ``cut`` stops
        at about half the body and resets the connection.
        """
        ex = self._exchange
        plain = reply.chunks if reply.chunks is not None else [reply.body]
        if gzip and coding != "gzip":
            pieces = _encode_other(plain, coding, whole=not reply.chunked)
        else:
            pieces = _encode(plain, gzip=gzip, trailer=trailer, whole=not reply.chunked)
        framing: Headers = [("Content-Encoding", coding)] if gzip else []
        if reply.chunked:
            framing.append(("Transfer-Encoding", "chunked"))
        else:
            framing.append(("Content-Length", str(len(pieces[0]))))
        ex.head = self._head(reply, framing)
        if reply.chunked:
            self._write_chunked(pieces, plain, delay, cut)
        else:
            self._write_whole(pieces[0], delay, cut)

    def _head(self, reply: Reply, framing: Headers) -> bytes:
        headers: Headers = []
        for name, value in reply.headers:
            if (name, value) == FRAMING:
                headers += framing
            elif name == "Connection" and self._handler.close_connection:
                headers.append((name, "close"))  # the client asked for it
            else:
                headers.append((name, value))
        if FRAMING not in reply.headers:
            headers += framing
        lines = [f"HTTP/1.1 {reply.status} {reply.reason}"] + [f"{n}: {v}" for n, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write_whole(self, entity: bytes, delay: float, cut: bool) -> None:
        ex = self._exchange
        if cut:
            self._send(ex.head + entity[: len(entity) // 2])
            self._body += entity[: len(entity) // 2]
            self._reset(self._reset_delay)
            return
        if delay:
            self._send(ex.head)
            time.sleep(delay)
            self._send(entity)
        else:
            self._send(ex.head + entity)
        self._body += entity
        ex.complete = True

    def _write_chunked(
        self, pieces: list[bytes], plain: list[bytes], delay: float, cut: bool
    ) -> None:
        ex = self._exchange
        self._send(ex.head)
        # A mid-body reset stops at half the entity bytes: whole chunks up to
        # there, then the first part of the chunk that crosses the middle.
        budget = sum(map(len, pieces)) // 2 if cut else -1
        for index, piece in enumerate(pieces):
            if delay:
                time.sleep(delay)
            if 0 <= budget < len(piece):
                part = piece[: budget or len(piece) // 2]
                self._send(b"%x\r\n" % len(piece) + part)
                ex.chunks.append(part)
                self._body += part
                self._reset(self._reset_delay)
                return
            self._send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            ex.chunks.append(piece)
            self._body += piece
            if index < len(plain):  # the gzip trailer piece has no plain counterpart
                ex.decoded_chunks.append(plain[index])
            budget -= len(piece) if cut else 0
        self._send(b"0\r\n\r\n")
        ex.complete = True

    def _send(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
        except OSError as e:  # BrokenPipeError, ConnectionResetError, TimeoutError
            self._handler.close_connection = True
            raise ClientGone(f"{type(e).__name__}: {e}") from e
        self._wire += data

    def _reset(self, delay: float) -> None:
        # The pause lets the client take in the bytes already sent before the RST arrives.
        if delay:
            time.sleep(delay)
        handler = self._handler
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        # The read file holds a reference to the socket: close both so the fd
        # (and with it the RST) goes now, not when the handler unwinds.
        handler.rfile.close()
        handler.connection.close()


def _encode_other(plain: list[bytes], coding: str, *, whole: bool) -> list[bytes]:
    """Entity pieces coded with deflate (zlib-wrapped), br or zstd, flushed per chunk."""
    if coding == "deflate":
        deflate = zlib.compressobj(wbits=15)
        if whole:
            return [deflate.compress(plain[0]) + deflate.flush()]
        pieces = [deflate.compress(c) + deflate.flush(zlib.Z_SYNC_FLUSH) for c in plain]
        return [*pieces, deflate.flush()]
    if coding == "br":
        import brotli

        if whole:
            return [bytes(brotli.compress(plain[0]))]
        br = brotli.Compressor()
        pieces = [bytes(br.process(c)) + bytes(br.flush()) for c in plain]
        return [*pieces, bytes(br.finish())]
    import zstandard

    if whole:
        return [zstandard.ZstdCompressor().compress(plain[0])]
    zstd = zstandard.ZstdCompressor().compressobj()
    pieces = [zstd.compress(c) + zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for c in plain]
    return [*pieces, zstd.flush()]


def _encode(plain: list[bytes], *, gzip: bool, trailer: bool, whole: bool) -> list[bytes]:
    """Entity pieces as written: gzip-coded when ``gzip`` (one member, sync-flushed per chunk)."""
    if not gzip:
        return plain
    compressor = zlib.compressobj(wbits=31)
    if whole:
        data = compressor.compress(plain[0]) + compressor.flush()
        # The trailer is the member's last eight bytes: CRC32 and length.
        return [data if trailer else data[:-8]]
    # A sync flush makes every chunk decodable on arrival, as streaming gzip
    # proxies do; it is never empty, so it never reads as the last chunk.
    pieces = [compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH) for chunk in plain]
    if trailer:
        pieces.append(compressor.flush())
    return pieces
