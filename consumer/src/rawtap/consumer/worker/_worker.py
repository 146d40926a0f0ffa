"""The Worker: one consumer-group member that moves records from a stream to a sink.

The loop, per shard::

    XREADGROUP  own pending entries first (after a restart), then ">" with COUNT/BLOCK
    XAUTOCLAIM  every claim interval: entries idle past claim_idle in dead consumers
                (worker._recovery)
      → one batch: triage, derive, commit, ledger, dead letters, XACK (worker._batch)

This module owns the lifecycle (sink, Redis, signals, telemetry), the shards
and the loop over them; a batch's sorting is IO-free (worker._triage) and its
commit with retry and bisection is worker._commit.

A crash anywhere before XACK leaves the entries pending; the restarted worker
(same consumer name) reads its pending list before anything new, and other
workers reclaim the entries of one that never comes back. An entry delivered
more than ``max_deliveries`` times, an undecodable one, or a record the sink
refuses as data goes to the dead-letter stream. A *transient* sink failure
(database down or locked) keeps the batch in hand and retries the commit with
backoff, acknowledging nothing; Redis failures back off and re-read the
pending list. SIGTERM/SIGINT stop the reading; the batch in hand is committed
and acknowledged, and ``run`` returns.

**Shards.** A worker reads every shard (``rawtap:{0}`` …) or the subset
``read_shards`` names, one single-key command at a time: each shard has its
own consumer group, pending cursor, claim loop and Redis backoff, so a shard
whose node fails over does not stall the others. While entries flow, every
shard gets one non-blocking read per sweep (round robin, so no shard starves);
once a sweep finds nothing, the worker blocks on one shard at a time, in turn,
for ``block_ms / shards``, so a new entry on any shard is seen within about
``block_ms``.
"""

import functools
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import redis

from rawtap.consumer.store import LedgerReader, RetentionSchedule, Sink, open_sink
from rawtap.consumer.telemetry import WorkerTelemetry, WorkerView
from rawtap.consumer.worker._batch import BatchHandler
from rawtap.consumer.worker._commit import Committer, Stopped
from rawtap.consumer.worker._gc import tuned_collector
from rawtap.consumer.worker._recovery import Recovery
from rawtap.consumer.worker._redis import connect, describe, ensure_group, wait_for_redis
from rawtap.consumer.worker._stats import BACKOFF_FIRST_S, BACKOFF_MAX_S, WorkerStats
from rawtap.consumer.worker._triage import Entry
from rawtap.shared import StreamNames, WorkerSettings, load_settings

if TYPE_CHECKING:
    from rawtap.shared import RedisClient

logger = logging.getLogger(__name__)

__all__ = ["Worker", "WorkerStats"]


@dataclass(slots=True)
class _Shard:
    """Where the worker stands on one shard's stream."""

    stream: str
    cursor: bytes | None = b"0"
    """Our own pending entries are read first, from this id; None once we read new ones."""
    group_ready: bool = False
    had_group: bool = False
    """The group existed once: creating it again means Redis lost it."""
    retry_at: float = 0.0
    delay: float = BACKOFF_FIRST_S


class Worker:
    """Consumes rawtap's shard streams into a sink, acknowledging only after commit.

    ``Worker(**overrides)`` reads :class:`rawtap.shared.WorkerSettings` from
    ``RAWTAP_*`` variables and keyword arguments; a sink or a Redis client may
    be passed in (the worker then does not close them). ``run()`` blocks until
    ``stop()`` is called or a SIGTERM/SIGINT arrives. ``telemetry`` defaults to
    :meth:`WorkerTelemetry.from_env` (off unless ``OTEL_*`` asks for it), which
    the worker flushes and shuts down when it stops; one passed in is the caller's.
    """

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        sink: Sink | None = None,
        client: "RedisClient | None" = None,
        telemetry: WorkerTelemetry | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = settings or load_settings(WorkerSettings, **overrides)
        names = StreamNames(self.settings.stream_prefix)
        self.streams = [names.shard(k) for k in self.settings.assigned_shards]
        """The shard streams this worker reads."""
        self.stream = self.streams[0]
        """The first of them (the only one with a single shard)."""
        self.dead_letter_stream = StreamNames(self.settings.stream_prefix).dead_letters
        self._owns_sink = sink is None
        self._sink = sink
        self._owns_client = client is None
        self._client = client
        self._stopping = threading.Event()
        self.stats = WorkerStats()
        self._idle = threading.Event()
        self._claim_every_s = min(30.0, max(0.05, self.settings.claim_idle_ms / 2000))
        self._claim_at = 0.0
        self._retention = RetentionSchedule(
            self.settings.retention_s, self.settings.retention_interval_s
        )
        self._owns_telemetry = telemetry is None
        self.telemetry = telemetry or WorkerTelemetry.from_env(self.settings.consumer)
        # A sink passed in has no URL to open a reading handle of its own from.
        self._ledger_reader = LedgerReader(self.settings.sink_url if sink is None else None)
        # Held here: telemetry holds it weakly, so its observations end with the worker.
        self._telemetry_view = WorkerView(
            consumer=self.settings.consumer,
            group=self.settings.group,
            redis_url=self.settings.redis_url,
            streams=tuple(self.streams),
            dead_letter_stream=self.dead_letter_stream,
            stats=functools.partial(asdict, self.stats),
            connect_redis=functools.partial(connect, self.settings, name="rawtap-telemetry"),
            ledger=self._ledger_reader,
        )
        self.telemetry.observe(self._telemetry_view)
        committer = Committer(self.stats, self._stopping)
        self._batches = BatchHandler(
            self.settings, self.dead_letter_stream, self.stats, committer, self.telemetry
        )
        self._recovery = Recovery(
            self.settings,
            self.stats,
            self._stopping,
            committer,
            functools.partial(self._batches.handle, recovered=True),
        )

    # -- lifecycle -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and return (thread- and signal-safe)."""
        self._stopping.set()

    @property
    def idle(self) -> bool:
        """True while the last read found nothing to do (no pending entries, no new ones)."""
        return self._idle.is_set()

    def run(self, *, handle_signals: bool = False) -> WorkerStats:
        """Consume until stopped; return the counters. Installs SIGTERM/SIGINT handlers if asked."""
        previous: dict[signal.Signals, Any] = {}
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        started = time.monotonic()
        try:
            if self._sink is None:
                self._sink = open_sink(self.settings.sink_url)
            self._ledger_reader.sink = self._sink
            if self._client is None:
                self._client = wait_for_redis(
                    self.settings, self._stopping, first_s=BACKOFF_FIRST_S, max_s=BACKOFF_MAX_S
                )
            if self._client is not None:
                with tuned_collector():
                    self._loop(self._client, self._sink)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close()
            if self._owns_telemetry:
                self.telemetry.close()  # after the last acknowledgement, within its bound
            logger.info(
                "rawtap worker %s stopped after %.1fs: %s",
                self.settings.consumer,
                time.monotonic() - started,
                self.stats.summary(),
            )
        return self.stats

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "rawtap worker %s: %s received, finishing the batch in hand",
            self.settings.consumer,
            signal.Signals(signum).name,
        )
        self.stop()

    def _close(self) -> None:
        self._ledger_reader.close()
        if self._owns_sink and self._sink is not None:
            self._sink.close()
        if self._owns_client and self._client is not None:
            self._client.close()

    # -- the loop ----------------------------------------------------------------

    def _loop(self, client: "RedisClient", sink: Sink) -> None:
        shards = [_Shard(stream) for stream in self.streams]
        idle = False
        turn = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            live = [shard for shard in shards if shard.retry_at <= now]
            if not live:  # every shard is backing off after a Redis error
                self._stopping.wait(min(shard.retry_at for shard in shards) - now)
                continue
            self.stats.purged += self._retention.tick(sink)
            claim = now >= self._claim_at
            if claim:
                self._claim_at = now + self._claim_every_s
            if idle and not claim:
                # Nothing anywhere last time: wait for new entries on one shard at a time.
                turn = (turn + 1) % len(live)
                visit, block = [live[turn]], max(1, self.settings.block_ms // len(shards))
            else:
                visit, block = live, None
            found = False
            for shard in visit:
                if self._stopping.is_set():
                    break
                try:
                    found |= self._step(client, sink, shard, claim=claim, block=block)
                except Stopped:
                    return
                except redis.RedisError as e:
                    self._shard_failed(shard, e)
            idle = not found
            if idle:
                self._idle.set()
            else:
                self._idle.clear()

    def _step(
        self, client: "RedisClient", sink: Sink, shard: _Shard, *, claim: bool, block: int | None
    ) -> bool:
        """One read (and claim, when due) on one shard; True if there was something to do."""
        if not shard.group_ready:
            if ensure_group(client, shard.stream, self.settings.group):
                self.stats.groups_created += 1
                log = logger.warning if shard.had_group else logger.info
                log("created consumer group %s on %s", self.settings.group, shard.stream)
            shard.group_ready = shard.had_group = True
        if claim:
            self._claim_at = time.monotonic() + self._claim_every_s
            self._recovery.claim(client, sink, shard.stream)
        if shard.cursor is not None:
            entries = self._read(client, shard.stream, shard.cursor, block=None)
            if not entries:
                shard.cursor = None  # own pending list done: read new entries right away
                return True
            shard.cursor = entries[-1][0]
            self._batches.handle(client, sink, shard.stream, entries, recovered=True)
        else:
            entries = self._read(client, shard.stream, b">", block=block)
            if not entries:
                return False
            self._batches.handle(client, sink, shard.stream, entries, recovered=False)
        shard.delay = BACKOFF_FIRST_S
        return True

    def _shard_failed(self, shard: _Shard, error: redis.RedisError) -> None:
        """Back off on this shard only; re-read its pending list when it answers again."""
        shard.cursor = b"0"
        if isinstance(error, redis.ResponseError):
            shard.group_ready = False
            if "NOGROUP" in str(error):
                return  # Redis lost the group: recreate it at once
        self.stats.redis_errors += 1
        where = f" (stream {shard.stream})" if len(self.streams) > 1 else ""
        logger.warning(
            "%s%s; retrying in %.1fs",
            describe(error, self.settings.redis_url),
            where,
            shard.delay,
        )
        shard.retry_at = time.monotonic() + shard.delay
        shard.delay = min(shard.delay * 2, BACKOFF_MAX_S)

    def _read(
        self, client: "RedisClient", stream: str, cursor: bytes, block: int | None
    ) -> list[Entry]:
        reply = client.xreadgroup(
            self.settings.group,
            self.settings.consumer,
            {stream: cursor},
            count=self.settings.batch_size,
            block=block,
        )
        if not reply:
            return []
        # [[stream, [(id, fields), …]]] in RESP2; {stream: [[…]]} in RESP3.
        if isinstance(reply, dict):
            return cast(list[Entry], list(next(iter(reply.values()))[0]))
        return cast(list[Entry], list(reply[0][1]))
