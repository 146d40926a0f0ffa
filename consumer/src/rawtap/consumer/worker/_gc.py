"""The garbage collector during a worker's run: old objects frozen, young ones collected rarely.

A batch of 500 records allocates some 10,000 containers (envelopes, headers,
records, derived fields) that all live until the batch is acknowledged and are
then freed by reference counting: there is nothing cyclic for the collector to
find, yet CPython's default threshold (700 allocations) runs it a dozen times a
batch over those live objects, and every tenth run the older generations, which
hold every module and class the worker imported. :func:`tuned_collector`
freezes what exists when the run starts (``gc.freeze``: imports, settings, the
sink) and raises the first generation's threshold for the run, then restores
both. Cycles are still collected, just every ``GEN0_THRESHOLD`` allocations.
"""

import contextlib
import gc
from collections.abc import Iterator

GEN0_THRESHOLD = 50_000
"""Allocations between two young-generation collections during a run (CPython's default: 700)."""


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """Freeze the objects alive now and collect young objects rarely, until the block ends."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], GEN0_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
