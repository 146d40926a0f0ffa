"""Rate-limited logging for code that must not flood a host's logs."""

import logging
import threading
import time


class LogOnce:
    """Logs a given key at most once per ``interval_s`` seconds.

    The producer runs inside someone else's service: a Redis outage must
    produce one warning a minute, not one per record.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log ``msg % args`` as a warning unless ``key`` was logged recently."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return
            self._last[key] = now
        self._logger.warning(msg, *args, exc_info=exc_info)
