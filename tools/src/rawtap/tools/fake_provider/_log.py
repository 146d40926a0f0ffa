"""The exchange log: every request the fake provider read and every byte it wrote back.

An ``Exchange`` enters the log as soon as its request is read, so it is there
by the time any client sees a response; the serving thread fills in the
response side and then marks it done (``Exchange.wait``). The log is guarded
by one lock; an exchange is only written by the thread serving it.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rawtap.shared import decode_body
from rawtap.tools.fake_provider._content import Usage
from rawtap.tools.fake_provider._scenario import Scenario


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the server read it: method, target, headers in order, body bytes."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        """The query string of the target (``""`` when there is none)."""
        return urlsplit(self.target).query

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return _first(self.headers, name)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(eq=False, slots=True)
class Exchange:
    """One request and exactly what the fake provider wrote back.

    Response side, filled in while serving (read it after ``wait()``; the
    log's ``last()`` waits for you):

    - ``head``: status line and headers as written, up to and including the
      blank line (empty when the connection was reset before headers);
    - ``body``: the entity as a client hands it up before content decoding:
      de-chunked, still gzip-compressed when ``Content-Encoding: gzip``;
    - ``chunks``: the chunk payloads as written (empty for a Content-Length
      reply; the last one partial after a mid-body reset);
    - ``decoded_chunks``: each fully written chunk before content coding;
    - ``wire``: every byte written on the socket, framing included.

    ``text``, ``usage`` and ``finish_reason`` are what the response says
    (``usage`` is ``None`` when the body carries none: error replies, chat
    streams without ``include_usage``); they describe the whole reply even
    when ``complete`` is false because it was cut short.
    """

    seq: int
    provider: str
    api: str
    model: str
    stream: bool
    scenario: Scenario
    attempt: int
    request: RecordedRequest = field(repr=False)
    started: float
    status: int | None = None
    head: bytes = field(default=b"", repr=False)
    body: bytes = field(default=b"", repr=False)
    chunks: list[bytes] = field(default_factory=list, repr=False)
    decoded_chunks: list[bytes] = field(default_factory=list, repr=False)
    wire: bytes = field(default=b"", repr=False)
    text: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    request_id: str | None = None
    reset: str | None = None
    complete: bool = False
    error: str | None = None
    finished: float | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        """True once the server has finished with this exchange."""
        return self._done.is_set()

    def wait(self, timeout: float = 5.0) -> Exchange:
        """Block until the server is done with this exchange; ``TimeoutError`` otherwise."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"exchange {self.seq} ({self.request.target}) still in flight")
        return self

    def mark_done(self, finished: float) -> None:
        """Called by the serving thread when nothing more will be written."""
        self.finished = finished
        self._done.set()

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Response headers parsed from ``head``, in order, duplicates kept."""
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = [line.split(":", 1) for line in lines if line]
        return [(name, value.strip()) for name, value in pairs]

    def header(self, name: str) -> str | None:
        """The first value of response header ``name`` (case-insensitive), or ``None``."""
        return _first(self.headers, name)

    @property
    def gzipped(self) -> bool:
        """True when the entity is compressed (gzip, or deflate/br/zstd)."""
        return bool(self.header("content-encoding"))

    @property
    def decoded_body(self) -> bytes:
        """``body`` after content decoding; a missing gzip trailer is tolerated."""
        coding = (self.header("content-encoding") or "").lower()
        if not coding:
            return self.body
        if coding != "gzip":
            return decode_body(self.body, coding)
        decoder = zlib.decompressobj(wbits=31)
        return decoder.decompress(self.body) + decoder.flush()

    def json(self) -> Any:
        """The decoded body parsed as JSON (JSON replies only)."""
        return json.loads(self.decoded_body)


def _first(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


class ExchangeLog:
    """Thread-safe, bounded record of exchanges plus the per-request attempt counters."""

    def __init__(self, max_exchanges: int | None = None) -> None:
        self._lock = threading.Lock()
        self._exchanges: deque[Exchange] = deque(maxlen=max_exchanges)
        self._attempts: dict[tuple[str, str, bytes], int] = {}
        self._seq = 0

    def next_seq(self) -> int:
        """A new exchange number (1, 2, …), never reused, even across ``clear()``."""
        with self._lock:
            self._seq += 1
            return self._seq

    def next_attempt(self, key: tuple[str, str, bytes]) -> int:
        """How many times ``key`` has been seen since the last reset, this time included."""
        with self._lock:
            count = self._attempts.get(key, 0) + 1
            self._attempts[key] = count
            return count

    def add(self, exchange: Exchange) -> None:
        """Append an exchange (dropping the oldest past ``max_exchanges``)."""
        with self._lock:
            self._exchanges.append(exchange)

    def snapshot(self) -> list[Exchange]:
        """The exchanges in arrival order."""
        with self._lock:
            return list(self._exchanges)

    def clear(self) -> None:
        """Forget every exchange and every attempt count."""
        with self._lock:
            self._exchanges.clear()
            self._attempts.clear()

    def reset_attempts(self) -> None:
        """Forget the attempt counts only: the next request of each kind is a first attempt."""
        with self._lock:
            self._attempts.clear()
