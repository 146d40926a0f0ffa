"""How a Recorder outlives nothing it should: process exit, SIGTERM and fork.

* **exit**: ``atexit`` closes each started recorder (within its close bound);
  ``multiprocessing`` children leave through ``os._exit()``, past atexit, so
  a ``multiprocessing.util.Finalize`` does the same for them.
* **SIGTERM**: when the host left it at its default action, one process-wide
  handler closes every live recorder, then dies as SIGTERM would have.
* **fork**: the child starts over (new identity, empty buffer, no thread);
  the Recorder says how in the callback it hands to :func:`watch`.
"""

import atexit
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Protocol


class Closable(Protocol):
    """What this module needs of a recorder."""

    def close(self, timeout: float | None = None) -> bool:
        """Flush within the recorder's close bound and stop."""
        ...


_LIVE: "weakref.WeakSet[Closable]" = weakref.WeakSet()
"""Every recorder of this process, for the SIGTERM flush."""
_sigterm_installed = False


def watch(
    recorder: Closable,
    after_fork: "weakref.WeakMethod[Callable[[], None]]",
    *,
    handle_sigterm: bool,
) -> None:
    """Track a new recorder: ``after_fork()`` runs in a forked child; SIGTERM flushes it."""
    os.register_at_fork(after_in_child=lambda: _call(after_fork))
    _LIVE.add(recorder)
    if handle_sigterm:
        install_sigterm_flush()


def close_at_exit(recorder: Closable) -> None:
    """Close ``recorder`` when the process exits (also a multiprocessing child)."""
    atexit.register(recorder.close)
    from multiprocessing import util

    util.Finalize(recorder, _close_ref, args=(weakref.ref(recorder),), exitpriority=10)


def forget_at_exit(recorder: Closable) -> None:
    """``recorder`` was closed: nothing to do for it at exit."""
    atexit.unregister(recorder.close)


def install_sigterm_flush() -> None:
    """Install the process-wide SIGTERM flush, once.

    Only when the host left SIGTERM at its default action and we are on the
    main thread (where Python runs signal handlers): a host that handles
    SIGTERM itself exits through atexit, which flushes too.
    """
    global _sigterm_installed  # noqa: PLW0603 - one handler per process
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    _sigterm_installed = True


def _close_ref(ref: "weakref.ReferenceType[Closable]") -> None:
    recorder = ref()
    if recorder is not None:
        recorder.close()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Flush every recorder of the process (each within its close bound), then die
    # as SIGTERM would have: exit status and parent notification unchanged.
    for recorder in list(_LIVE):
        recorder.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _call(method: "weakref.WeakMethod[Callable[[], None]]") -> None:
    bound = method()
    if bound is not None:
        bound()
