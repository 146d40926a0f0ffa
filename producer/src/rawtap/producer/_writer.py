"""The writer thread: buffer → serialize → pipelined ``XADD … MAXLEN ~`` → Redis.

One daemon thread per Recorder (per process). It sleeps on an event when the
buffer is empty, drains it in batches, serializes each record (the expensive
part, kept off the caller's thread) and sends the batch in one pipelined round
trip. Where a batch goes:

* **Redis**, normally;
* the **spill journal** on local disk when Redis fails (the outage lasts until
  a PING succeeds, probed with capped exponential backoff) or when the
  slowest consumer group's backlog nears ``maxlen`` (sending would let MAXLEN
  trim undelivered entries). The journal is replayed, oldest segment first,
  once Redis answers and the backlog is back under the low watermark;
* **dropped and counted** (by ``seq`` range and reason, reported to the
  workers) when the journal is full (``overflow`` policy) or the disk fails.

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
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rawtap.producer._buffer import Item, RecordBuffer
from rawtap.producer._events import Failed, MemoryWarning, Recorded
from rawtap.producer._journal import (
    Entry,
    JournalFull,
    Segment,
    SpillJournal,
    encode_frame,
    read_frames,
)
from rawtap.producer._log import LogOnce
from rawtap.producer._serialize import SerializedRecord, serialize
from rawtap.shared import ProducerReport, ProducerSettings, StreamNames, encode_report

if TYPE_CHECKING:
    from rawtap.producer._recorder import Recorder

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0
_IDLE_WAIT_S = 1.0
_REPLAY_WAIT_S = 0.05


def connect(settings: ProducerSettings) -> "redis.Redis":
    """A redis-py client with explicit timeouts and no automatic retries."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        client_name="rawtap-producer",
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
        recorder: "Recorder",
        buffer: RecordBuffer,
        settings: ProducerSettings,
        journal: SpillJournal | None,
        client_factory: Callable[[ProducerSettings], "redis.Redis"] = connect,
    ) -> None:
        self._recorder = recorder
        self._buffer = buffer
        self._settings = settings
        self._journal = journal
        self._client_factory = client_factory
        self._client: redis.Redis | None = None
        self.stream = StreamNames(settings.stream_prefix).shard(0)
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._warned = False
        self._unsent = 0
        # Outage: Redis failed; batches spill until a probe succeeds.
        self._outage = False
        self._probe_at = 0.0
        self._backoff = _BACKOFF_FIRST_S
        # Backpressure: consumers lag towards maxlen; batches spill until they catch up.
        self.backpressured = False
        self._check_at = 0.0
        # Entries we may still add before the backlog reaches the high watermark, as of
        # the last check; sending spends it, so a burst cannot overrun the cap between checks.
        self._budget = float("inf")
        self._report_at = time.monotonic() + settings.report_interval_s
        self._reported: tuple[int, int] = (0, 0)
        self._replaying: tuple[Segment, Iterator[tuple[int, Entry]]] | None = None
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
        return not self._thread.is_alive() and self._unsent == 0

    def journal_fds(self) -> tuple[int, ...]:
        """Journal descriptors this writer holds (a segment being replayed), for a forked child."""
        return () if self._replaying is None else (self._replaying[0].fd,)

    @property
    def healthy(self) -> bool:
        """True when batches go straight to Redis."""
        return not self._outage and not self.backpressured and self._budget > 0

    def _spend(self, n: int) -> None:
        self._budget -= n
        if self._budget <= 0:
            self._check_at = 0.0  # near the cap: look at the backlog again before sending more

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                self._maybe_probe(now)
                self._maybe_check_backlog(now)
                batch = self._buffer.take(self._settings.send_batch_size)
                if batch:
                    self._handle(batch)
                    self._check_memory()
                    continue
                if self._stop.is_set():
                    break
                if now >= self._report_at:
                    self._report()
                if self._journal is not None and self.healthy and self._replay_step():
                    continue
                self.wake.clear()
                if len(self._buffer) == 0:
                    replay_waits = self._journal is not None and not self._journal.is_empty()
                    self.wake.wait(_REPLAY_WAIT_S if replay_waits else _IDLE_WAIT_S)
            self._replay_before_exit()
            self._report(final=True)
        except Exception:  # pragma: no cover - a bug; keep the host alive and say so once
            logger.exception("rawtap writer thread stopped by an unexpected error")
            self._recorder._count("internal_errors")
        finally:
            self._drop_rest()
            self._stop_replay(delete=False)
            if self._journal is not None:
                self._journal.close()
            if self._client is not None:
                self._client.close()

    def _handle(self, batch: list[Item]) -> None:
        nbytes = sum(item[1] for item in batch)
        records: list[SerializedRecord] = []
        for item in batch:
            try:
                records.append(
                    serialize(
                        item,
                        self._recorder.producer_id,
                        self._settings.service,
                        self._settings.max_record_bytes,
                    )
                )
            except Exception as e:  # noqa: BLE001 - one bad record must not stop the others
                self._recorder._drop_seqs("serialize_error", [item[0]], repr(e))
        for rec in records:
            if rec.fallback:
                self._recorder._count("serialize_fallbacks")
            if rec.truncated:
                self._recorder._count("truncated")
        if records:
            self._deliver(records)
        self._buffer.release(nbytes)

    def _deliver(self, records: list[SerializedRecord]) -> None:
        if self._journal is None:
            if not self._send_until_done(records):
                self._unsent += len(records)
                self._recorder._drop_seqs(
                    "unsent_at_close", [r.seq for r in records], "Redis unreachable at close"
                )
            return
        if self.healthy:
            try:
                self._xadd([r.entry for r in records])
            except redis.RedisError as e:
                self._enter_outage(e, len(records))
            else:
                self._spend(len(records))
                self._sent(records)
                return
        self._spill(records)

    # -- Redis --------------------------------------------------------------

    def _xadd(self, entries: list[Entry]) -> None:
        if self._client is None:
            self._client = self._client_factory(self._settings)
        pipe = self._client.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(self.stream, entry, maxlen=self._settings.maxlen, approximate=True)  # type: ignore[arg-type]
        started = time.perf_counter()
        pipe.execute()
        self._recorder._record_latency(time.perf_counter() - started)

    def _sent(self, records: list[SerializedRecord]) -> None:
        self._recorder._sent(len(records))
        if self._recorder._has_subscribers:
            self._recorder._emit(Recorded(tuple(r.record_id for r in records), self.stream))

    def _enter_outage(self, error: redis.RedisError, count: int) -> None:
        self._client = None  # reconnect from scratch on the next attempt
        self._recorder._count("send_failures")
        self._recorder._emit(Failed("send_failed", count, str(error)))
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
            if self._client is None:
                self._client = self._client_factory(self._settings)
            self._client.ping()
        except redis.RedisError as e:
            self._enter_outage(e, 0)
            return
        self._outage = False
        self._check_at = 0.0  # read the backlog before sending again
        logger.info("rawtap: Redis is reachable again; sending and replaying the journal")

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
            backlog = self._backlog()
        except redis.RedisError as e:
            self._enter_outage(e, 0)
            return
        cap = self._settings.maxlen
        self._budget = cap * self._settings.backlog_high_ratio - backlog
        if not self.backpressured and backlog >= cap * self._settings.backlog_high_ratio:
            self.backpressured = True
            self._recorder._count("backpressure_episodes")
            _log_once.warning(
                "backpressure",
                "rawtap: consumers lag (%d undelivered, cap %d); spilling to the journal",
                backlog,
                cap,
            )
        elif self.backpressured and backlog <= cap * self._settings.backlog_low_ratio:
            self.backpressured = False

    def _backlog(self) -> int:
        """Entries the slowest group has not read yet.

        Redis's ``lag`` is missing before 7.0, and 7.0 leaves it stale once
        unread entries were trimmed, so it is capped by the stream's length and
        a group that has delivered the newest entry has no backlog at all.
        """
        if self._client is None:
            self._client = self._client_factory(self._settings)
        try:
            info = self._client.xinfo_stream(self.stream)
        except redis.ResponseError:
            return 0  # no stream yet
        length = int(info["length"])
        newest = info.get("last-generated-id")
        groups = self._client.xinfo_groups(self.stream)
        if not groups:
            return length  # no worker yet: everything is undelivered
        backlog = 0
        for g in groups:
            if newest is not None and g.get("last-delivered-id") == newest:
                continue
            lag = g.get("lag")
            backlog = max(backlog, length if lag is None else min(int(lag), length))
        return backlog

    def _send_until_done(self, records: list[SerializedRecord]) -> bool:
        """No journal: retry in memory until it works or the close deadline passes."""
        delay = _BACKOFF_FIRST_S
        while True:
            try:
                self._xadd([r.entry for r in records])
            except redis.RedisError as e:
                self._client = None
                self._recorder._count("send_failures")
                self._recorder._emit(Failed("send_failed", len(records), str(e)))
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
        frames = [encode_frame(r.seq, r.entry) for r in records]
        while True:
            try:
                self._journal.append(frames)
            except JournalFull:
                if self._settings.overflow == "drop_oldest" and self._drop_oldest_segment():
                    continue
                # Keep the oldest of the batch that still fit; the newest are dropped.
                room, fit = self._journal.room(), 0
                while fit < len(frames) and room >= len(frames[fit]):
                    room -= len(frames[fit])
                    fit += 1
                if fit:
                    self._spill(records[:fit])
                self._recorder._drop_seqs(
                    "journal_full", [r.seq for r in records[fit:]], "spill journal full"
                )
                return
            except OSError as e:
                _log_once.warning("spill", "rawtap: cannot write the spill journal (%s)", e)
                self._recorder._drop_seqs("spill_failed", [r.seq for r in records], str(e))
                return
            self._recorder._spilled(len(records))
            return

    def _drop_oldest_segment(self) -> bool:
        assert self._journal is not None
        self._stop_replay(delete=False)
        segment = self._journal.claim_oldest(include_active=True)
        if segment is None:
            return False
        seqs = [seq for seq, _ in read_frames(segment.path) if seq >= 0]
        self._journal.finished(segment, delete=True)
        if segment.producer_id == self._recorder.producer_id:
            self._recorder._drop_seqs("journal_overflow", seqs, "oldest journal segment dropped")
        elif seqs:
            # Another (maybe dead) producer's records: report the loss on its behalf.
            self._recorder._report_foreign_drop(segment.producer_id, seqs)
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
        batch = [entry for _, entry in _take(frames, self._settings.send_batch_size)]
        if not batch:
            self._stop_replay(delete=True)
            return True
        try:
            self._xadd(batch)
        except redis.RedisError as e:
            self._stop_replay(delete=False)  # replayed again later, from its start
            self._enter_outage(e, 0)
            return False
        self._spend(len(batch))
        self._recorder._replayed(sum(1 for e in batch if b"kind" not in e))
        return True

    def _replay_before_exit(self) -> None:
        """On close, empty the journal into Redis while time is left and Redis can take it.

        An unreachable Redis ends this at once (the records are safe on disk and
        the next run replays them); lagging consumers are waited for until the
        close deadline, since sending past the cap would let MAXLEN trim.
        """
        if self._journal is None:
            return
        if self._outage:  # one more look: Redis may be back and the backoff not yet over
            self._probe_at = 0.0
            self._maybe_probe(time.monotonic())
        while not self._journal.is_empty() and not self._outage:
            now = time.monotonic()
            if now >= self._deadline:
                return
            self._maybe_check_backlog(now)
            if self.backpressured:
                time.sleep(min(_REPLAY_WAIT_S, max(0.0, self._deadline - now)))
            elif not self._replay_step():
                return

    def _stop_replay(self, *, delete: bool) -> None:
        if self._replaying is not None and self._journal is not None:
            self._journal.finished(self._replaying[0], delete=delete)
        self._replaying = None

    # -- reports and memory --------------------------------------------------------

    def _report(self, *, final: bool = False) -> None:
        self._report_at = time.monotonic() + self._settings.report_interval_s
        accepted = self._buffer.accepted
        state = (accepted, self._recorder._dropped_total())
        if state == self._reported and not final:
            return
        if accepted == 0 and not self._recorder._foreign_drops:
            return
        entries = [
            encode_report(
                ProducerReport(
                    producer_id=self._recorder.producer_id,
                    next_seq=self._buffer.next_seq,
                    dropped=self._recorder._drop_ranges(),
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
            for pid, ranges in self._recorder._foreign_drops.items()
        ]
        if not self._send_or_spill_entries(entries):
            return
        self._reported = state
        self._recorder._foreign_drops.clear()

    def _send_or_spill_entries(self, entries: list[Entry]) -> bool:
        """Send control entries like records are sent: to Redis, else to the journal."""
        if self.healthy or self._journal is None:
            try:
                self._xadd(entries)
            except redis.RedisError as e:
                if self._journal is None:
                    return False
                self._enter_outage(e, 0)
            else:
                return True
        try:
            self._journal.append([encode_frame(-1, e) for e in entries])
        except (JournalFull, OSError):
            return False
        return True

    def _check_memory(self) -> None:
        limit = self._buffer.max_bytes
        held = self._buffer.nbytes
        if not self._warned and held > limit * self._settings.memory_warning_ratio:
            self._warned = True
            self._recorder._emit(MemoryWarning(held, limit))
        elif self._warned and held < limit * self._settings.memory_warning_ratio / 2:
            self._warned = False

    def _drop_rest(self) -> None:
        rest = self._buffer.take(len(self._buffer))
        if rest:
            self._unsent += len(rest)
            self._buffer.release(sum(item[1] for item in rest))
            self._recorder._drop_seqs(
                "unsent_at_close", [item[0] for item in rest], "recorder closed"
            )


def _take(frames: Iterator[tuple[int, Entry]], n: int) -> list[tuple[int, Entry]]:
    out = []
    for frame in frames:
        out.append(frame)
        if len(out) >= n:
            break
    return out
