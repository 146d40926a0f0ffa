"""LedgerReader: the ledger's figures for telemetry's gauges, read off the worker's thread."""

import threading

from rawtap.consumer.store._open import open_sink
from rawtap.consumer.store._sink import Sink
from rawtap.shared import range_count


class LedgerReader:
    """Dead letters, trimmed ids and gaps of a worker's sink, read on telemetry's metric thread.

    A reconcile is a window scan over the records. PostgresSink runs every call
    on one connection under one lock, so scanning through the worker's sink
    would hold its commits for the scan: for a PostgreSQL store the worker opened
    from ``sink_url``, the reader opens a read-only handle of its own, on first
    use. The worker's sink (set as :attr:`sink` once open) is read otherwise:
    SqliteSink serialises on its lock (safe across threads) and reconciles
    cheaply, and a sink passed to the worker has no URL (``sink_url=None``).
    Calls that overlap answer None at once; after :meth:`close` every call does
    (telemetry keeps the last figures).
    """

    def __init__(self, sink_url: str | None) -> None:
        self.sink: Sink | None = None
        """The worker's sink, once open."""
        own = sink_url is not None and sink_url.startswith(("postgresql://", "postgres://"))
        self._url = sink_url if own else None
        self._own: Sink | None = None
        self._busy = False
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, int] | None:
        """``dead_lettered``, ``trimmed`` and ``gaps`` (missing seqs), or None (see above)."""
        with self._lock:
            if self._closed.is_set() or self.sink is None or self._busy:
                return None
            self._busy = True
        try:
            if self._url is not None and self._own is None:
                self._own = open_sink(self._url, migrate=False, read_only=True)
            store = self._own or self.sink
            counts = dict(store.ledger_counts())
            counts["gaps"] = sum(range_count(b.missing) for b in store.reconcile())
            return counts
        finally:
            with self._lock:
                self._busy = False
                if self._closed.is_set():
                    self._close_own()

    def close(self) -> None:
        """No more reads; the handle of its own closes now, or when the read in hand ends."""
        with self._lock:
            self._closed.set()
            if not self._busy:
                self._close_own()

    def _close_own(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None
