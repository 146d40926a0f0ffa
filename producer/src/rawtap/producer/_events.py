"""Observer events and the statistics snapshot a Recorder reports.

Events are delivered to callbacks registered with ``Recorder.subscribe`` on
the writer thread, never on the caller's thread; an exception a callback
raises is swallowed and counted (``stats().hook_errors``).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Recorded:
    """Records reached Redis (one event per pipelined batch)."""

    record_ids: tuple[str, ...]
    stream: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Records could not be handled: a send attempt failed, or records were dropped.

    ``reason`` is one of the ``dropped`` keys of :class:`RecorderStats` for drops,
    or ``send_failed`` for a failed round trip that will be retried.
    """

    reason: str
    count: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryWarning:
    """The in-memory buffer passed ``memory_warning_ratio`` of its byte bound."""

    buffered_bytes: int
    limit_bytes: int


Event = Recorded | Failed | MemoryWarning
"""Any event a Recorder emits."""

Callback = Callable[[Event], object]
"""What ``Recorder.subscribe`` accepts."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """A snapshot of a Recorder's counters.

    ``accepted`` counts records taken by ``record()``; each of them is later
    either ``sent``, ``spilled`` to the journal (and later ``replayed``), still
    buffered, or in ``dropped`` under a reason. Calls
    refused at the door (disabled, provider not allowed) are not accepted and
    are counted in ``skipped``; calls refused because the buffer was full are
    counted in ``dropped["buffer_full"]`` and were never accepted either.
    """

    producer_id: str
    accepted: int
    sent: int
    dropped: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    buffered_records: int = 0
    buffered_bytes: int = 0
    spilled: int = 0
    """Records written to the spill journal (Redis down or consumers lagging)."""
    replayed: int = 0
    """Records replayed from the journal into Redis (this producer's or an earlier run's)."""
    journal_bytes: int = 0
    backpressured: bool = False
    """True while consumers lag towards ``maxlen`` and batches go to the journal."""
    last_send_seconds: float = 0.0
    """Duration of the last pipelined round trip to Redis."""
    send_failures: int = 0
    serialize_fallbacks: int = 0
    truncated: int = 0
    hook_errors: int = 0
    internal_errors: int = 0
