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


@dataclass(frozen=True, slots=True)
class PipelineFigures:
    """Stream length, groups and rows stored."""

    stream: str
    length: int
    groups: list[GroupFigures] = field(default_factory=list)
    dead_letters: int = 0
    stored: int | None = None


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
                )
            )
    return PipelineFigures(
        stream=stream,
        length=length,
        groups=groups,
        dead_letters=int(client.xlen(dead_stream)),
        stored=None if sink is None else sink.count(),
    )
