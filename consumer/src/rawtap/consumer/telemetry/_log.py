"""Warnings that telemetry logs at most once a minute per kind (a hot path that never raises)."""

import logging
import time


class LogOnce:
    """Logs a warning (with the exception in hand) at most once per ``interval_s`` per key."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}

    def once(self, key: str, msg: str, *args: object) -> None:
        """Log ``msg`` unless ``key`` was logged within the interval."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= self._interval:
            self._last[key] = now
            self._logger.warning(msg, *args, exc_info=True)
