"""A real ``rawtap`` Worker process with failpoints, for chaos tests.

Run as ``python -m tests.support.chaos_worker`` with the usual ``RAWTAP_*``
variables plus any of:

``CHAOS_SLEEP_BEFORE_COMMIT_S``  sleep before each commit (a slow sink: time to SIGSTOP/kill)
``CHAOS_CRASH_AFTER_COMMITS``    kill -9 itself right after the Nth commit, before XACK
``CHAOS_CRASH_ON_POISON``        kill -9 itself on a batch with a ``{"poison": true}`` record
``CHAOS_FAIL_FIRST_COMMIT_PCT``  fail the first commit of this % of batches (every 100/pct-th)

The failpoints live here, in the tests, not in the product.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from rawtap.consumer import SinkError, SqliteSink, Worker
from rawtap.consumer.derivation import Derived
from rawtap.consumer.store import path_from_url
from rawtap.shared import Record, WorkerSettings, load_settings

log = logging.getLogger("tests.chaos_worker")


class ChaosSink(SqliteSink):
    """The real SQLite sink, with the failpoints above around ``write``."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.commits = 0
        self.sleep_s = float(os.environ.get("CHAOS_SLEEP_BEFORE_COMMIT_S", "0"))
        self.crash_after = int(os.environ.get("CHAOS_CRASH_AFTER_COMMITS", "0"))
        self.crash_on_poison = bool(os.environ.get("CHAOS_CRASH_ON_POISON"))
        self.fail_pct = float(os.environ.get("CHAOS_FAIL_FIRST_COMMIT_PCT", "0"))
        self.failed_once: set[str] = set()
        self.batches_seen = 0

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
        *,
        envelopes: Sequence[bytes] | None = None,
    ) -> int:
        if self.crash_on_poison and any(r.metadata.get("poison") for r in records):
            os.kill(os.getpid(), signal.SIGKILL)
        key = records[0].record_id
        # Deterministic: the first commit of every (100 / pct)th new batch fails.
        if self.fail_pct and key not in self.failed_once:
            self.failed_once.add(key)
            self.batches_seen += 1
            if self.batches_seen % round(100 / self.fail_pct) == 1:
                raise SinkError("chaos: simulated commit failure", transient=True)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        stored = super().write(records, persisted_at_ns, derived, envelopes=envelopes)
        self.commits += 1
        # Tests wait on this line (an event), not on a guess of how long a commit takes.
        log.info("chaos: committed %d records, %d new", len(records), stored)
        if self.crash_after and self.commits >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # committed, not acknowledged
        return stored


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings(WorkerSettings)
    with ChaosSink(path_from_url(settings.sink_url)) as sink:
        Worker(settings, sink=sink).run(handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
