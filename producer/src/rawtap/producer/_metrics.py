"""The producer's self-metrics, through ``opentelemetry-api`` only.

A no-op unless the host application configured an OpenTelemetry SDK (a
``MeterProvider`` with a reader): the API's proxy instruments then forward to
it, even when the SDK is set up after the Recorder started.

Nothing here runs on ``record()``'s path. The counters and gauges are
*observable*: the host's metric reader calls back on its own thread at each
collection and reads :meth:`Recorder.stats` of every live Recorder of the
process (summed). The only synchronous instrument, the send duration
histogram, is recorded on the writer thread once per pipelined batch.

Instruments (scope ``rawtap.producer``)::

    rawtap.producer.records.accepted    counter  {record}  taken by record()
    rawtap.producer.records.sent        counter  {record}  reached Redis
    rawtap.producer.records.spilled     counter  {record}  written to the spill journal
    rawtap.producer.records.replayed    counter  {record}  replayed from the journal
    rawtap.producer.records.dropped     counter  {record}  by rawtap.reason (buffer_full, …)
    rawtap.producer.records.skipped     counter  {record}  recording disabled / provider filtered
    rawtap.producer.send.failures       counter  {error}   failed round trips to Redis
    rawtap.producer.buffer.usage        gauge    By        bytes held in memory
    rawtap.producer.buffer.records      gauge    {record}  records held in memory
    rawtap.producer.journal.usage       gauge    By        spill journal on disk
    rawtap.producer.backpressured       gauge    1         1 while consumers lag towards maxlen
    rawtap.producer.send.duration       histogram s        one pipelined XADD round trip
"""

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rawtap.producer._events import RecorderStats
    from rawtap.producer._recorder import Recorder

logger = logging.getLogger(__name__)

SCOPE = "rawtap.producer"
"""Instrumentation scope (meter name) of the producer's metrics."""

_recorders: "weakref.WeakSet[Recorder]" = weakref.WeakSet()
_lock = threading.Lock()
_send_duration: Any = None
_made = False

_SEND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]

_COUNTERS: list[tuple[str, str, str, Callable[["RecorderStats"], int]]] = [
    ("records.accepted", "{record}", "Records taken by record().", lambda s: s.accepted),
    ("records.sent", "{record}", "Records that reached Redis.", lambda s: s.sent),
    (
        "records.spilled",
        "{record}",
        "Records written to the spill journal (Redis down or consumers lagging).",
        lambda s: s.spilled,
    ),
    (
        "records.replayed",
        "{record}",
        "Records replayed from the spill journal into Redis.",
        lambda s: s.replayed,
    ),
    (
        "records.skipped",
        "{record}",
        "Calls refused at the door: recording disabled or provider not allowed.",
        lambda s: s.skipped,
    ),
    ("send.failures", "{error}", "Failed round trips to Redis.", lambda s: s.send_failures),
]
_GAUGES: list[tuple[str, str, str, Callable[["RecorderStats"], int]]] = [
    ("buffer.usage", "By", "Bytes held in memory waiting for Redis.", lambda s: s.buffered_bytes),
    (
        "buffer.records",
        "{record}",
        "Records held in memory waiting for Redis.",
        lambda s: s.buffered_records,
    ),
    ("journal.usage", "By", "Bytes in the spill journal on disk.", lambda s: s.journal_bytes),
    (
        "backpressured",
        "1",
        "1 while consumers lag towards maxlen and batches go to the journal.",
        lambda s: int(s.backpressured),
    ),
]


def register(recorder: "Recorder") -> None:
    """Include ``recorder`` in the process's metrics (called when it is constructed).

    Creates the instruments on the first call; never raises.
    """
    try:
        with _lock:
            _recorders.add(recorder)
            if not _made:
                _make_instruments()
    except Exception:
        logger.debug("rawtap: producer metrics unavailable", exc_info=True)


def send_duration(seconds: float) -> None:
    """Record one pipelined round trip (writer thread); never raises."""
    histogram = _send_duration
    if histogram is not None:
        try:
            histogram.record(seconds)
        except Exception:
            logger.debug("rawtap: recording the send duration failed", exc_info=True)


def _stats() -> list["RecorderStats"]:
    return [recorder.stats() for recorder in list(_recorders)]


def _make_instruments() -> None:
    global _made, _send_duration  # noqa: PLW0603 - one set of instruments per process
    try:
        from opentelemetry.metrics import CallbackOptions, Observation, get_meter
    except ImportError:  # opentelemetry-api missing (a vendored install): no metrics
        _made = True
        return

    def summed(read: Callable[["RecorderStats"], int]) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(sum(read(s) for s in _stats()))]

        return observe

    def dropped(_options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[str, int] = {}
        for stats in _stats():
            for reason, count in stats.dropped.items():
                totals[reason] = totals.get(reason, 0) + count
        return [Observation(n, {"rawtap.reason": reason}) for reason, n in totals.items()]

    meter = get_meter(SCOPE)
    for name, unit, description, read in _COUNTERS:
        meter.create_observable_counter(
            f"rawtap.producer.{name}", [summed(read)], unit=unit, description=description
        )
    meter.create_observable_counter(
        "rawtap.producer.records.dropped",
        [dropped],
        unit="{record}",
        description="Records accepted (or refused: buffer_full) and never sent, by reason.",
    )
    for name, unit, description, read in _GAUGES:
        meter.create_observable_gauge(
            f"rawtap.producer.{name}", [summed(read)], unit=unit, description=description
        )
    _send_duration = meter.create_histogram(
        "rawtap.producer.send.duration",
        unit="s",
        description="One pipelined XADD round trip to Redis (writer thread).",
        explicit_bucket_boundaries_advisory=_SEND_BUCKETS,
    )
    _made = True
