"""Backpressure, per shard: spill a shard's records while its consumers lag towards ``maxlen``.

Sending into a stream whose slowest consumer group is far behind would let
``MAXLEN ~`` trim entries nobody has read. The writer reads every shard's
backlog (one pipelined trip every ``backlog_check_s``); a shard at the high
watermark is backpressured, and its records go to the journal until its
backlog is back under the low watermark. The other shards keep flowing.
"""

import logging

from rawtap.producer._ledger import Ledger
from rawtap.producer._writer._link import RedisLink
from rawtap.shared import LogOnce, ProducerSettings, RedisClient, reply_text

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)


class Backpressure:
    """Which shards take records now, and how many more before the cap (see the module)."""

    def __init__(
        self,
        settings: ProducerSettings,
        streams: list[str],
        ledger: Ledger,
        link: RedisLink,
        *,
        enabled: bool,
    ) -> None:
        self._settings = settings
        self._streams = streams
        self._ledger = ledger
        self._link = link
        self._enabled = enabled
        self.shards: set[int] = set()
        """The backpressured shards."""
        self._check_at = 0.0
        # Per shard, entries we may still add before the backlog reaches the high watermark,
        # as of the last check; sending spends it, so a burst cannot overrun the cap between
        # checks.
        self._budget = [float("inf")] * len(streams)

    def ok(self, shard: int) -> bool:
        """True when records of ``shard`` may go straight to Redis."""
        return not self._link.outage and shard not in self.shards and self._budget[shard] > 0

    def spend(self, shard: int, n: int) -> None:
        """``n`` entries went to ``shard``."""
        self._budget[shard] -= n
        if self._budget[shard] <= 0:
            self._check_at = 0.0  # near the cap: look at the backlog again before sending more

    def recheck(self) -> None:
        """Read the backlogs before sending again (Redis just came back)."""
        self._check_at = 0.0

    def maybe_check(self, now: float) -> None:
        """Read every shard's backlog when it is time to, and update which shards wait."""
        if not self._enabled or self._link.outage or now < self._check_at:
            return
        self._check_at = now + self._settings.backlog_check_s
        try:
            backlogs = read_backlogs(self._link.client(), self._streams)
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self._link.enter_outage(e, 0)
            return
        cap = self._settings.maxlen
        high = cap * self._settings.backlog_high_ratio
        for shard, backlog in enumerate(backlogs):
            self._budget[shard] = high - backlog
            if shard not in self.shards and backlog >= high:
                self.shards.add(shard)
                self._ledger.count("backpressure_episodes")
                _log_once.warning(
                    "backpressure",
                    "rawtap: consumers of %s lag (%d undelivered, cap %d); "
                    "spilling its records to the journal",
                    self._streams[shard],
                    backlog,
                    cap,
                )
            elif shard in self.shards and backlog <= cap * self._settings.backlog_low_ratio:
                self.shards.discard(shard)


def read_backlogs(client: RedisClient, streams: list[str]) -> list[int]:
    """Per shard, the entries its slowest group has not read yet (one pipelined trip).

    Redis's ``lag`` is missing before 7.0, and 7.0 leaves it stale once
    unread entries were trimmed, so it is capped by the stream's length and
    a group that has delivered the newest entry has no backlog at all.
    """
    import redis  # here, not at import: importing rawtap.producer must not import redis-py

    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_stream(stream)
        pipe.xinfo_groups(stream)
    replies = pipe.execute(raise_on_error=False)
    found: list[tuple[dict[str, object], list[dict[str, object]]] | None] = []
    for info, groups in zip(replies[0::2], replies[1::2], strict=True):
        for reply in (info, groups):
            if isinstance(reply, Exception) and not isinstance(reply, redis.ResponseError):
                raise reply
        if isinstance(info, redis.ResponseError):
            found.append(None)  # no stream yet
            continue
        found.append((info, [] if isinstance(groups, Exception) else groups))
    # Entries pending in a group are trimmed like any other: where a consumer died
    # holding some, the oldest pending entry is what MAXLEN must not reach.
    pipe = client.pipeline(transaction=False)
    asked = []
    for stream, item in zip(streams, found, strict=True):
        for g in item[1] if item else []:
            if int(str(g.get("pending") or 0)):
                pipe.xpending(stream, reply_text(g["name"]))
                asked.append(stream)
    oldest: dict[str, list[object]] = {}
    if asked:
        for stream, summary in zip(asked, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(summary, dict) and summary.get("min") is not None:
                oldest.setdefault(stream, []).append(summary["min"])
    return [
        0 if item is None else _backlog(item[0], item[1], oldest.get(stream, []))
        for stream, item in zip(streams, found, strict=True)
    ]


def _backlog(
    info: dict[str, object], groups: list[dict[str, object]], oldest_pending: list[object]
) -> int:
    """Entries of one stream that MAXLEN must not trim: unread ones, and pending ones.

    Unread: the slowest group's lag (capped by the length: Redis 7.0 leaves it
    stale after a trim; missing before 7.0, where the length stands in). Pending:
    how many entries lie from the oldest pending id to the end, estimated from
    the ids' millisecond timestamps (entries arrive at a roughly steady rate).
    """
    length = int(str(info["length"]))
    if not groups:
        return length  # no worker yet: everything is undelivered
    newest = info.get("last-generated-id")
    backlog = 0
    for g in groups:
        if newest is not None and g.get("last-delivered-id") == newest:
            continue
        lag = g.get("lag")
        backlog = max(backlog, length if lag is None else min(int(str(lag)), length))
    first = info.get("first-entry")
    if oldest_pending and newest is not None and first:
        first_ms, last_ms = _id_ms(first[0]), _id_ms(newest)  # type: ignore[index]
        pending_ms = min(_id_ms(i) for i in oldest_pending)
        if pending_ms <= first_ms:
            return length  # at the very front: the next trim takes it
        share = (last_ms - pending_ms) / max(1, last_ms - first_ms)
        backlog = max(backlog, int(length * share))
    return backlog


def _id_ms(entry_id: object) -> int:
    return int(reply_text(entry_id).split("-", 1)[0])
