"""Taking over what dead consumers left: claim, trimmed pending ids, consumers removed.

Every claim interval, per shard: XAUTOCLAIM the entries idle past
``claim_idle`` (following its cursor) and handle them like any batch; account
and acknowledge pending ids whose entries MAXLEN trimmed away; then delete
consumers that have nothing pending and have been silent past
``consumer_expiry``. The order matters: a consumer is deleted only after its
pending entries were reclaimed (``XGROUP DELCONSUMER`` would lose them).
"""

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from rawtap.consumer.store import Sink
from rawtap.consumer.worker._commit import Committer
from rawtap.consumer.worker._stats import WorkerStats
from rawtap.consumer.worker._triage import Entry
from rawtap.shared import WorkerSettings

if TYPE_CHECKING:
    from rawtap.shared import RedisClient

logger = logging.getLogger(__name__)

HandleBatch = Callable[["RedisClient", Sink, str, Sequence[Entry]], None]
"""Handles entries read again (claimed): ``(client, sink, stream, entries)``."""


class Recovery:
    """One worker's claim loop over a shard, counting into ``stats``."""

    def __init__(
        self,
        settings: WorkerSettings,
        stats: WorkerStats,
        stopping: threading.Event,
        committer: Committer,
        handle: HandleBatch,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._stopping = stopping
        self._committer = committer
        self._handle = handle

    def claim(self, client: "RedisClient", sink: Sink, stream: str) -> None:
        """Take over entries idle past ``claim_idle`` (XAUTOCLAIM, following its cursor)."""
        settings = self._settings
        start = b"0-0"
        while not self._stopping.is_set():
            reply = client.xautoclaim(
                stream,
                settings.group,
                settings.consumer,
                min_idle_time=settings.claim_idle_ms,
                start_id=start,
                count=settings.batch_size,
            )
            start = reply[0]
            # Redis 7 lists pending ids whose entries were trimmed (and drops them from
            # the pending list); Redis 6.2 returns them as (None, None) pairs instead,
            # ids unknown: those stay in the pending list until XPENDING names them.
            entries = [e for e in reply[1] if e and e[0] is not None]
            deleted = list(reply[2]) if len(reply) > 2 else []
            if len(entries) < len(reply[1]):
                self._clear_trimmed_pending(client, sink, stream)
            if deleted:
                self._committer.account_trimmed(
                    sink, stream, [d if isinstance(d, bytes) else bytes(d) for d in deleted]
                )
            if entries:
                self._stats.claimed += len(entries)
                logger.info(
                    "reclaimed %d entries idle for %d ms from other consumers",
                    len(entries),
                    settings.claim_idle_ms,
                )
                self._handle(client, sink, stream, entries)
            if start in (b"0-0", "0-0"):
                break
        self._remove_dead_consumers(client, stream)

    def _clear_trimmed_pending(self, client: "RedisClient", sink: Sink, stream: str) -> None:
        """Redis 6.2: find claimed pending ids with no entry left, account and acknowledge them."""
        rows = client.xpending_range(
            stream, self._settings.group, "-", "+", 10_000, consumername=self._settings.consumer
        )
        gone = []
        for row in rows:
            entry_id = cast(bytes, row["message_id"])
            if not client.xrange(stream, min=entry_id, max=entry_id):
                gone.append(entry_id)
        if gone:
            self._committer.account_trimmed(sink, stream, gone)
            client.xack(stream, self._settings.group, *gone)

    def _remove_dead_consumers(self, client: "RedisClient", stream: str) -> None:
        """Delete consumers with nothing pending that have been silent for a long time."""
        expiry, me = self._settings.consumer_expiry_ms, self._settings.consumer
        for info in client.xinfo_consumers(stream, self._settings.group):
            name = info["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name == me or int(info["pending"]) or int(info["idle"]) < expiry:
                continue
            client.xgroup_delconsumer(stream, self._settings.group, name)
            self._stats.consumers_removed += 1
            logger.info("removed consumer %s: idle %d ms with nothing pending", name, info["idle"])
