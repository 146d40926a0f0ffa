"""The ledger: what one Recorder and its writer thread count, drop and tell observers.

Both hold the same :class:`Ledger` (as OpenTelemetry's BatchProcessor and its
exporter share a small object): the Recorder reads it for ``stats()``, the
writer thread and the capture tap write to it through its methods, and
neither reaches into the other.
"""

import logging
import threading

from rawtap.producer import _metrics
from rawtap.producer._events import Callback, Event, Failed
from rawtap.shared import LogOnce, SeqRange, add_to_ranges, range_count

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)


class Ledger:
    """Counters, dropped ``seq`` ranges and event observers of one recorder."""

    def __init__(self) -> None:
        self._subscribers: list[Callback] = []
        self.has_subscribers = False
        """True once anyone subscribed: the writer builds ``Recorded`` events only then."""
        self.reset()

    def reset(self) -> None:
        """Start every figure over (a forked child); subscribers stay."""
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._drops: dict[str, list[SeqRange]] = {}
        self._foreign_drops: dict[str, list[SeqRange]] = {}
        # Set when close() gave up on a writer stuck in Redis: the counters are final,
        # so what the stuck thread does afterwards is not counted a second time.
        self._final = False
        self.sent = 0
        """Records written to Redis."""
        self.spilled = 0
        """Records written to the spill journal."""
        self.replayed = 0
        """Records sent from the spill journal."""
        self.last_send_s = 0.0
        """How long the last pipelined send took."""

    # -- counters ---------------------------------------------------------------

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (any thread)."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def counters(self) -> dict[str, int]:
        """A copy of the named counters."""
        with self._lock:
            return dict(self._counters)

    # Only the writer thread calls these four.
    def add_sent(self, n: int) -> None:
        """``n`` records reached Redis."""
        if not self._final:
            self.sent += n

    def add_spilled(self, n: int) -> None:
        """``n`` records were written to the journal."""
        if not self._final:
            self.spilled += n

    def add_replayed(self, n: int) -> None:
        """``n`` journaled records were sent."""
        self.replayed += n

    def send_took(self, seconds: float) -> None:
        """One pipelined send took ``seconds``."""
        self.last_send_s = seconds
        _metrics.send_duration(seconds)

    # -- drops ------------------------------------------------------------------------

    def drop(
        self, reason: str, seqs: list[int], error: str | None = None, *, final: bool = False
    ) -> None:
        """Accepted records that will never be sent: count them, by seq range, for the report.

        ``final``: close() gave up on a writer stuck in Redis; after these drops the
        counters are final (``accepted = sent + spilled + dropped``), so whatever
        the stuck writer thread does later is not counted again.
        """
        with self._lock:
            if self._final:
                return
            ranges = self._drops.setdefault(reason, [])
            for seq in seqs:
                add_to_ranges(ranges, seq, seq)
            self._final = final
        self.emit(Failed(reason, len(seqs), error))

    def drop_ranges(self) -> dict[str, list[SeqRange]]:
        """A copy of the dropped ranges, by reason."""
        with self._lock:
            return {reason: list(r) for reason, r in self._drops.items()}

    def drop_counts(self) -> dict[str, int]:
        """How many records were dropped, by reason."""
        with self._lock:
            return {reason: range_count(r) for reason, r in self._drops.items()}

    def dropped_total(self) -> int:
        """How many records were dropped, all reasons together."""
        with self._lock:
            return sum(range_count(r) for r in self._drops.values())

    def foreign_drop(self, producer_id: str, seqs: list[int]) -> None:
        """Another producer's journaled records were dropped here: report them on its behalf."""
        ranges = self._foreign_drops.setdefault(producer_id, [])
        for seq in seqs:
            add_to_ranges(ranges, seq, seq)
        self.emit(Failed("journal_overflow", len(seqs), f"records of producer {producer_id}"))

    def foreign_drops(self) -> dict[str, list[SeqRange]]:
        """Other producers' dropped ranges not yet reported (writer thread only)."""
        return self._foreign_drops

    def foreign_reported(self) -> None:
        """The foreign drops went out in a report."""
        self._foreign_drops.clear()

    # -- observers --------------------------------------------------------------------

    def subscribe(self, callback: Callback) -> None:
        """Call ``callback(event)`` for every event from now on."""
        self._subscribers.append(callback)
        self.has_subscribers = True

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every subscriber; one that raises is counted and logged."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - an observer's bug is not ours to propagate
                self.count("hook_errors")
                _log_once.warning("hook", "rawtap: an event callback raised", exc_info=True)
