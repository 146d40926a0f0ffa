"""The writer thread: buffer → serialize → pipelined ``XADD … MAXLEN ~`` → Redis.

One daemon thread per Recorder (per process). It sleeps on an event when the
buffer is empty, drains it in batches, serializes each record (the expensive
part, kept off the caller's thread) and sends the batch in one pipelined round
trip. Where a batch goes:

* **Redis**, normally;
* the **spill journal** on local disk when Redis fails (the outage lasts until
  every shard's node answers, probed with capped exponential backoff) or when the
  slowest consumer group's backlog on the record's shard nears ``maxlen``
  (sending would let MAXLEN trim undelivered entries). The journal is
  replayed, oldest segment first, once Redis answers and every shard's
  backlog is back under the low watermark;
* **dropped and counted** (by ``seq`` range and reason, reported to the
  workers) when the journal is full (``overflow`` policy) or the disk fails.

**Shards** (``shards = N``): each record goes to the stream of its shard
(:func:`rawtap.shared.shard_for`, a hash of the session computed here, not on
the caller's path). One pipeline carries a batch to all its shards; with a
Redis Cluster redis-py splits it per node, every command touching one key.
Backpressure is per shard: only the records of a lagging shard are spilled,
the others keep flowing. Producer reports go to every shard that is not
backpressured (they are cumulative, so a skipped copy loses nothing).

Without a journal (``spill_dir=""``) a failed batch is retried in memory; its
bytes stay counted against the buffer's bound, so ``record()`` starts refusing
(and counting) instead of growing memory.

redis-py is configured with explicit timeouts and *no* automatic retry: its
default (10 retries) can silently write one ``XADD`` twice and stall a thread
for a minute. Our own retries may also write an entry twice; the record id
makes the sink idempotent.
"""

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import redis

from rawtap.producer._buffer import Item, RecordBuffer
from rawtap.producer._events import Failed, MemoryWarning, Recorded
from rawtap.producer._journal import (
    EVERY_SHARD,
    Entry,
    JournalFull,
    Route,
    Segment,
    SpillJournal,
    encode_frame,
    read_frames,
)
from rawtap.producer._ledger import Ledger
from rawtap.producer._log import LogOnce
from rawtap.producer._redis_call import RedisCaller
from rawtap.producer._serialize import SerializedRecord, serialize
from rawtap.shared import (
    ENTRY_ENVELOPE,
    ENTRY_KIND,
    ProducerReport,
    ProducerSettings,
    StreamNames,
    encode_report,
    open_redis,
    shard_for,
)
from rawtap.shared._connection import RedisClient

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0
_IDLE_WAIT_S = 1.0
_REPLAY_WAIT_S = 0.05
# How long an unanswered Redis call may hold the writer while the buffer fills.
_STALL_S = 0.25


def connect(settings: ProducerSettings) -> RedisClient:
    """A redis-py client (Redis or Redis Cluster) with explicit timeouts and no retries."""
    return open_redis(
        settings.redis_url,
        cluster=settings.use_cluster,
        socket_timeout=settings.socket_timeout_s,
        connect_timeout=settings.connect_timeout_s,
        name="rawtap-producer",
    )


def journal_dir(settings: ProducerSettings) -> Path | None:
    """The spill directory for this Redis and stream prefix, or None when spilling is off."""
    if not settings.spill_dir:
        return None
    target = hashlib.sha256(settings.redis_url.encode()).hexdigest()[:10]
    return Path(settings.spill_dir) / f"{settings.stream_prefix}-{target}"


class StreamWriter:
    """Drains one Recorder's buffer into its Redis stream on a daemon thread."""

    def __init__(
        self,
        producer_id: str,
        ledger: Ledger,
        buffer: RecordBuffer,
        settings: ProducerSettings,
        journal: SpillJournal | None,
        client_factory: Callable[[ProducerSettings], RedisClient] = connect,
        *,
        on_fatal: Callable[[], None] = lambda: None,
    ) -> None:
        self._producer_id = producer_id
        self._ledger = ledger
        self._on_fatal = on_fatal
        self._buffer = buffer
        self._settings = settings
        self._journal = journal
        self._client_factory = client_factory
        self._client: RedisClient | None = None
        self.streams = StreamNames(settings.stream_prefix).shards(settings.shards)
        self.stream = self.streams[0]
        """The first shard's stream (the only one when ``shards`` is 1)."""
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._io = RedisCaller(self._stop_waiting)
        self._warned = False
        self._unsent = 0
        # Seqs of the batch being serialized and delivered, not yet counted anywhere.
        self._inflight: list[int] = []
        # Outage: Redis failed; batches spill until a probe succeeds.
        self._outage = False
        self._probe_at = 0.0
        self._backoff = _BACKOFF_FIRST_S
        # Backpressure, per shard: its consumers lag towards maxlen; that shard's records
        # spill until they catch up.
        self._backpressured: set[int] = set()
        self._check_at = 0.0
        # Per shard, entries we may still add before the backlog reaches the high watermark,
        # as of the last check; sending spends it, so a burst cannot overrun the cap between
        # checks.
        self._budget = [float("inf")] * len(self.streams)
        self._report_at = time.monotonic() + settings.report_interval_s
        self._reported: tuple[int, int] = (0, 0)
        self._replaying: tuple[Segment, Iterator[Frame]] | None = None
        self._thread = threading.Thread(target=self._run, name="rawtap-writer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Send (or spill) what is buffered for at most ``timeout`` seconds, then stop.

        Returns True when nothing accepted was lost; what could be neither sent
        nor spilled is dropped and counted under ``unsent_at_close``.
        """
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout + 1.0)
        if self._thread.is_alive():
            # Stuck in a Redis call (a stalled server answers nothing for up to
            # socket_timeout_s per try): what it holds and what is still buffered will
            # not be sent by this deadline. Count it now, so the counters add up at exit.
            rest = self._buffer.take(len(self._buffer))
            self._buffer.release(sum(item[1] for item in rest))
            seqs = sorted({*self._inflight, *(item[0] for item in rest)})
            self._unsent += len(seqs)
            self._ledger.drop(
                "unsent_at_close", seqs, "writer blocked on Redis at close", final=True
            )
            return False
        return self._unsent == 0

    def journal_fds(self) -> tuple[int, ...]:
        """Journal descriptors this writer holds (a segment being replayed), for a forked child."""
        return () if self._replaying is None else (self._replaying[0].fd,)

    @property
    def backpressured(self) -> bool:
        """True while at least one shard's consumers lag towards ``maxlen``."""
        return bool(self._backpressured)

    @property
    def backpressured_shards(self) -> list[int]:
        """The shards whose records are being spilled because their consumers lag."""
        return sorted(self._backpressured)

    @property
    def healthy(self) -> bool:
        """True when batches of every shard go straight to Redis."""
        return not self._outage and all(self._shard_ok(k) for k in range(len(self.streams)))

    def _stop_waiting(self, waited_s: float) -> bool:
        """Give up on a Redis call that has not answered for ``waited_s`` (see :mod:`._redis_call`)?

        Always once close()'s deadline has passed. With a journal, once the call
        has waited ``_STALL_S`` (a healthy Redis answers a batch far sooner) and the
        buffer is half full: spilling then keeps up with a stalled server.
        """
        if self._stop.is_set() and time.monotonic() >= self._deadline:
            return True
        if self._journal is None or waited_s < _STALL_S:
            return False
        buffer = self._buffer
        return buffer.nbytes * 2 >= buffer.max_bytes or len(buffer) * 2 >= buffer.max_items

    def _shard_ok(self, shard: int) -> bool:
        return not self._outage and shard not in self._backpressured and self._budget[shard] > 0

    def _spend(self, shard: int, n: int) -> None:
        self._budget[shard] -= n
        if self._budget[shard] <= 0:
            self._check_at = 0.0  # near the cap: look at the backlog again before sending more

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                self._maybe_probe(now)
                self._maybe_check_backlog(now)
                if now >= self._report_at and not self._stop.is_set():
                    self._report()  # under sustained load too, not only when idle
                batch = self._buffer.take(self._settings.send_batch_size)
                if batch:
                    self._inflight = [item[0] for item in batch]
                    self._handle(batch)
                    self._inflight = []
                    self._check_memory()
                    continue
                if self._stop.is_set():
                    break
                if self._journal is not None and self.healthy and self._replay_step():
                    continue
                self.wake.clear()
                if len(self._buffer) == 0:
                    replay_waits = self._journal is not None and not self._journal.is_empty()
                    self.wake.wait(_REPLAY_WAIT_S if replay_waits else _IDLE_WAIT_S)
            # The final report first: if Redis fails it, it is journaled and the replay
            # below gets a second chance to send it (after a fresh probe of every shard).
            self._probe_now()
            self._report(final=True)
            self._replay_before_exit()
        except Exception:  # a bug: keep the host alive, stop accepting, say so once
            logger.exception(
                "rawtap writer thread stopped by an unexpected error; recording is disabled"
            )
            self._ledger.count("internal_errors")
            self._on_fatal()
        finally:
            self._drop_rest()
            self._stop_replay(delete=False)
            if self._journal is not None:
                self._journal.close()
            self._io.close()
            if self._client is not None:
                self._client.close()

    def _handle(self, batch: list[Item]) -> None:
        nbytes = sum(item[1] for item in batch)
        records: list[SerializedRecord] = []
        shards = len(self.streams)
        for item in batch:
            try:
                rec = serialize(
                    item,
                    self._producer_id,
                    self._settings.service,
                    self._settings.max_record_bytes,
                    self._settings.redact_names,
                )
                rec.shard = shard_for(rec.session_id, item[0], shards)
                records.append(rec)
            except Exception as e:  # noqa: BLE001 - one bad record must not stop the others
                self._ledger.drop("serialize_error", [item[0]], repr(e))
        self._inflight = [rec.seq for rec in records]
        for rec in records:
            if rec.fallback:
                self._ledger.count("serialize_fallbacks")
            if rec.truncated:
                self._ledger.count("truncated")
        if records:
            self._deliver(records)
        self._buffer.release(nbytes)

    def _deliver(self, records: list[SerializedRecord]) -> None:
        if self._journal is None:
            if not self._send_until_done(records):
                self._unsent += len(records)
                self._ledger.drop(
                    "unsent_at_close", [r.seq for r in records], "Redis unreachable at close"
                )
            return
        direct = [r for r in records if self._shard_ok(r.shard)]
        held = [r for r in records if not self._shard_ok(r.shard)] if direct else records
        if direct:
            try:
                self._xadd([(self.streams[r.shard], r.entry) for r in direct])
            except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
                self._enter_outage(e, len(direct))
                held = records
            else:
                for r in direct:
                    self._spend(r.shard, 1)
                self._sent(direct)
        if held:
            self._spill(held)

    # -- Redis --------------------------------------------------------------

    def _xadd(self, entries: list[tuple[str, Entry]]) -> None:
        """One pipelined round trip of ``XADD stream … MAXLEN ~`` (one key per command)."""
        if self._client is None:
            self._client = self._client_factory(self._settings)
        pipe = self._client.pipeline(transaction=False)
        for stream, entry in entries:
            pipe.xadd(stream, entry, maxlen=self._settings.maxlen, approximate=True)  # type: ignore[arg-type]
        started = time.perf_counter()
        self._io.run(pipe.execute)
        self._ledger.send_took(time.perf_counter() - started)

    def _sent(self, records: list[SerializedRecord]) -> None:
        self._ledger.add_sent(len(records))
        if self._ledger.has_subscribers:
            for shard in sorted({r.shard for r in records}):
                self._ledger.emit(
                    Recorded(
                        tuple(r.record_id for r in records if r.shard == shard),
                        self.streams[shard],
                    )
                )

    def _enter_outage(self, error: Exception, count: int) -> None:
        self._client = None  # reconnect from scratch on the next attempt
        self._ledger.count("send_failures")
        self._ledger.emit(Failed("send_failed", count, str(error)))
        _log_once.warning(
            "send", "rawtap: cannot write to Redis (%s); spilling to the journal", error
        )
        if not self._outage:
            self._outage = True
            self._backoff = _BACKOFF_FIRST_S
        self._probe_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    def _maybe_probe(self, now: float) -> None:
        if not self._outage or now < self._probe_at:
            return
        try:
            self._probe()
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self._enter_outage(e, 0)
            return
        self._outage = False
        self._check_at = 0.0  # read the backlog before sending again
        logger.info("rawtap: Redis is reachable again; sending and replaying the journal")

    def _probe(self) -> None:
        """Reach the node of every shard: ``XLEN`` each stream, in one pipelined trip.

        Not ``PING``: a cluster client sends that to every node it knows, replicas
        and failed nodes included, while what matters is that each shard's
        current primary answers.
        """
        if self._client is None:
            self._client = self._client_factory(self._settings)
        pipe = self._client.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xlen(stream)
        self._io.run(pipe.execute)

    def _maybe_check_backlog(self, now: float) -> None:
        if (
            not self._settings.backpressure
            or self._journal is None
            or self._outage
            or now < self._check_at
        ):
            return
        self._check_at = now + self._settings.backlog_check_s
        try:
            backlogs = self._backlogs()
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self._enter_outage(e, 0)
            return
        cap = self._settings.maxlen
        high = cap * self._settings.backlog_high_ratio
        for shard, backlog in enumerate(backlogs):
            self._budget[shard] = high - backlog
            if shard not in self._backpressured and backlog >= high:
                self._backpressured.add(shard)
                self._ledger.count("backpressure_episodes")
                _log_once.warning(
                    "backpressure",
                    "rawtap: consumers of %s lag (%d undelivered, cap %d); "
                    "spilling its records to the journal",
                    self.streams[shard],
                    backlog,
                    cap,
                )
            elif shard in self._backpressured and backlog <= cap * self._settings.backlog_low_ratio:
                self._backpressured.discard(shard)

    def _backlogs(self) -> list[int]:
        """Per shard, the entries its slowest group has not read yet (one pipelined trip).

        Redis's ``lag`` is missing before 7.0, and 7.0 leaves it stale once
        unread entries were trimmed, so it is capped by the stream's length and
        a group that has delivered the newest entry has no backlog at all.
        """
        if self._client is None:
            self._client = self._client_factory(self._settings)
        pipe = self._client.pipeline(transaction=False)
        for stream in self.streams:
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
        pipe = self._client.pipeline(transaction=False)
        asked = []
        for stream, item in zip(self.streams, found, strict=True):
            for g in item[1] if item else []:
                if int(str(g.get("pending") or 0)):
                    pipe.xpending(stream, _text(g["name"]))
                    asked.append(stream)
        oldest: dict[str, list[object]] = {}
        if asked:
            for stream, summary in zip(asked, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(summary, dict) and summary.get("min") is not None:
                    oldest.setdefault(stream, []).append(summary["min"])
        return [
            0 if item is None else _backlog(item[0], item[1], oldest.get(stream, []))
            for stream, item in zip(self.streams, found, strict=True)
        ]

    def _send_until_done(self, records: list[SerializedRecord]) -> bool:
        """No journal: retry in memory until it works or the close deadline passes."""
        delay = _BACKOFF_FIRST_S
        while True:
            try:
                self._xadd([(self.streams[r.shard], r.entry) for r in records])
            except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
                self._client = None
                self._ledger.count("send_failures")
                self._ledger.emit(Failed("send_failed", len(records), str(e)))
                _log_once.warning(
                    "send", "rawtap: cannot write to Redis (%s); retrying, records stay buffered", e
                )
                self._check_memory()  # the buffer fills while we wait: say so now
            else:
                self._sent(records)
                return True
            if self._stop.is_set():
                left = self._deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(delay, left))
            else:
                # Returns at once when close() is called, to use what is left of its bound.
                self._stop.wait(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, _BACKOFF_MAX_S)

    # -- the journal --------------------------------------------------------------

    def _spill(self, records: list[SerializedRecord]) -> None:
        assert self._journal is not None
        frames = [encode_frame(r.seq, r.entry, Route(session_id=r.session_id)) for r in records]
        while True:
            try:
                self._journal.append(frames)
            except JournalFull:
                if self._settings.overflow == "drop_oldest" and self._drop_oldest_segment():
                    continue
                # Keep what still fits: the oldest of the batch (drop_newest), or, with
                # drop_oldest and nothing left to delete, the newest of it.
                newest = self._settings.overflow == "drop_oldest"
                order = frames[::-1] if newest else frames
                room, fit = self._journal.room(), 0
                while fit < len(order) and room >= len(order[fit]):
                    room -= len(order[fit])
                    fit += 1
                kept = records[len(records) - fit :] if newest else records[:fit]
                lost = records[: len(records) - fit] if newest else records[fit:]
                if kept:
                    self._spill(kept)
                self._ledger.drop("journal_full", [r.seq for r in lost], "spill journal full")
                return
            except OSError as e:
                _log_once.warning("spill", "rawtap: cannot write the spill journal (%s)", e)
                self._ledger.drop("spill_failed", [r.seq for r in records], str(e))
                return
            self._ledger.add_spilled(len(records))
            return

    def _drop_oldest_segment(self) -> bool:
        assert self._journal is not None
        self._stop_replay(delete=False)
        segment = self._journal.claim_oldest(include_active=True)
        if segment is None:
            return False
        seqs = [seq for seq, _, _ in read_frames(segment.path) if seq >= 0]
        self._journal.finished(segment, delete=True)
        if segment.producer_id == self._producer_id:
            self._ledger.drop("journal_overflow", seqs, "oldest journal segment dropped")
        elif seqs:
            # Another (maybe dead) producer's records: report the loss on its behalf.
            self._ledger.foreign_drop(segment.producer_id, seqs)
        return True

    def _replay_step(self) -> bool:
        """Send one batch from the journal; False when there was nothing to replay."""
        assert self._journal is not None
        if self._replaying is None:
            if self._journal.is_empty():
                return False
            segment = self._journal.claim_oldest(include_active=len(self._buffer) == 0)
            if segment is None:
                return False
            self._replaying = (segment, read_frames(segment.path))
        segment, frames = self._replaying
        batch = _take(frames, self._settings.send_batch_size)
        if not batch:
            self._stop_replay(delete=True)
            return True
        # Each record to its shard (by the current shard count); a report to every shard.
        routed = [
            (shard, entry)
            for seq, route, entry in batch
            for shard in (
                range(len(self.streams))
                if _is_control(route, entry)
                else (self._frame_shard(seq, route, entry),)
            )
        ]
        try:
            self._xadd([(self.streams[shard], entry) for shard, entry in routed])
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self._stop_replay(delete=False)  # replayed again later, from its start
            self._enter_outage(e, 0)
            return False
        for shard, _ in routed:
            self._spend(shard, 1)
        self._ledger.add_replayed(sum(1 for _, r, e in batch if not _is_control(r, e)))
        return True

    def _frame_shard(self, seq: int, route: Route | None, entry: Entry) -> int:
        """The shard of a journaled record: from its frame's route, else (a version 1 frame)
        from the session in its envelope."""
        if len(self.streams) == 1:
            return 0
        if route is not None:
            session = route.session_id
        else:
            try:
                envelope = orjson.loads(entry.get(ENTRY_ENVELOPE, b"{}"))
                session = envelope.get("session_id") if isinstance(envelope, dict) else None
            except orjson.JSONDecodeError:
                session = None
        return shard_for(session, max(seq, 0), len(self.streams))

    def _replay_before_exit(self) -> None:
        """On close, empty the journal into Redis while time is left and Redis can take it.

        An unreachable Redis ends this at once (the records are safe on disk and
        the next run replays them); lagging consumers are waited for until the
        close deadline, since sending past the cap would let MAXLEN trim.
        """
        if self._journal is None:
            return
        self._probe_now()
        while not self._journal.is_empty() and not self._outage:
            now = time.monotonic()
            if now >= self._deadline:
                return
            self._maybe_check_backlog(now)
            if self.backpressured:
                time.sleep(min(_REPLAY_WAIT_S, max(0.0, self._deadline - now)))
            elif not self._replay_step():
                return

    def _probe_now(self) -> None:
        """In an outage, one more look: Redis may be back and the backoff not yet over."""
        if self._outage:
            self._probe_at = 0.0
            self._maybe_probe(time.monotonic())

    def _stop_replay(self, *, delete: bool) -> None:
        if self._replaying is not None:
            close = getattr(self._replaying[1], "close", None)
            if close is not None:
                close()  # the segment's file, now rather than at garbage collection
        if self._replaying is not None and self._journal is not None:
            self._journal.finished(self._replaying[0], delete=delete)
        self._replaying = None

    # -- reports and memory --------------------------------------------------------

    def _report(self, *, final: bool = False) -> None:
        self._report_at = time.monotonic() + self._settings.report_interval_s
        accepted = self._buffer.accepted
        state = (accepted, self._ledger.dropped_total())
        if state == self._reported and not final:
            return
        if accepted == 0 and not self._ledger.foreign_drops():
            return
        # Drops first: every seq dropped by then is below the next_seq read after it,
        # as workers require (a report with a range beyond next_seq is refused).
        dropped = self._ledger.drop_ranges()
        entries = [
            encode_report(
                ProducerReport(
                    producer_id=self._producer_id,
                    next_seq=self._buffer.next_seq,
                    dropped=dropped,
                    at_ns=time.time_ns(),
                    final=final,
                )
            )
        ]
        entries += [
            encode_report(
                ProducerReport(
                    producer_id=pid,
                    next_seq=max(r[1] for r in ranges) + 1,
                    dropped={"journal_overflow": ranges},
                    at_ns=time.time_ns(),
                )
            )
            for pid, ranges in self._ledger.foreign_drops().items()
        ]
        if not self._send_or_spill_entries(entries):
            return
        self._reported = state
        self._ledger.foreign_reported()

    def _send_or_spill_entries(self, entries: list[Entry]) -> bool:
        """Send control entries to every shard that takes records now, else to the journal.

        Reports are cumulative, so a shard skipped while backpressured loses
        nothing; the journal gets one copy, which its replay sends to every shard.
        """
        shards = range(len(self.streams))
        targets = (
            list(shards) if self._journal is None else [k for k in shards if self._shard_ok(k)]
        )
        if targets:
            try:
                self._xadd([(self.streams[k], e) for k in targets for e in entries])
            except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
                if self._journal is None:
                    return False
                self._enter_outage(e, 0)
            else:
                for k in targets:
                    self._spend(k, len(entries))
                return True
        if self._journal is None:
            return False
        try:
            self._journal.append([encode_frame(-1, e, EVERY_SHARD) for e in entries])
        except (JournalFull, OSError):
            return False
        return True

    def _check_memory(self) -> None:
        limit = self._buffer.max_bytes
        held = self._buffer.nbytes
        if not self._warned and held > limit * self._settings.memory_warning_ratio:
            self._warned = True
            self._ledger.emit(MemoryWarning(held, limit))
        elif self._warned and held < limit * self._settings.memory_warning_ratio / 2:
            self._warned = False

    def _drop_rest(self) -> None:
        rest = self._buffer.take(len(self._buffer))
        if rest:
            self._unsent += len(rest)
            self._buffer.release(sum(item[1] for item in rest))
            self._ledger.drop("unsent_at_close", [item[0] for item in rest], "recorder closed")


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
    return int(_text(entry_id).split("-", 1)[0])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_control(route: Route | None, entry: Entry) -> bool:
    """A control entry (a report, sent to every shard), not a record."""
    return route.every_shard if route is not None else ENTRY_KIND in entry


Frame = tuple[int, Route | None, Entry]


def _take(frames: Iterator[Frame], n: int) -> list[Frame]:
    out = []
    for frame in frames:
        out.append(frame)
        if len(out) >= n:
            break
    return out
