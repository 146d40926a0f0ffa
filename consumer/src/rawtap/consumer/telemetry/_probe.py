"""The stream gauges' figures: ``XINFO`` on a Redis connection of the probe's own.

Called on the metric reader's thread at collection time; the three gauges
(length, lag, pending) are collected one after the other, so one ``XINFO``
round, cached for a second, serves them all. Redis being down gives no
observation and one warning a minute; the worker goes on.
"""

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import Observation

from rawtap.shared import LogOnce, RedisClient


class StreamProbe:
    """XINFO figures for the stream gauges, on a connection of its own (metric thread)."""

    def __init__(self, connect: Callable[[], RedisClient]) -> None:
        self._connect = connect
        self._client: RedisClient | None = None
        self._cache: dict[str, tuple[float, Any]] = {}

    def observe(self, stream: str, dead: str, what: str, once: LogOnce) -> list[Observation]:
        try:
            figures = self._figures(stream, dead)
        except Exception:  # noqa: BLE001 - Redis down: no observation, the worker goes on
            once.warning("streams", "rawtap telemetry: cannot read stream figures", exc_info=True)
            return []
        (shard,) = figures.shards
        if what == "length":
            return [
                Observation(shard.length, {"messaging.destination.name": stream}),
                Observation(figures.dead_letters, {"messaging.destination.name": dead}),
            ]
        out = []
        for group in shard.groups:
            value = group.lag if what == "lag" else group.pending
            if value is not None:
                attrs = {
                    "messaging.destination.name": stream,
                    "messaging.consumer.group.name": group.name,
                }
                out.append(Observation(value, attrs))
        return out

    def _figures(self, stream: str, dead: str) -> Any:
        # The three gauges are collected one after the other: one XINFO round serves them.
        cached = self._cache.get(stream)
        now = time.monotonic()
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        from rawtap.consumer.read import gather

        if self._client is None:
            self._client = self._connect()
        figures = gather(self._client, [stream], dead, None)
        self._cache[stream] = (now, figures)
        return figures

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
