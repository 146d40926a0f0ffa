"""Pipeline figures for ``rawtap stats``: each shard's stream and groups, the sink.

Every figure comes from single-key commands (``XLEN``, ``XINFO STREAM``,
``XINFO GROUPS``, ``XINFO CONSUMERS`` on one shard at a time), so the same
code reads one Redis or a Redis Cluster.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rawtap.consumer.store import Sink
from rawtap.shared import reply_text

if TYPE_CHECKING:
    from rawtap.shared import RedisClient


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One consumer group as ``XINFO GROUPS`` reports it (``lag`` is None before Redis 7)."""

    name: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str
    entries_read: int | None = None
    backlog: int = 0
    """Entries the group has not read yet: ``lag`` capped by the length, 0 once it read the
    newest entry, the whole length when Redis does not say (before 7.0)."""
    idle_ms: int | None = None
    """Since the most recently active consumer of the group last read; None without consumers."""


@dataclass(frozen=True, slots=True)
class StreamFigures:
    """One shard's stream: its length and groups."""

    shard: int
    stream: str
    length: int
    groups: list[GroupFigures] = field(default_factory=list)
    removed: int | None = None
    """Entries ever removed from the stream (trimmed or deleted); Redis 7+."""

    @property
    def trimmed_before_delivery(self) -> int | None:
        """Entries trimmed before the slowest group read them (Redis 7+), else None.

        Trimming removes the oldest entries first, so when more entries were
        removed than the slowest group has read, the difference never reached it.
        """
        reads = [g.entries_read for g in self.groups]
        if self.removed is None or not reads or any(r is None for r in reads):
            return None
        return max(0, self.removed - min(r for r in reads if r is not None))

    @property
    def backlog(self) -> int:
        """Entries the slowest group has not read (the whole stream when no group exists)."""
        if not self.groups:
            return self.length
        return max(g.backlog for g in self.groups)

    @property
    def pending(self) -> int:
        """Entries read but not acknowledged, over all groups."""
        return sum(g.pending for g in self.groups)

    def lagging(self, lag_warn: int, stall_ms: int) -> str | None:
        """Why this shard lags (its backlog reached ``lag_warn``, or nobody reads it), or None."""
        backlog = self.backlog
        if backlog == 0:
            return None
        if not self.groups or all(g.consumers == 0 for g in self.groups if g.backlog):
            return f"{backlog} entries unread and no consumer in its group"
        idle = [g.idle_ms for g in self.groups if g.backlog and g.idle_ms is not None]
        if idle and min(idle) >= stall_ms:
            return f"{backlog} entries unread and no consumer read for {min(idle) / 1000:.1f} s"
        if backlog >= lag_warn:
            return f"{backlog} entries unread (at least {lag_warn})"
        return None


@dataclass(frozen=True, slots=True)
class PipelineFigures:
    """Every shard's figures, the dead letters and the rows stored."""

    shards: list[StreamFigures]
    dead_letters: int = 0
    stored: int | None = None

    @property
    def length(self) -> int:
        """Entries in all shard streams."""
        return sum(s.length for s in self.shards)

    @property
    def backlog(self) -> int:
        """Unread entries over all shards."""
        return sum(s.backlog for s in self.shards)

    @property
    def pending(self) -> int:
        """Unacknowledged entries over all shards."""
        return sum(s.pending for s in self.shards)


def gather_stream(client: "RedisClient", shard: int, stream: str) -> StreamFigures:
    """Read one shard's figures from Redis."""
    length = int(client.xlen(stream))
    if not length and not client.exists(stream):
        return StreamFigures(shard=shard, stream=stream, length=0)
    info = client.xinfo_stream(stream)
    newest = reply_text(info.get("last-generated-id"))
    groups: list[GroupFigures] = []
    for g in client.xinfo_groups(stream):
        lag = _int_or_none(g.get("lag"))
        last = reply_text(g["last-delivered-id"])
        name = reply_text(g["name"])
        consumers = int(g["consumers"])
        idle = None
        if consumers:
            idle = min(int(c["idle"]) for c in client.xinfo_consumers(stream, name))
        groups.append(
            GroupFigures(
                name=name,
                consumers=consumers,
                pending=int(g["pending"]),
                lag=lag,
                last_delivered_id=last,
                entries_read=_entries_read(g),
                backlog=0 if last == newest else length if lag is None else min(lag, length),
                idle_ms=idle,
            )
        )
    added = _int_or_none(info.get("entries-added"))
    return StreamFigures(
        shard=shard,
        stream=stream,
        length=length,
        groups=groups,
        removed=None if added is None else added - length,
    )


def gather(
    client: "RedisClient", streams: list[str], dead_stream: str, sink: Sink | None
) -> PipelineFigures:
    """Read every shard's figures (``streams[k]`` is shard k) and the sink's count."""
    return PipelineFigures(
        shards=[gather_stream(client, k, stream) for k, stream in enumerate(streams)],
        dead_letters=int(client.xlen(dead_stream)),
        stored=None if sink is None else sink.count(),
    )


def _entries_read(info: dict[str, Any]) -> int | None:
    read = _int_or_none(info.get("entries-read"))
    if read is None and reply_text(info.get("last-delivered-id")) == "0-0":
        return 0  # a group that has read nothing yet (Redis reports nil)
    return read


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
