"""Pipelined ``XADD … MAXLEN ~`` batches packed by hand, for a plain (non-cluster) Redis.

redis-py's pipeline spends ~12 µs per command queueing it, packing it
(``pack_commands``) and parsing its reply into a list. Here the RESP bytes of
a whole batch are built in one pass (the command head of each stream is
made once), written with the connection's ``send_packed_command`` and the
replies read with ``read_response``; the connection is the client's own,
from its pool, so timeouts, TLS, authentication and reconnection are
redis-py's. Any failure (an error reply included) disconnects it, so no
unread reply is left for the next batch, and is raised as the pipeline
would have raised it. A cluster client keeps redis-py's pipeline (it routes
each key to its node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_BIG = 16 * 1024
"""Values at least this long are sent as their own buffer, not copied into a joined one."""


class XaddPacker:
    """Builds the RESP bytes of a batch of ``XADD stream MAXLEN ~ maxlen * field value …``."""

    def __init__(self, maxlen: int) -> None:
        self._maxlen = b"%d" % maxlen
        self._heads: dict[tuple[str, int], bytes] = {}

    def _head(self, stream: str, nfields: int) -> bytes:
        key = (stream, nfields)
        head = self._heads.get(key)
        if head is None:
            name = stream.encode()
            m = self._maxlen
            head = b"".join(
                (
                    b"*%d\r\n$4\r\nXADD\r\n" % (6 + 2 * nfields),
                    b"$%d\r\n%s\r\n" % (len(name), name),
                    b"$6\r\nMAXLEN\r\n$1\r\n~\r\n",
                    b"$%d\r\n%s\r\n$1\r\n*\r\n" % (len(m), m),
                )
            )
            self._heads[key] = head
        return head

    def pack(self, entries: Sequence[tuple[str, Mapping[bytes, bytes]]]) -> list[bytes]:
        """The batch as a few buffers (large values apart, so they are not copied)."""
        out: list[bytes] = []
        parts: list[bytes] = []
        append = parts.append
        head = self._head
        big = _BIG
        for stream, entry in entries:
            append(head(stream, len(entry)))
            for key, value in entry.items():
                append(b"$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(value)))
                if len(value) >= big:
                    out.append(b"".join(parts))
                    out.append(value)
                    parts.clear()
                    append(b"\r\n")
                else:
                    append(value)
                    append(b"\r\n")
        if parts:
            out.append(b"".join(parts))
        return out


def send_batch(client: Any, packed: list[bytes], count: int) -> None:
    """Write ``packed`` on one of ``client``'s connections and read its ``count`` replies."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command(packed, check_health=False)
        read = conn.read_response
        for _ in range(count):
            read()
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def is_plain_redis(client: object) -> bool:
    """True for a redis-py ``Redis`` (one server, a connection pool), not a cluster client."""
    import redis

    return isinstance(client, redis.Redis)
