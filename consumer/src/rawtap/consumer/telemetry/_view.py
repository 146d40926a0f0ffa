"""The values a worker hands its telemetry: each committed batch, and a view to observe it by.

Seams run one way: the worker builds these and never is read back. Telemetry
gets no Worker and no Sink.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rawtap.consumer.derivation import Derived
from rawtap.shared import Record, RedisClient


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """One batch a worker committed and acknowledged: all telemetry learns about it.

    The worker builds it after XACK and hands it to
    :meth:`WorkerTelemetry.batch_committed`; telemetry reads nothing else.
    """

    stream: str
    """The shard stream the entries came from."""
    group: str
    consumer: str
    entries: int
    """Stream entries the batch handled (records, reports, dead letters, trimmed ids)."""
    stored: tuple[tuple[Record, Derived], ...]
    """Records the sink took (new or already held), each with its derived fields."""
    refused: int
    """Records the sink refused as data (dead-lettered instead)."""
    started_ns: int
    """Wall clock when the worker started handling the batch."""
    commit_s: float | None
    """Time spent committing the records, retries included; None when there were none."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class WorkerView:
    """What telemetry observes of one worker at collection time, registered once.

    Plain values and callables; none of them is the Worker. Telemetry keeps a
    weak reference: the worker holds its view, and when the worker goes, so
    do its observations. The callables run on the metric reader's thread.
    """

    consumer: str
    group: str
    redis_url: str
    streams: tuple[str, ...]
    """The shard streams the worker reads."""
    dead_letter_stream: str
    stats: Callable[[], Mapping[str, int]]
    """A snapshot of the worker's counters (``WorkerStats`` fields)."""
    connect_redis: Callable[[], RedisClient]
    """A new Redis client for the stream gauges (``XINFO``; the probe owns and closes it)."""
    ledger: Callable[[], Mapping[str, int] | None] | None = None
    """Gaps, dead letters and trimmed ids of the sink (``gaps``, ``dead_lettered``,
    ``trimmed``); None while there is no sink to read. Slow (a reconcile): telemetry
    calls it at most every ``telemetry_ledger_interval_s``, never on the worker's thread."""
