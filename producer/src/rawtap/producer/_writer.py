"""The writer thread: buffer → serialize → pipelined ``XADD … MAXLEN ~`` → Redis.

One daemon thread per Recorder (per process). It sleeps on an event when the
buffer is empty, drains it in batches, serializes each record (the expensive
part, kept off the caller's thread) and sends the batch in one pipelined round
trip. A failed round trip is retried with capped exponential backoff; the
batch's bytes stay counted against the buffer's bound until Redis has them, so
an outage fills the bound and ``record()`` starts refusing (and counting)
instead of growing memory. Retrying a batch may write an entry twice; the
record id makes the sink idempotent.

redis-py is configured with explicit timeouts and *no* automatic retry: its
default (10 retries) can silently write one ``XADD`` twice and stall a thread
for a minute.
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rawtap.producer._buffer import Item, RecordBuffer
from rawtap.producer._events import Failed, MemoryWarning, Recorded
from rawtap.producer._log import LogOnce
from rawtap.producer._serialize import SerializedRecord, serialize
from rawtap.shared import ProducerSettings, StreamNames

if TYPE_CHECKING:
    from rawtap.producer._recorder import Recorder

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0
_IDLE_WAIT_S = 1.0


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


class StreamWriter:
    """Drains one Recorder's buffer into its Redis stream on a daemon thread."""

    def __init__(
        self,
        recorder: "Recorder",
        buffer: RecordBuffer,
        settings: ProducerSettings,
        client_factory: Callable[[ProducerSettings], "redis.Redis"] = connect,
    ) -> None:
        self._recorder = recorder
        self._buffer = buffer
        self._settings = settings
        self._client_factory = client_factory
        self._client: redis.Redis | None = None
        self._stream = StreamNames(settings.stream_prefix).shard(0)
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._warned = False
        self._unsent = 0
        self._thread = threading.Thread(target=self._run, name="rawtap-writer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Send what is buffered for at most ``timeout`` seconds, then stop.

        Returns True when everything was sent; what could not be is dropped
        and counted under ``unsent_at_close``.
        """
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout + 1.0)
        return not self._thread.is_alive() and self._unsent == 0

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch = self._buffer.take(self._settings.send_batch_size)
                if batch:
                    self._handle(batch)
                    self._check_memory()
                    continue
                if self._stop.is_set():
                    return
                self.wake.clear()
                if len(self._buffer) == 0:
                    self.wake.wait(_IDLE_WAIT_S)
        except Exception:  # pragma: no cover - a bug; keep the host alive and say so once
            logger.exception("rawtap writer thread stopped by an unexpected error")
            self._recorder._count("internal_errors")
        finally:
            self._drop_rest()
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
                self._recorder._drop("serialize_error", 1, repr(e))
        for rec in records:
            if rec.fallback:
                self._recorder._count("serialize_fallbacks")
            if rec.truncated:
                self._recorder._count("truncated")
        if records and not self._send(records):
            self._unsent += len(records)
            self._recorder._drop("unsent_at_close", len(records), "Redis unreachable at close")
        self._buffer.release(nbytes)

    def _send(self, records: list[SerializedRecord]) -> bool:
        """Send until it works, or until the close deadline passes."""
        delay = _BACKOFF_FIRST_S
        while True:
            started = time.perf_counter()
            try:
                self._xadd_all(records)
            except redis.RedisError as e:
                self._client = None  # reconnect from scratch on the next attempt
                self._recorder._count("send_failures")
                self._recorder._emit(Failed("send_failed", len(records), str(e)))
                _log_once.warning(
                    "send", "rawtap: cannot write to Redis (%s); retrying, records stay buffered", e
                )
                self._check_memory()  # the buffer fills while we wait: say so now
            else:
                self._recorder._sent(len(records), time.perf_counter() - started)
                if self._recorder._has_subscribers:
                    self._recorder._emit(
                        Recorded(tuple(r.record_id for r in records), self._stream)
                    )
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

    def _xadd_all(self, records: list[SerializedRecord]) -> None:
        if self._client is None:
            self._client = self._client_factory(self._settings)
        pipe = self._client.pipeline(transaction=False)
        for rec in records:
            pipe.xadd(self._stream, rec.entry, maxlen=self._settings.maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()

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
            self._recorder._drop("unsent_at_close", len(rest), "recorder closed")
