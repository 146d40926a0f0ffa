"""Redis key naming for rawtap's streams, and which shard a record goes to.

Every key carries a hash tag (``{…}``) so that a Redis Cluster places each
shard on its own slot and no command ever spans two slots.

A record's shard is a hash of its session (``crc32(session_id) % shards``), so
every record of a session lands on one shard and keeps its order there.
Records without a session carry no order promise and are spread by their
``seq``. The hash is computed on the producer's writer thread, never on the
caller's path.
"""

import zlib
from dataclasses import dataclass

MAX_SHARDS = 1024
"""Upper bound on ``shards``: far above what one Redis Cluster needs (see docs/scaling.md)."""


@dataclass(frozen=True, slots=True)
class StreamNames:
    """The Redis keys under one prefix (default ``rawtap``).

    >>> StreamNames("rawtap").shard(0)
    'rawtap:{0}'
    >>> StreamNames("rawtap").shards(3)
    ['rawtap:{0}', 'rawtap:{1}', 'rawtap:{2}']
    """

    prefix: str = "rawtap"

    def shard(self, index: int) -> str:
        """The stream key of shard ``index`` (``rawtap:{0}``, ``rawtap:{1}``, …)."""
        return f"{self.prefix}:{{{index}}}"

    def shards(self, count: int) -> list[str]:
        """The stream keys of shards ``0 … count-1``."""
        return [self.shard(i) for i in range(count)]

    @property
    def dead_letters(self) -> str:
        """The dead-letter stream (``rawtap:{dead}``)."""
        return f"{self.prefix}:{{dead}}"


def shard_for(session_id: object, seq: int, shards: int) -> int:
    """The shard of a record: by its session (stable across processes), else by ``seq``.

    >>> shard_for("user-42", 7, 8) == shard_for("user-42", 8, 8)
    True
    >>> shard_for(None, 9, 8)
    1
    """
    if shards <= 1:
        return 0
    if session_id is None:
        return seq % shards
    text = session_id if isinstance(session_id, str) else str(session_id)
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % shards


def parse_shard_set(text: str, shards: int) -> tuple[int, ...]:
    """Shard indexes from ``"0-3,6"`` (ranges and single indexes), each below ``shards``.

    Raises ValueError naming what is wrong.

    >>> parse_shard_set("0-2,5", 8)
    (0, 1, 2, 5)
    """
    chosen: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if dash else lo
        except ValueError:
            raise ValueError(f"{part!r} is not a shard index or a range like 0-3") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"{part!r} is not a valid range")
        if hi >= shards:
            raise ValueError(f"shard {hi} does not exist (shards 0-{shards - 1})")
        chosen.update(range(lo, hi + 1))
    if not chosen:
        raise ValueError("names no shard")
    return tuple(sorted(chosen))
