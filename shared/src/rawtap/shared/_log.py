"""Rate-limited warnings for code that must not flood a log: :class:`LogOnce`."""

import logging
import threading
import time


class LogOnce:
    """Logs a given key at most once per ``interval_s`` seconds.

    The producer runs inside someone else's service and the worker's telemetry
    sits on a hot path that never raises: a Redis outage or a failing exporter
    must give one warning a minute, not one per record. Thread-safe (the
    producer's tap, writer and hooks share one per module).
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log ``msg % args`` as a warning unless ``key`` was logged within the interval.

        ``exc_info=True`` adds the exception being handled, as :meth:`logging.Logger.warning`.
        """
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return
            self._last[key] = now
        self._logger.warning(msg, *args, exc_info=exc_info)
