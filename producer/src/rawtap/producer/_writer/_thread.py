"""StreamWriter: the thread that drains one Recorder's buffer and decides where each batch goes.

It drains the buffer in batches and, when it is empty, looks again every
``_LINGER_S``; after ``_DOZE_AFTER`` empty looks it dozes on an event, which
the next ``record()`` sets (once per doze, never per record: a wake-up per
record, and the GIL hand-off it causes, would land on the caller). It
serializes each record (the expensive part, kept off the caller's thread) and
sends the batch in one pipelined round trip (:mod:`._link`), serializing the
next batch while it is on the wire and in Redis (:meth:`StreamWriter._land`
then waits for its outcome). A batch goes to
Redis normally; to the spill journal (:mod:`._spill`) while Redis fails or
while its shard is backpressured (:mod:`._backpressure`); reports go out
every ``report_interval_s`` (:mod:`._reports`).

Without a journal (``spill_dir=""``) a failed batch is retried in memory; its
bytes stay counted against the buffer's bound, so ``record()`` starts refusing
(and counting) instead of growing memory.
"""

import logging
import threading
import time
from collections.abc import Callable

from rawtap.producer._buffer import Item, RecordBuffer
from rawtap.producer._events import MemoryWarning, Recorded
from rawtap.producer._journal import SpillJournal
from rawtap.producer._ledger import Ledger
from rawtap.producer._serialize import SerializedRecord, serialize
from rawtap.producer._writer._backpressure import Backpressure
from rawtap.producer._writer._imports import import_redis
from rawtap.producer._writer._link import RedisLink, connect
from rawtap.producer._writer._redis_call import Call
from rawtap.producer._writer._reports import Reporter
from rawtap.producer._writer._retry import send_until_done
from rawtap.producer._writer._spill import REPLAY_WAIT_S, Spill
from rawtap.shared import LogOnce, ProducerSettings, RedisClient, StreamNames, shard_for

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

_IDLE_WAIT_S = 1.0
# While records come, how often the writer looks at the buffer; and how many empty looks
# in a row (0.1 s) before it dozes until a record() rouses it.
_LINGER_S = 0.005
_DOZE_AFTER = 20
# Serializing is pure Python: unpaused, the writer keeps the GIL a whole switch interval (5 ms).
_YIELD_EVERY = 50
# How long an unanswered Redis call may hold the writer while the buffer fills.
_STALL_S = 0.25


class StreamWriter:
    """Drains one Recorder's buffer into its Redis stream on a daemon thread.

    It shares the recorder's :class:`~rawtap.producer._ledger.Ledger` (counters,
    drops, observers) and is handed everything else; ``on_fatal`` is called if
    the thread dies of a bug, so the recorder stops accepting records.
    """

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
        self.streams = StreamNames(settings.stream_prefix).shards(settings.shards)
        self.stream = self.streams[0]
        """The first shard's stream (the only one when ``shards`` is 1)."""
        self.wake = threading.Event()
        self.dozing = False
        """True while the thread waits for a record() to rouse it (see :meth:`rouse`)."""
        self.dozes = 0
        self.rousings = 0
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._link = RedisLink(settings, self.streams, ledger, client_factory, self._stop_waiting)
        self._backpressure = Backpressure(
            settings,
            self.streams,
            ledger,
            self._link,
            enabled=settings.backpressure and journal is not None,
        )
        self._spill = (
            None
            if journal is None
            else Spill(
                journal,
                settings,
                producer_id,
                ledger,
                self._link,
                self._backpressure,
                len(self.streams),
            )
        )
        self._reporter = Reporter(
            settings, producer_id, ledger, buffer, self._link, self._backpressure, self._spill
        )
        self._warned = False
        self._unsent = 0
        # Seqs of the batch being serialized and delivered, not yet counted anywhere.
        self._inflight: list[int] = []
        # The batch on its way to Redis while the next is serialized: the call, its records,
        # those sent and those held for the journal, and their bytes (see _land).
        self._flight: (
            tuple[Call, list[SerializedRecord], list[SerializedRecord], list[SerializedRecord], int]
            | None
        ) = None
        self._thread = threading.Thread(target=self._run, name="rawtap-writer", daemon=True)

    def start(self) -> None:
        """Start the thread (it dozes, touching nothing, until the first record)."""
        self.dozing = True
        self._thread.start()

    def rouse(self) -> None:
        """A record arrived while the thread dozes: wake it (``record()`` calls this then only)."""
        self.dozing = False
        self.rousings += 1
        self.wake.set()

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
        return () if self._spill is None else self._spill.fds()

    @property
    def backpressured(self) -> bool:
        """True while at least one shard's consumers lag towards ``maxlen``."""
        return bool(self._backpressure.shards)

    @property
    def backpressured_shards(self) -> list[int]:
        """The shards whose records are being spilled because their consumers lag."""
        return sorted(self._backpressure.shards)

    @property
    def healthy(self) -> bool:
        """True when batches of every shard go straight to Redis."""
        ok = self._backpressure.ok
        return not self._link.outage and all(ok(k) for k in range(len(self.streams)))

    def _stop_waiting(self, waited_s: float) -> bool:
        """Give up on a Redis call that has not answered for ``waited_s`` (see :mod:`._redis_call`)?

        Always once close()'s deadline has passed. With a journal, once the call
        has waited ``_STALL_S`` (a healthy Redis answers a batch far sooner) and the
        buffer is half full: spilling then keeps up with a stalled server.
        """
        if self._stop.is_set() and time.monotonic() >= self._deadline:
            return True
        if self._spill is None or waited_s < _STALL_S:
            return False
        buffer = self._buffer
        return buffer.nbytes * 2 >= buffer.max_bytes or len(buffer) * 2 >= buffer.max_items

    def _probe(self, now: float | None = None) -> None:
        """In an outage, probe when due (now if ``now`` is None); back: read the backlogs first."""
        back = self._link.probe_now() if now is None else self._link.maybe_probe(now)
        if back:
            self._backpressure.recheck()

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        spill = self._spill
        idle_looks = 0
        try:
            import_redis()  # now, on this thread: neither import nor record() waits for it
            if len(self._buffer) == 0 and not self._stop.is_set():
                self.wake.wait()  # until the first record (or close)
            self.dozing = False
            while True:
                now = time.monotonic()
                self._probe(now)
                self._backpressure.maybe_check(now)
                if now >= self._reporter.due_at and not self._stop.is_set():
                    self._reporter.report()  # under sustained load too, not only when idle
                batch = self._buffer.take(self._settings.send_batch_size)
                if batch:
                    idle_looks = 0
                    self._inflight = [*self._flight_seqs(), *(item[0] for item in batch)]
                    self._handle(batch)
                    self._inflight = self._flight_seqs()
                    self._check_memory()
                    continue
                if self._flight is not None:
                    self._land()  # nothing to serialize meanwhile: wait for the batch sent
                    continue
                if self._stop.is_set():
                    break
                if (
                    spill is not None
                    and self.healthy
                    and spill.replay_step(include_active=len(self._buffer) == 0)
                ):
                    continue
                self._idle(idle_looks)
                idle_looks += 1
            # The final report first: if Redis fails it, it is journaled and the replay
            # below gets a second chance to send it (after a fresh probe of every shard).
            self._probe()
            self._reporter.report(final=True)
            if spill is not None:
                self._probe()
                spill.replay_before_exit(self._deadline, lambda: len(self._buffer) == 0)
        except Exception:  # a bug: keep the host alive, stop accepting, say so once
            logger.exception(
                "rawtap writer thread stopped by an unexpected error; recording is disabled"
            )
            self._ledger.count("internal_errors")
            self._on_fatal()
        finally:
            self._drop_rest()
            if spill is not None:
                spill.stop_replay(delete=False)
                spill.journal.close()
            self._link.close()

    def _idle(self, idle_looks: int) -> None:
        """The buffer was empty: look again in ``_LINGER_S``; after ``_DOZE_AFTER`` looks, doze."""
        spill = self._spill
        self.wake.clear()
        replay_waits = spill is not None and not spill.journal.is_empty()
        doze = idle_looks >= _DOZE_AFTER and not replay_waits
        self.dozing = doze  # set before looking: a record() after the look rouses us
        if len(self._buffer) == 0:
            if doze:
                self.dozes += 1
            self.wake.wait(_IDLE_WAIT_S if doze else REPLAY_WAIT_S if replay_waits else _LINGER_S)
        self.dozing = False

    def _handle(self, batch: list[Item]) -> None:
        nbytes = sum(item[1] for item in batch)
        records: list[SerializedRecord] = []
        shards = len(self.streams)
        for n, item in enumerate(batch, 1):
            if n % _YIELD_EVERY == 0:
                time.sleep(0)  # let the GIL go: the Redis I/O thread and the host's threads
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
        self._inflight = [*self._flight_seqs(), *(rec.seq for rec in records)]
        for rec in records:
            if rec.fallback:
                self._ledger.count("serialize_fallbacks")
            if rec.truncated:
                self._ledger.count("truncated")
        if self._flight is not None:
            self._land()  # the previous batch, sent while this one was serialized
        if records:
            self._deliver(records, nbytes)
        else:
            self._buffer.release(nbytes)

    def _flight_seqs(self) -> list[int]:
        flight = self._flight
        return [] if flight is None else [r.seq for r in flight[1]]

    def _land(self) -> None:
        """Wait for the batch in flight; what failed goes to the journal (see :meth:`_deliver`)."""
        assert self._flight is not None
        assert self._spill is not None
        call, records, direct, held, nbytes = self._flight
        self._flight = None
        try:
            self._link.xadd_wait(call)
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self._link.enter_outage(e, len(direct))
            held = records
        else:
            for r in direct:
                self._backpressure.spend(r.shard, 1)
            self._sent(direct)
        if held:
            self._spill.spill(held)
        self._buffer.release(nbytes)

    def _deliver(self, records: list[SerializedRecord], nbytes: int) -> None:
        """Send ``records`` (or spill them); with a journal, the send lands later (:meth:`_land`).

        Their ``nbytes`` stay counted against the buffer's bound until they left memory.
        """
        if self._spill is None:
            if not self._send_until_done(records):
                self._unsent += len(records)
                self._ledger.drop(
                    "unsent_at_close", [r.seq for r in records], "Redis unreachable at close"
                )
            self._buffer.release(nbytes)
            return
        ok = self._backpressure.ok
        direct = [r for r in records if ok(r.shard)]
        held = [r for r in records if not ok(r.shard)] if direct else records
        if direct:
            try:
                call = self._link.xadd_submit([(self.streams[r.shard], r.entry) for r in direct])
            except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
                self._link.enter_outage(e, len(direct))
                held = records
            else:
                self._flight = (call, records, direct, held, nbytes)
                return
        if held:
            self._spill.spill(held)
        self._buffer.release(nbytes)

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

    def _send_until_done(self, records: list[SerializedRecord]) -> bool:
        """No journal: retry in memory until it works or the close deadline passes."""
        entries = [(self.streams[r.shard], r.entry) for r in records]
        closing_at = lambda: self._deadline  # noqa: E731
        if not send_until_done(self._link, entries, self._stop, closing_at, self._check_memory):
            return False
        self._sent(records)
        return True

    # -- memory --------------------------------------------------------------------

    def _check_memory(self) -> None:
        limit = self._buffer.max_bytes
        held = self._buffer.nbytes
        if not self._warned and held > limit * self._settings.memory_warning_ratio:
            self._warned = True
            self._ledger.emit(MemoryWarning(held, limit))
        elif self._warned and held < limit * self._settings.memory_warning_ratio / 2:
            self._warned = False

    def _drop_rest(self) -> None:
        if self._flight is not None:  # only after a bug: its outcome will never be known
            _call, records, _direct, _held, nbytes = self._flight
            self._flight = None
            self._unsent += len(records)
            self._buffer.release(nbytes)
            self._ledger.drop("unsent_at_close", [r.seq for r in records], "writer failed")
        rest = self._buffer.take(len(self._buffer))
        if rest:
            self._unsent += len(rest)
            self._buffer.release(sum(item[1] for item in rest))
            self._ledger.drop("unsent_at_close", [item[0] for item in rest], "recorder closed")
