"""The Recorder: the producer's public entry point.

``record()`` is the hot path. It checks two flags, takes one lock to stamp a
gapless ``seq`` and append a tuple of references to the bounded buffer, and
returns, in about a microsecond. It never blocks on I/O and never raises: any
internal failure is counted and logged at most once a minute. Everything else
(record id formatting, turning the response into bytes, the JSON envelope,
Redis) happens on the writer thread. The thread is started at construction
(it dozes, connecting to nothing, until the first record), so the first
``record()`` costs what any other does; ``record()`` rouses it only when it
dozes, never per record. Importing this module imports no Redis client.
"""

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack

from rawtap.producer import _lifecycle, _metrics
from rawtap.producer._buffer import RecordBuffer, size_of
from rawtap.producer._details import RecordDetails
from rawtap.producer._events import Callback, RecorderStats
from rawtap.producer._journal import SpillJournal
from rawtap.producer._ledger import Ledger
from rawtap.producer._url import check_redis_url
from rawtap.producer._writer import StreamWriter, journal_dir
from rawtap.shared import (
    ConfigError,
    LogOnce,
    ProducerSettings,
    display_url,
    load_settings,
    new_producer_id,
    scrub_text,
    split_cluster_url,
)

if TYPE_CHECKING:
    from rawtap.producer._tap import Session

_C = TypeVar("_C")

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)


class Recorder:
    """Records provider responses into a Redis stream, off the caller's path.

    Create one per process (it is cheap, connects lazily and is fork-safe)::

        recorder = Recorder(redis_url="redis://localhost:6379/0")
        recorder.record("openai", response_bytes, {"endpoint": "/v1/chat/completions"}, "user-42")
        await recorder.record_response("anthropic", raw, request_metadata, session_id)

    Keyword arguments are :class:`rawtap.shared.ProducerSettings` fields and win
    over ``RAWTAP_*`` environment variables. An invalid setting raises
    :class:`rawtap.shared.ConfigError` here, at construction; after that no
    method raises into the caller.
    """

    def __init__(self, settings: ProducerSettings | None = None, **overrides: Any) -> None:
        if settings is not None and overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = settings or load_settings(ProducerSettings, **overrides)
        _check_redis_url(self.settings.redis_url)
        self.producer_id = new_producer_id()
        self._buffer = RecordBuffer(
            self.settings.max_memory_bytes, self.settings.max_buffered_records
        )
        self._enabled = self.settings.enabled
        self._allowed = self.settings.providers
        self._writer: StreamWriter | None = None
        # Re-entrant: a SIGTERM flush may call close() while this thread is in _start().
        self._start_lock = threading.RLock()
        self._closed = False
        self.ledger = Ledger()
        """Counters, drops and observers, shared with the writer thread and the capture tap."""
        self._skipped = 0
        self._atexit_registered = False
        directory = journal_dir(self.settings)
        self._journal = (
            None
            if directory is None
            else SpillJournal(
                directory,
                self.producer_id,
                int(self.settings.spill_max_mb * 1024 * 1024),
                fsync=self.settings.spill_fsync,
            )
        )
        _lifecycle.watch(
            self,
            weakref.WeakMethod(self._reset_after_fork),
            handle_sigterm=self.settings.handle_sigterm,
        )
        # Observable instruments, read when the host's SDK collects: nothing on record()'s path.
        _metrics.register(self)
        if self._enabled:
            # Here, not on the first record(): starting a thread and importing what exit
            # handling needs cost milliseconds on the caller's thread.
            self._start()

    # -- the hot path -------------------------------------------------------

    def record(
        self,
        provider: str,
        raw_response: object,
        request_metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        **details: Unpack[RecordDetails],
    ) -> bool:
        """Queue one provider response; return True if it was accepted.

        ``raw_response`` may be ``bytes`` (stored as is), ``str``, a JSON-able
        object, or an SDK response object (a pydantic model); for a stream,
        pass ``chunks=[…]`` instead. The record notes which form it came in.
        Returns False, without raising, when recording is disabled, the
        provider is not allowed, the buffer is full, or anything goes wrong.
        """
        try:
            if not self._enabled or self._closed:
                self._skipped += 1
                return False
            if self._allowed is not None and provider not in self._allowed:
                self._skipped += 1
                return False
            writer = self._writer
            if writer is None:
                writer = self._start()
                if writer is None:
                    return False
            seq = self._buffer.put(
                size_of(raw_response, details),
                time.time_ns(),
                provider,
                raw_response,
                session_id,
                request_metadata,
                details,
            )
            if seq < 0:
                return False
            if writer.dozing:
                writer.rouse()
        except Exception:  # noqa: BLE001 - the host must never see our failures
            self.ledger.count("internal_errors")
            _log_once.warning("record", "rawtap: record() failed internally", exc_info=True)
            return False
        return True

    async def record_response(
        self,
        provider: str,
        raw_response: object,
        request_metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        **details: Unpack[RecordDetails],
    ) -> bool:
        """The asynchronous interface existing code calls; same contract as :meth:`record`.

        It does no I/O and never awaits anything slow: it queues and returns.
        """
        return self.record(provider, raw_response, request_metadata, session_id, **details)

    # -- capture tap (thin: the logic is in rawtap.producer._tap) ------------

    def instrument(self, client: _C, *, provider: str | None = None) -> _C:
        """Record every HTTP attempt ``client`` makes; return the same client.

        ``client`` is an ``OpenAI``/``AsyncOpenAI`` (also with an OpenRouter
        ``base_url``), ``Anthropic``/``AsyncAnthropic``, ``google.genai.Client``
        (sync and ``client.aio``), or an httpx2/httpx ``Client``/``AsyncClient``.
        The tap wraps the client's own transports, so its timeouts, proxies and
        retries are unchanged; instrumenting twice records once. ``provider``
        overrides the inferred name (``openai``, ``openrouter``, ``anthropic``,
        ``gemini``). Raises ``TypeError`` for any other object; an SDK whose
        internals moved is left working and unrecorded (logged, counted).
        """
        from rawtap.producer._tap import instrument

        return instrument(self, client, provider=provider)

    def session(
        self,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        record: bool = True,
    ) -> "Session":
        """``with recorder.session("user-42", metadata={...}):`` tags what is captured inside.

        Works with ``with`` and ``async with``, in threads and tasks (a context
        variable). ``record=False`` turns capture off inside the block.
        """
        from rawtap.producer._tap import Session

        return Session(session_id, metadata, record=record)

    def transport(
        self, inner: Any = None, *, provider: str | None = None, package: str | None = None
    ) -> Any:
        """A sync tap transport, for ``http_client=httpx2.Client(transport=recorder.transport())``.

        Wraps ``inner`` (default: a new ``HTTPTransport()`` of ``package``,
        ``httpx2`` unless only ``httpx`` is installed). Without ``provider`` the
        name is inferred from each request's host.
        """
        from rawtap.producer._tap import transport

        return transport(self, inner, provider=provider, package=package)

    def async_transport(
        self, inner: Any = None, *, provider: str | None = None, package: str | None = None
    ) -> Any:
        """The async twin of :meth:`transport`, for ``httpx2.AsyncClient(transport=…)``."""
        from rawtap.producer._tap import async_transport

        return async_transport(self, inner, provider=provider, package=package)

    # -- observers and figures ---------------------------------------------

    def subscribe(self, callback: Callback) -> None:
        """Call ``callback(event)`` for every :data:`~rawtap.producer.Event`.

        Callbacks run on the writer thread; one that raises is logged and
        counted, never propagated. To reach an asyncio bus, hand the event over
        with ``loop.call_soon_threadsafe``.
        """
        self.ledger.subscribe(callback)

    def stats(self) -> RecorderStats:
        """The recorder's counters, as a snapshot."""
        ledger = self.ledger
        dropped = ledger.drop_counts()
        counters = ledger.counters()
        if self._buffer.refused:
            dropped["buffer_full"] = self._buffer.refused
        writer = self._writer
        return RecorderStats(
            producer_id=self.producer_id,
            accepted=self._buffer.accepted,
            sent=ledger.sent,
            dropped=dropped,
            skipped=self._skipped,
            buffered_records=len(self._buffer),
            buffered_bytes=self._buffer.nbytes,
            spilled=ledger.spilled,
            replayed=ledger.replayed,
            journal_bytes=0 if self._journal is None else self._journal.total_bytes(),
            backpressured=writer is not None and writer.backpressured,
            last_send_seconds=ledger.last_send_s,
            send_failures=counters.get("send_failures", 0),
            serialize_fallbacks=counters.get("serialize_fallbacks", 0),
            truncated=counters.get("truncated", 0),
            hook_errors=counters.get("hook_errors", 0),
            internal_errors=counters.get("internal_errors", 0),
        )

    # -- lifecycle ------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything accepted so far has left memory; True if it did in time.

        Left memory means sent to Redis, or, while Redis is down or the
        consumers lag, written to the spill journal (replayed later).
        """
        deadline = time.monotonic() + (
            self.settings.close_timeout_s if timeout is None else timeout
        )
        while self._buffer.nbytes > 0 or len(self._buffer) > 0:
            if time.monotonic() >= deadline or self._writer is None:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is buffered (for at most ``timeout`` s, default ``close_timeout_s``) and stop.

        Idempotent. Returns True when nothing was left unsent. Records still
        unsent at the deadline are dropped and counted under ``unsent_at_close``.
        """
        with self._start_lock:
            if self._closed:
                return len(self._buffer) == 0
            self._closed = True
            writer = self._writer
        if self._atexit_registered:
            _lifecycle.forget_at_exit(self)
        if writer is None:
            return True
        try:
            return writer.stop(self.settings.close_timeout_s if timeout is None else timeout)
        except Exception:
            logger.warning("rawtap: closing the recorder failed", exc_info=True)
            return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() joins a thread for a bounded time; do it off the event loop.
        await asyncio.to_thread(self.close)

    # -- for the capture tap (rawtap.producer._tap) ------------------------------

    def accepting(self) -> bool:
        """True while records are taken at all: enabled and not closed."""
        return self._enabled and not self._closed

    def allows(self, provider: str) -> bool:
        """True when ``provider`` is one the ``providers`` setting lets through."""
        allowed = self._allowed
        return allowed is None or provider in allowed

    def buffer_busy(self) -> bool:
        """True while some thread holds the buffer's lock (a finalizer must not record then)."""
        return self._buffer.busy()

    # -- internals ------------------------------------------------------------------

    def _start(self) -> StreamWriter | None:
        with self._start_lock:
            if self._closed:
                return None
            if self._writer is None:
                writer = StreamWriter(
                    self.producer_id,
                    self.ledger,
                    self._buffer,
                    self.settings,
                    self._journal,
                    on_fatal=self._writer_failed,
                )
                writer.start()
                self._writer = writer
                if not self._atexit_registered:
                    _lifecycle.close_at_exit(self)
                    self._atexit_registered = True
                if self.settings.handle_sigterm:
                    _lifecycle.install_sigterm_flush()  # if built off the main thread, try again
            return self._writer

    def _writer_failed(self) -> None:
        """The writer thread died of a bug: refuse new records rather than buffer them forever."""
        self._enabled = False

    def _reset_after_fork(self) -> None:
        # The parent's thread does not exist here and its buffered records are the
        # parent's to send: start over with a new identity and an empty buffer.
        self.producer_id = new_producer_id()
        self._buffer.reset()
        inherited = self._writer.journal_fds() if self._writer is not None else ()
        self._writer = None
        self._start_lock = threading.RLock()
        self.ledger.reset()
        self._skipped = 0
        self._atexit_registered = False
        if self._journal is not None:
            self._journal.forget_after_fork(self.producer_id, *inherited)


def _check_redis_url(url: str) -> None:
    """Refuse, at construction, a Redis URL the writer thread could never use."""
    plain, _nodes, _cluster = split_cluster_url(url)
    try:
        check_redis_url(plain)
    except ValueError as e:
        raise ConfigError(
            f"invalid setting redis_url: {scrub_text(str(e))} (got {display_url(url)!r})"
        ) from e
