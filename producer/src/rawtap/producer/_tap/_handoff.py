"""Handing a finished capture's record to the Recorder, without ever blocking or raising.

A capture may finish inside a finalizer, on a thread that already holds the
Recorder's buffer lock: such records are set aside and queued by the next
capture (or at exit). Failures inside the tap are counted here.
"""

import atexit
import collections
import logging
from typing import TYPE_CHECKING, Any

from rawtap.shared import LogOnce

if TYPE_CHECKING:
    from rawtap.producer._recorder import Recorder

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)


def count_failure(recorder: "Recorder | None", where: str) -> None:
    """Count and log (once a minute) a failure inside the tap; never raises."""
    try:
        if recorder is not None:
            recorder.ledger.count("internal_errors")
        _log_once.warning(
            "tap-" + where, "rawtap: the capture tap failed in %s", where, exc_info=True
        )
    except Exception:  # noqa: BLE001, S110 - the last line of defence must not raise either
        pass


deferred: collections.deque[tuple["Recorder", str, Any, str | None, dict[str, Any]]] = (
    collections.deque()
)
"""Records a finalizer had to set aside, queued by :func:`drain_deferred` (test it: cheap)."""
_atexit_registered = False


def _buffer_busy(recorder: "Recorder") -> bool:
    # A finalizer may run while this very thread holds the buffer's (non-reentrant)
    # lock, e.g. when an allocation inside ``record()`` triggers the cyclic GC; a
    # record() from there would deadlock. If the lock is taken at all, defer.
    return recorder.buffer_busy()


def submit(
    recorder: "Recorder",
    provider: str,
    metadata: Any,
    session_id: str | None,
    details: dict[str, Any],
    risky: bool,
) -> None:
    """Queue a finished capture's record; ``risky`` (maybe in a finalizer): defer it if needed."""
    global _atexit_registered  # noqa: PLW0603 - one process-wide registration
    if risky and _buffer_busy(recorder):
        deferred.append((recorder, provider, metadata, session_id, details))
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(drain_deferred)
        return
    recorder.record(provider, None, metadata, session_id, **details)


def drain_deferred() -> None:
    """Queue records that a finalizer had to set aside; called on the next capture."""
    while deferred:
        try:
            item = deferred.popleft()
        except IndexError:
            return
        recorder, provider, metadata, session_id, details = item
        try:
            if _buffer_busy(recorder):
                deferred.appendleft(item)
                return
            recorder.record(provider, None, metadata, session_id, **details)
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(recorder, "drain")
