"""Committing a batch to the sink: retry what is transient, bisect to find what is refused.

A transient sink failure (database down or locked) keeps the batch in hand and
retries with backoff, acknowledging nothing; a stop requested meanwhile raises
:class:`Stopped` so the entries stay pending. A failure that is the data's
fault is narrowed down by splitting the batch until the refused records are
alone; the rest is committed in the same delivery.
"""

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store import Accounting, Sink, SinkError
from rawtap.consumer.worker._stats import BACKOFF_FIRST_S, BACKOFF_MAX_S, WorkerStats
from rawtap.shared import Record

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside a commit retry when a stop was requested and the sink is still down."""


@functools.cache
def takes_envelopes(sink_type: type[Any]) -> bool:
    """Whether a sink class's ``write`` accepts ``envelopes=`` (added in schema 3's release).

    A custom sink written to the earlier protocol gets its records without them (and
    encodes them itself) instead of raising TypeError, which would dead-letter them all.
    """
    try:
        parameters = inspect.signature(sink_type.write).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return False
    return any(p.name == "envelopes" or p.kind is p.VAR_KEYWORD for p in parameters)


class Committer:
    """Commits records and ledger rows to a sink, counting into ``stats``."""

    def __init__(self, stats: WorkerStats, stopping: threading.Event) -> None:
        self._stats = stats
        self._stopping = stopping

    def commit(
        self, sink: Sink, records: list[Record], derived: list[Derived], envelopes: list[bytes]
    ) -> list[tuple[Record, str]]:
        """Commit ``records`` (with their fields and envelopes as received); return those
        the sink refuses as data, with the reason."""
        if not records:
            return []
        try:
            if takes_envelopes(type(sink)):
                stored = self.retry(
                    lambda: sink.write(records, time.time_ns(), derived, envelopes=envelopes)
                )
            else:
                stored = self.retry(lambda: sink.write(records, time.time_ns(), derived))
        except SinkError as e:
            if len(records) == 1:
                return [(records[0], f"refused by the sink: {e}")]
            # Split to find the records the sink refuses; commit the rest.
            half = len(records) // 2
            return self.commit(
                sink, records[:half], derived[:half], envelopes[:half]
            ) + self.commit(sink, records[half:], derived[half:], envelopes[half:])
        self._stats.stored += stored
        self._stats.duplicates += len(records) - stored
        return []

    def write_ledger(self, sink: Sink, accounting: Accounting) -> None:
        """Commit the ledger; what the sink refuses as data is logged and counted, never fatal.

        A ledger row describes an entry that may be garbage (that is why it is a
        dead letter): one the store refuses must not stop the worker, nor be
        retried forever. Split the batch to keep every row the store accepts.
        """
        try:
            self.retry(lambda: sink.write_accounting(accounting))
        except SinkError as e:
            parts = accounting.split()
            if len(parts) > 1:
                for part in parts:
                    self.write_ledger(sink, part)
                return
            self._stats.ledger_refused += 1
            logger.warning("ledger row refused by the sink, not recorded (%s): %s", accounting, e)

    def account_trimmed(self, sink: Sink, stream: str, entry_ids: list[bytes]) -> None:
        """Record pending ids whose entries MAXLEN trimmed away (the data is gone)."""
        self.write_ledger(sink, Accounting(stream=stream, trimmed=[e.decode() for e in entry_ids]))
        self._stats.trimmed_lost += len(entry_ids)

    def retry(self, write: Callable[[], T]) -> T:
        """Run a sink write, retrying transient failures with backoff; raise data errors.

        An unexpected exception from a sink (a bug, a value a driver cannot adapt)
        is treated as a data error, so the batch is split and the culprit
        dead-lettered rather than the worker stopped.
        """
        delay = BACKOFF_FIRST_S
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
                self._stats.sink_errors += 1
                if self._stopping.is_set():
                    logger.warning("sink still failing at stop; leaving the batch pending: %s", e)
                    raise Stopped from e
                logger.warning(
                    "sink write failed, nothing acknowledged: %s; retrying in %.1fs", e, delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
