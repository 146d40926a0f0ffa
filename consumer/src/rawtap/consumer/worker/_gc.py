"""The garbage collector during a worker's run: old objects frozen, young ones collected rarely.

A batch of 500 records allocates some 10,000 containers (envelopes, headers,
records, derived fields) that all live until the batch is acknowledged and are
then freed by reference counting: there is nothing cyclic for the collector to
find, yet CPython's default threshold (700 allocations) runs it a dozen times a
batch over those live objects, and every tenth run the older generations, which
hold every module and class the worker imported. :func:`tuned_collector`
freezes what exists when the run starts (``gc.freeze``: imports, settings, the
sink) and raises the first generation's threshold while any worker of the
process runs.

The collector's settings belong to the whole process, so the tuning is shared:
the first worker to start raises the threshold and the last to stop puts back
what it found; a process whose collector is disabled, or whose threshold is
already higher, is left as it is; and nothing is ever unfrozen (``gc.unfreeze``
would also undo a host application's own ``gc.freeze()``). Cycles are still
collected, every ``GEN0_THRESHOLD`` allocations.
"""

import contextlib
import gc
import threading
from collections.abc import Iterator

GEN0_THRESHOLD = 50_000
"""Allocations between two young-generation collections during a run (CPython's default: 700)."""


class _Tuning:
    """The process's one tuning: how many workers run, and what the first one found."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.saved: tuple[int, int, int] | None = None


_TUNING = _Tuning()


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """Freeze the objects alive now and collect young objects rarely, until the block ends."""
    t = _TUNING
    with t.lock:
        t.running += 1
        if t.running == 1:
            gc.freeze()
            before = gc.get_threshold()
            if gc.isenabled() and 0 < before[0] < GEN0_THRESHOLD:
                t.saved = before
                gc.set_threshold(GEN0_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        with t.lock:
            t.running -= 1
            if t.running == 0 and t.saved is not None:
                gc.set_threshold(*t.saved)
                t.saved = None
