"""A deliberately dumb HTTP/1.1 client: raw bytes in, raw bytes out, for byte-exact checks."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass
class Dechunked:
    """A chunked entity taken apart."""

    payloads: list[bytes]
    sizes: list[int]  # as promised by each size line (the last may exceed its payload)
    terminated: bool  # the zero-size last chunk arrived


def dechunk(data: bytes) -> Dechunked:
    """Parse chunked framing (no trailers), tolerating a cut-off end."""
    payloads: list[bytes] = []
    sizes: list[int] = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return Dechunked(payloads, sizes, terminated=False)
        size = int(data[pos:end], 16)
        if size == 0:
            return Dechunked(payloads, sizes, terminated=data[end:] == b"\r\n\r\n")
        sizes.append(size)
        payloads.append(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """(status line and headers with the blank line, the rest)."""
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


@dataclass
class RawResult:
    """Everything one raw exchange received, and how the connection ended."""

    received: bytes
    reset: bool  # the connection ended with ECONNRESET rather than EOF
    arrivals: list[tuple[float, int]]  # (seconds since the request, bytes so far)


def request(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> RawResult:
    """Send one request with ``Connection: close`` and read until EOF or reset."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if body:
        all_headers["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    received = bytearray()
    arrivals: list[tuple[float, int]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        started = time.monotonic()
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return RawResult(bytes(received), True, arrivals)
            if not data:
                return RawResult(bytes(received), False, arrivals)
            received += data
            arrivals.append((time.monotonic() - started, len(received)))
