"""Which stored record answers a request: the IO-free half of replay.

:class:`Matcher` indexes records by a key (see ``MatchMode``) and hands them out
in capture order, repeating the last one; misses are counted and the last
``max_misses`` kept. It holds no socket, so an in-process transport can use it
as the HTTP server does.
"""

import threading
from collections import deque
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

import orjson

from rawtap.shared import Record

MatchMode = Literal["request", "path", "sequence"]
"""``request``: method, URL path and request body (JSON with sorted keys);
``path``: method and URL path; ``sequence``: the next record, whatever was asked."""

MISS_PATH_CHARS = 256
"""A miss is kept as ``METHOD /path``, the path cut to this many characters (then ``…``)."""


def canonical_body(body: bytes) -> bytes:
    """``body`` as matching compares it: JSON re-dumped with sorted keys, anything else as is."""
    if body[:1] in (b"{", b"["):
        try:
            return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            pass
    return body


def request_path(url: str | None) -> str:
    """The path of a recorded URL (``/`` when none was recorded)."""
    return urlsplit(url).path if url else "/"


def cut_path(path: str) -> str:
    """``path`` cut to :data:`MISS_PATH_CHARS` characters, marked ``…`` when cut."""
    return path if len(path) <= MISS_PATH_CHARS else path[:MISS_PATH_CHARS] + "…"


class Matcher:
    """Records queued by match key; thread-safe, so a threaded server can share one."""

    def __init__(self, records: Iterable[Record], match: MatchMode, max_misses: int) -> None:
        if match not in ("request", "path", "sequence"):
            raise ValueError(f"match={match!r}: use request, path or sequence")
        if max_misses < 0:
            raise ValueError("max_misses must be zero or more")
        self.match: MatchMode = match
        self.records = sorted(records, key=lambda r: (r.captured_at_ns, r.record_id))
        """Every record, in capture order."""
        self.miss_count = 0
        """Requests that matched no record, all of them (``misses`` keeps the last ones)."""
        self.served = 0
        """Requests answered with a record."""
        self._misses: deque[str] = deque(maxlen=max_misses)
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, ...], deque[Record]] = {}
        for record in self.records:
            key = self._key(record.method or "POST", request_path(record.url), record.request_body)
            self._queues.setdefault(key, deque()).append(record)

    def _key(self, method: str, path: str, body: bytes) -> tuple[str, ...]:
        if self.match == "sequence":
            return ("*",)
        if self.match == "path":
            return (method.upper(), path)
        return (method.upper(), path, canonical_body(body).hex())

    def lookup(self, method: str, path: str, body: bytes) -> Record | None:
        """The record that answers this request (advancing its queue), or None (a miss)."""
        with self._lock:
            queue = self._queues.get(self._key(method, path, body))
            if not queue:
                self.miss_count += 1
                self._misses.append(f"{method} {cut_path(path)}")
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
