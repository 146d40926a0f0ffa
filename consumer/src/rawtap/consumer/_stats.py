"""Pipeline figures for ``rawtap stats``: the stream, its groups, the sink."""

from dataclasses import dataclass, field
from typing import Any

import redis

from rawtap.consumer._sink import Sink


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One consumer group as ``XINFO GROUPS`` reports it (``lag`` is None before Redis 7)."""

    name: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str
    entries_read: int | None = None


@dataclass(frozen=True, slots=True)
class PipelineFigures:
    """Stream length, groups and rows stored."""

    stream: str
    length: int
    groups: list[GroupFigures] = field(default_factory=list)
    dead_letters: int = 0
    stored: int | None = None
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gather(
    client: "redis.Redis", stream: str, dead_stream: str, sink: Sink | None
) -> PipelineFigures:
    """Read the figures from Redis (and the sink, when given)."""
    length = int(client.xlen(stream))
    groups: list[GroupFigures] = []
    if length or client.exists(stream):
        for info in client.xinfo_groups(stream):
            lag = info.get("lag")
            groups.append(
                GroupFigures(
                    name=_text(info["name"]),
                    consumers=int(info["consumers"]),
                    pending=int(info["pending"]),
                    lag=None if lag is None else int(lag),
                    last_delivered_id=_text(info["last-delivered-id"]),
                    entries_read=_entries_read(info),
                )
            )
    removed = None
    if length or client.exists(stream):
        added = _int_or_none(client.xinfo_stream(stream).get("entries-added"))
        removed = None if added is None else added - length
    return PipelineFigures(
        stream=stream,
        length=length,
        groups=groups,
        dead_letters=int(client.xlen(dead_stream)),
        stored=None if sink is None else sink.count(),
        removed=removed,
    )


def _entries_read(info: dict[str, Any]) -> int | None:
    read = _int_or_none(info.get("entries-read"))
    if read is None and _text(info.get("last-delivered-id")) == "0-0":
        return 0  # a group that has read nothing yet (Redis reports nil)
    return read


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
