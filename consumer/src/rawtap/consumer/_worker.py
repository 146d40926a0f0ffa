"""The Worker: one consumer-group member that moves records from a stream to a sink.

The loop, per batch::

    XREADGROUP (own pending entries first, then ">" with COUNT/BLOCK)
      → decode and validate each entry
      → sink.write(batch)          one transaction, idempotent on record_id
      → XADD dead letters          entries that cannot be decoded
      → XACK everything handled    only after the commit

A crash anywhere before XACK leaves the entries pending; the restarted worker
(same consumer name) reads its pending list before anything new. A sink or
Redis failure backs off and re-reads the pending list, acknowledging nothing
early. SIGTERM/SIGINT stop the reading; the batch in hand is committed and
acknowledged, and ``run`` returns.
"""

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, cast

import redis

from rawtap.consumer._derive import derive_all
from rawtap.consumer._redis import connect, describe, ensure_group
from rawtap.consumer._retention import RetentionSchedule
from rawtap.consumer._sink import Sink, SinkError, open_sink
from rawtap.shared import (
    CodecError,
    Record,
    StreamNames,
    WorkerSettings,
    decode_entry,
    load_settings,
)

logger = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 5.0

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass(slots=True)
class WorkerStats:
    """What a worker has done since it started."""

    batches: int = 0
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    trimmed_lost: int = 0
    acked: int = 0
    sink_errors: int = 0
    redis_errors: int = 0
    groups_created: int = 0
    derive_failures: int = 0
    purged: int = 0

    def summary(self) -> str:
        """One dense line of counters for logs."""
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())


class Worker:
    """Consumes one rawtap stream into a sink, acknowledging only after commit.

    ``Worker(**overrides)`` reads :class:`rawtap.shared.WorkerSettings` from
    ``RAWTAP_*`` variables and keyword arguments; a sink or a Redis client may
    be passed in (the worker then does not close them). ``run()`` blocks until
    ``stop()`` is called or a SIGTERM/SIGINT arrives.
    """

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        sink: Sink | None = None,
        client: "redis.Redis | None" = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = settings or load_settings(WorkerSettings, **overrides)
        self.stream = StreamNames(self.settings.stream_prefix).shard(0)
        self.dead_letter_stream = StreamNames(self.settings.stream_prefix).dead_letters
        self._owns_sink = sink is None
        self._sink = sink
        self._owns_client = client is None
        self._client = client
        self._stopping = threading.Event()
        self.stats = WorkerStats()
        self._idle = threading.Event()
        self._retention = RetentionSchedule(
            self.settings.retention_s, self.settings.retention_interval_s
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
            if self._client is None:
                self._client = connect(
                    self.settings, name=f"rawtap-worker:{self.settings.consumer}"
                )
            self._loop(self._client, self._sink)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close()
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
        if self._owns_sink and self._sink is not None:
            self._sink.close()
        if self._owns_client and self._client is not None:
            self._client.close()

    # -- the loop ----------------------------------------------------------------

    def _loop(self, client: "redis.Redis", sink: Sink) -> None:
        settings = self.settings
        cursor: bytes | None = b"0"  # our own pending entries first; None means read new ones
        group_ready = False
        delay = _BACKOFF_FIRST_S
        while not self._stopping.is_set():
            self.stats.purged += self._retention.tick(sink)
            try:
                if not group_ready:
                    if ensure_group(client, self.stream, settings.group):
                        self.stats.groups_created += 1
                        logger.info("created consumer group %s on %s", settings.group, self.stream)
                    group_ready = True
                if cursor is not None:
                    entries = self._read(client, cursor, block=None)
                    if not entries:
                        cursor = None
                        continue
                    cursor = entries[-1][0]
                else:
                    entries = self._read(client, b">", block=settings.block_ms)
                    if not entries:
                        self._idle.set()
                        continue
                self._idle.clear()
                self._handle(client, sink, entries)
                delay = _BACKOFF_FIRST_S
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):
                    self._fail("redis_errors", describe(e, settings.redis_url), delay)
                else:
                    logger.warning(
                        "consumer group %s on %s is gone; recreating it",
                        settings.group,
                        self.stream,
                    )
                group_ready = False
                cursor = b"0"
            except redis.RedisError as e:
                self._fail("redis_errors", describe(e, settings.redis_url), delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                cursor = b"0"
            except SinkError as e:
                self._fail("sink_errors", f"sink write failed, nothing acknowledged: {e}", delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                cursor = b"0"

    def _fail(self, counter: str, message: str, delay: float) -> None:
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        logger.warning("%s; retrying in %.1fs", message, delay)
        self._stopping.wait(delay)

    def _read(self, client: "redis.Redis", cursor: bytes, block: int | None) -> list[Entry]:
        reply = client.xreadgroup(
            self.settings.group,
            self.settings.consumer,
            {self.stream: cursor},
            count=self.settings.batch_size,
            block=block,
        )
        if not reply:
            return []
        # [[stream, [(id, fields), …]]] in RESP2; {stream: [[…]]} in RESP3.
        if isinstance(reply, dict):
            return cast(list[Entry], list(next(iter(reply.values()))[0]))
        return cast(list[Entry], list(reply[0][1]))

    def _handle(self, client: "redis.Redis", sink: Sink, entries: Sequence[Entry]) -> None:
        self.stats.batches += 1
        self.stats.read += len(entries)
        records: list[Record] = []
        dead: list[tuple[bytes, dict[bytes, bytes], str]] = []
        trimmed = 0
        for entry_id, fields in entries:
            if not fields:
                # A pending id whose entry MAXLEN trimmed away: the data is gone.
                trimmed += 1
                continue
            try:
                records.append(decode_entry(fields))
            except CodecError as e:
                dead.append((entry_id, fields, str(e)))
        if records:
            derived = derive_all(records)  # never raises; unreadable bodies are counted
            self.stats.derive_failures += sum(d.failed for d in derived)
            stored = sink.write(records, time.time_ns(), derived)
            self.stats.stored += stored
            self.stats.duplicates += len(records) - stored
        pipe = client.pipeline(transaction=False)
        for entry_id, fields, error in dead:
            logger.warning(
                "entry %s is not a valid record (%s); dead-lettered", entry_id.decode(), error
            )
            pipe.xadd(
                self.dead_letter_stream,
                self._dead_letter(entry_id, fields, error),  # type: ignore[arg-type]
                maxlen=self.settings.dead_letter_maxlen,
                approximate=True,
            )
        pipe.xack(self.stream, self.settings.group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
        self.stats.dead_lettered += len(dead)
        self.stats.trimmed_lost += trimmed
        self.stats.acked += len(entries)

    def _dead_letter(
        self, entry_id: bytes, fields: dict[bytes, bytes], error: str
    ) -> dict[bytes, bytes]:
        letter = {
            b"origin_stream": self.stream.encode(),
            b"origin_id": entry_id,
            b"group": self.settings.group.encode(),
            b"consumer": self.settings.consumer.encode(),
            b"error": error.encode(),
            b"dead_at_ms": str(time.time_ns() // 1_000_000).encode(),
        }
        letter.update({b"f:" + name: value for name, value in fields.items()})
        return letter
