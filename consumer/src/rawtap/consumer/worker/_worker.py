"""The Worker: one consumer-group member that moves records from a stream to a sink.

The loop, per batch::

    XREADGROUP  own pending entries first (after a restart), then ">" with COUNT/BLOCK
    XAUTOCLAIM  every claim interval: entries idle past claim_idle in dead consumers
      → decode and validate each entry (producer reports are accounted, not stored)
      → sink.write(records)          one transaction, idempotent on record_id
      → sink.write_accounting(...)   dead letters, reports, trimmed ids
      → XADD dead letters            to the dead-letter stream, for inspection/requeue
      → XACK everything handled      only after the commits

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import orjson
import redis

from rawtap.consumer.derivation import Derived, derive_all
from rawtap.consumer.store import (
    Accounting,
    DeadLetter,
    LedgerReader,
    RetentionSchedule,
    Sink,
    SinkError,
    open_sink,
)
from rawtap.consumer.telemetry import CommittedBatch, WorkerTelemetry, WorkerView
from rawtap.consumer.worker._redis import connect, describe, ensure_group
from rawtap.shared import (
    ENTRY_ENVELOPE,
    ENTRY_RECORD_ID,
    CodecError,
    Record,
    StreamNames,
    WorkerSettings,
    decode_entry,
    decode_report,
    is_report,
    load_settings,
)

if TYPE_CHECKING:
    from rawtap.shared import RedisClient

logger = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 5.0

Entry = tuple[bytes, dict[bytes, bytes] | None]


class _Stopped(Exception):
    """Raised inside a commit retry when a stop was requested and the sink is still down."""


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
    delay: float = _BACKOFF_FIRST_S


@dataclass(slots=True)
class WorkerStats:
    """What a worker has done since it started."""

    batches: int = 0
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    reports: int = 0
    dead_lettered: int = 0
    trimmed_lost: int = 0
    claimed: int = 0
    acked: int = 0
    sink_errors: int = 0
    redis_errors: int = 0
    groups_created: int = 0
    consumers_removed: int = 0
    derive_failures: int = 0
    purged: int = 0
    ledger_refused: int = 0

    def summary(self) -> str:
        """One dense line of counters for logs."""
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())


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
                self._client = self._wait_for_redis()
            if self._client is not None:
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

    def _wait_for_redis(self) -> "RedisClient | None":
        """Connect, waiting with backoff while Redis does not answer; None if stopped meanwhile.

        Logs once when Redis is found down and once when it answers. Refused
        credentials or permissions are not waited for: they raise at once.
        """
        delay = _BACKOFF_FIRST_S
        down_since: float | None = None
        while not self._stopping.is_set():
            client = None
            try:
                client = connect(self.settings, name=f"rawtap-worker:{self.settings.consumer}")
                client.ping()
            except (redis.AuthenticationError, redis.ResponseError):
                if client is not None:
                    client.close()
                raise
            except redis.RedisError as e:
                if client is not None:
                    client.close()
                if down_since is None:
                    down_since = time.monotonic()
                    logger.warning(
                        "%s; waiting for it (retrying with backoff up to %.0fs)",
                        describe(e, self.settings.redis_url),
                        _BACKOFF_MAX_S,
                    )
                self._stopping.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            if down_since is not None:
                logger.warning(
                    "Redis answers again after %.1fs; starting",
                    time.monotonic() - down_since,
                )
            return client
        return None

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
                except _Stopped:
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
            self._claim(client, sink, shard.stream)
        if shard.cursor is not None:
            entries = self._read(client, shard.stream, shard.cursor, block=None)
            if not entries:
                shard.cursor = None  # own pending list done: read new entries right away
                return True
            shard.cursor = entries[-1][0]
            self._handle(client, sink, shard.stream, entries, recovered=True)
        else:
            entries = self._read(client, shard.stream, b">", block=block)
            if not entries:
                return False
            self._handle(client, sink, shard.stream, entries, recovered=False)
        shard.delay = _BACKOFF_FIRST_S
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
        shard.delay = min(shard.delay * 2, _BACKOFF_MAX_S)

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

    # -- reclaiming from dead consumers -------------------------------------------

    def _claim(self, client: "RedisClient", sink: Sink, stream: str) -> None:
        """Take over entries idle past ``claim_idle`` (XAUTOCLAIM, following its cursor)."""
        self._claim_at = time.monotonic() + self._claim_every_s
        start = b"0-0"
        while not self._stopping.is_set():
            reply = client.xautoclaim(
                stream,
                self.settings.group,
                self.settings.consumer,
                min_idle_time=self.settings.claim_idle_ms,
                start_id=start,
                count=self.settings.batch_size,
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
                self._account_trimmed(
                    sink, stream, [d if isinstance(d, bytes) else bytes(d) for d in deleted]
                )
            if entries:
                self.stats.claimed += len(entries)
                logger.info(
                    "reclaimed %d entries idle for %d ms from other consumers",
                    len(entries),
                    self.settings.claim_idle_ms,
                )
                self._handle(client, sink, stream, entries, recovered=True)
            if start in (b"0-0", "0-0"):
                break
        self._remove_dead_consumers(client, stream)

    def _clear_trimmed_pending(self, client: "RedisClient", sink: Sink, stream: str) -> None:
        """Redis 6.2: find claimed pending ids with no entry left, account and acknowledge them."""
        rows = client.xpending_range(
            stream, self.settings.group, "-", "+", 10_000, consumername=self.settings.consumer
        )
        gone = []
        for row in rows:
            entry_id = cast(bytes, row["message_id"])
            if not client.xrange(stream, min=entry_id, max=entry_id):
                gone.append(entry_id)
        if gone:
            self._account_trimmed(sink, stream, gone)
            client.xack(stream, self.settings.group, *gone)

    def _remove_dead_consumers(self, client: "RedisClient", stream: str) -> None:
        """Delete consumers with nothing pending that have been silent for a long time.

        Only after their pending entries were reclaimed: deleting a consumer
        with pending entries would lose them (``XGROUP DELCONSUMER``).
        """
        expiry = self.settings.consumer_expiry_ms
        for info in client.xinfo_consumers(stream, self.settings.group):
            name = info["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name == self.settings.consumer or int(info["pending"]) or int(info["idle"]) < expiry:
                continue
            client.xgroup_delconsumer(stream, self.settings.group, name)
            self.stats.consumers_removed += 1
            logger.info("removed consumer %s: idle %d ms with nothing pending", name, info["idle"])

    # -- one batch -----------------------------------------------------------------

    def _deliveries(
        self, client: "RedisClient", stream: str, entries: Sequence[Entry]
    ) -> dict[bytes, int]:
        rows = client.xpending_range(
            stream,
            self.settings.group,
            min=entries[0][0],
            max=entries[-1][0],
            # Our pending list may hold more ids between these two than the batch has.
            count=max(len(entries) * 4, 10_000),
            consumername=self.settings.consumer,
        )
        return {cast(bytes, row["message_id"]): int(row["times_delivered"]) for row in rows}

    def _handle(
        self,
        client: "RedisClient",
        sink: Sink,
        stream: str,
        entries: Sequence[Entry],
        *,
        recovered: bool,
    ) -> None:
        started_ns = time.time_ns()
        self.stats.batches += 1
        self.stats.read += len(entries)
        deliveries = self._deliveries(client, stream, entries) if recovered else {}
        accounting = Accounting(stream=stream)
        records: list[tuple[bytes, Record]] = []
        letters: list[tuple[bytes, dict[bytes, bytes], DeadLetter]] = []
        now = time.time_ns()
        for entry_id, fields in entries:
            if not fields:
                # A pending id whose entry MAXLEN trimmed away: the data is gone.
                accounting.trimmed.append(entry_id.decode())
                continue
            delivered = deliveries.get(entry_id, 1)
            if delivered > self.settings.max_deliveries:
                error = f"delivered {delivered} times without being committed"
                letter = self._letter(stream, entry_id, fields, error, delivered, now)
                letters.append((entry_id, fields, letter))
                continue
            try:
                if is_report(fields):
                    accounting.reports.append(decode_report(fields))
                else:
                    records.append((entry_id, decode_entry(fields)))
            except CodecError as e:
                letter = self._letter(stream, entry_id, fields, str(e), delivered, now)
                letters.append((entry_id, fields, letter))
        # Derivation never raises; a body no parser can read is counted and stored raw.
        derived = derive_all([r for _, r in records])
        self.stats.derive_failures += sum(d.failed for d in derived)
        commit_started = time.perf_counter()
        refused = self._commit(sink, [r for _, r in records], derived)
        commit_s = time.perf_counter() - commit_started
        by_record = {id(rec): (entry_id, rec) for entry_id, rec in records}
        for rec, error in refused:
            entry_id, _ = by_record[id(rec)]
            fields = next(f for i, f in entries if i == entry_id)
            assert fields is not None
            letters.append(
                (
                    entry_id,
                    fields,
                    self._letter(stream, entry_id, fields, error, deliveries.get(entry_id, 1), now),
                )
            )
        accounting.dead.extend(letter for _, _, letter in letters)
        if accounting:
            self._write_ledger(sink, accounting)
        if letters:
            # The dead letters first, acknowledged only once Redis took them: an XADD
            # refused (out of memory) must not leave an acknowledged entry nowhere.
            dead = client.pipeline(transaction=False)
            for entry_id, fields, letter in letters:
                logger.warning("entry %s dead-lettered: %s", entry_id.decode(), letter.error)
                dead.xadd(
                    self.dead_letter_stream,
                    self._dead_letter_entry(stream, entry_id, fields, letter),  # type: ignore[arg-type]
                    maxlen=self.settings.dead_letter_maxlen,
                    approximate=True,
                )
            dead.execute()
        client.xack(stream, self.settings.group, *[entry_id for entry_id, _ in entries])
        self.stats.reports += len(accounting.reports)
        self.stats.dead_lettered += len(letters)
        self.stats.trimmed_lost += len(accounting.trimmed)
        self.stats.acked += len(entries)
        if self.telemetry.enabled:  # after XACK; never raises
            self.telemetry.batch_committed(
                self._committed(
                    stream, len(entries), records, derived, refused, started_ns, commit_s
                )
            )

    def _committed(
        self,
        stream: str,
        entries: int,
        records: list[tuple[bytes, Record]],
        derived: list[Derived],
        refused: list[tuple[Record, str]],
        started_ns: int,
        commit_s: float,
    ) -> CommittedBatch:
        """What telemetry learns of a handled batch: the records stored, with their fields."""
        refused_ids = {id(rec) for rec, _ in refused}
        return CommittedBatch(
            stream=stream,
            group=self.settings.group,
            consumer=self.settings.consumer,
            entries=entries,
            stored=tuple(
                (rec, fields)
                for (_, rec), fields in zip(records, derived, strict=True)
                if id(rec) not in refused_ids
            ),
            refused=len(refused),
            started_ns=started_ns,
            commit_s=commit_s if records else None,
        )

    def _account_trimmed(self, sink: Sink, stream: str, entry_ids: list[bytes]) -> None:
        accounting = Accounting(stream=stream, trimmed=[e.decode() for e in entry_ids])
        self._write_ledger(sink, accounting)
        self.stats.trimmed_lost += len(entry_ids)

    def _commit(
        self, sink: Sink, records: list[Record], derived: list[Derived]
    ) -> list[tuple[Record, str]]:
        """Commit ``records``; return those the sink refuses as data, with the reason."""
        if not records:
            return []
        try:
            stored = self._retry_sink(lambda: sink.write(records, time.time_ns(), derived))
        except SinkError as e:
            if len(records) == 1:
                return [(records[0], f"refused by the sink: {e}")]
            # Split to find the records the sink refuses; commit the rest.
            half = len(records) // 2
            return self._commit(sink, records[:half], derived[:half]) + self._commit(
                sink, records[half:], derived[half:]
            )
        self.stats.stored += stored
        self.stats.duplicates += len(records) - stored
        return []

    def _write_ledger(self, sink: Sink, accounting: Accounting) -> None:
        """Commit the ledger; what the sink refuses as data is logged and counted, never fatal.

        A ledger row describes an entry that may be garbage (that is why it is a
        dead letter): one the store refuses must not stop the worker, nor be
        retried forever. Split the batch to keep every row the store accepts.
        """
        try:
            self._retry_sink(lambda: sink.write_accounting(accounting))
        except SinkError as e:
            parts = accounting.split()
            if len(parts) > 1:
                for part in parts:
                    self._write_ledger(sink, part)
                return
            self.stats.ledger_refused += 1
            logger.warning("ledger row refused by the sink, not recorded (%s): %s", accounting, e)

    def _retry_sink(self, write: "Any") -> Any:
        """Run a sink write, retrying transient failures with backoff; raise data errors.

        An unexpected exception from a sink (a bug, a value a driver cannot adapt)
        is treated as a data error, so the batch is split and the culprit
        dead-lettered rather than the worker stopped.
        """
        delay = _BACKOFF_FIRST_S
        while True:
            try:
                try:
                    return write()
                except SinkError:
                    raise
                except Exception as e:
                    raise SinkError(f"{type(e).__name__}: {e}", transient=False) from e
            except SinkError as e:
                if not e.transient:
                    raise
                self.stats.sink_errors += 1
                if self._stopping.is_set():
                    logger.warning("sink still failing at stop; leaving the batch pending: %s", e)
                    raise _Stopped from e
                logger.warning(
                    "sink write failed, nothing acknowledged: %s; retrying in %.1fs", e, delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    def _letter(
        self,
        stream: str,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        error: str,
        deliveries: int,
        now: int,
    ) -> DeadLetter:
        record_id = fields.get(ENTRY_RECORD_ID)
        producer_id: str | None = None
        seq: int | None = None
        try:  # best effort: name the producer and seq so reconciliation can account for it
            envelope = orjson.loads(fields.get(ENTRY_ENVELOPE, b""))
            if isinstance(envelope, dict):
                pid, s = envelope.get("producer_id"), envelope.get("seq")
                producer_id = pid if isinstance(pid, str) else None
                seq = s if isinstance(s, int) else None
        except orjson.JSONDecodeError:
            pass
        return DeadLetter(
            stream=stream,
            entry_id=entry_id.decode(),
            error=error,
            deliveries=deliveries,
            dead_at_ns=now,
            record_id=record_id.decode("utf-8", "replace") if record_id else None,
            producer_id=producer_id,
            seq=seq,
        )

    def _dead_letter_entry(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes], letter: DeadLetter
    ) -> dict[bytes, bytes]:
        entry = {
            b"origin_stream": stream.encode(),
            b"origin_id": entry_id,
            b"group": self.settings.group.encode(),
            b"consumer": self.settings.consumer.encode(),
            b"error": letter.error.encode(),
            b"deliveries": str(letter.deliveries).encode(),
            b"dead_at_ms": str(letter.dead_at_ns // 1_000_000).encode(),
        }
        entry.update({b"f:" + name: value for name, value in fields.items()})
        return entry
