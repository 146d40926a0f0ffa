"""Retention: deleting records older than a cut-off, on demand or periodically in a worker."""

import logging
import time

from rawtap.consumer.store._sink import Sink, SinkError

logger = logging.getLogger(__name__)


def purge_older_than(sink: Sink, age_s: float, now_ns: int | None = None) -> int:
    """Delete every record that started more than ``age_s`` seconds before ``now_ns``.

    Returns how many were deleted. ``now_ns`` defaults to the current wall clock.
    """
    now = time.time_ns() if now_ns is None else now_ns
    return sink.purge(now - int(age_s * 1_000_000_000))


class RetentionSchedule:
    """Applies a retention age at most once per interval; a worker calls ``tick`` in its loop.

    Failures are logged and retried at the next interval: retention never stops a worker.
    """

    def __init__(self, age_s: float | None, interval_s: float) -> None:
        self.age_s = age_s
        self.interval_s = interval_s
        self._next = time.monotonic()  # first run at the first tick

    def tick(self, sink: Sink) -> int:
        """Purge if retention is set and due; return how many records were deleted."""
        if self.age_s is None or time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.interval_s
        try:
            deleted = purge_older_than(sink, self.age_s)
        except SinkError as e:
            logger.warning("retention: purge failed (%s); retrying in %.0fs", e, self.interval_s)
            return 0
        if deleted:
            logger.info("retention: deleted %d records older than %.0fs", deleted, self.age_s)
        return deleted
