"""Run as a process: one Recorder fed at a steady rate while Redis misbehaves; print figures.

``python -m tests.support.stall_probe '<json>'`` where the JSON object holds
``redis_url``, ``prefix``, ``spill_dir`` (``""``: no journal), ``count``,
``size``, ``rate`` (records/s), ``max_memory_mb``, ``spill_max_mb``,
``socket_timeout_s``, ``close_timeout_s``, and optionally ``stop_pid`` (a
redis-server to ``SIGSTOP`` before feeding, ``SIGCONT`` after closing) and
``replay_only`` (feed nothing; measure RSS while the journal found in
``spill_dir`` is replayed until it is empty).

It prints one JSON line: the recorder's ``stats()`` fields, ``base_mb`` (RSS
before feeding), ``peak_mb`` (highest RSS sampled every 10 ms on a thread
while feeding, closing or replaying), ``close_s`` (seconds ``close()``
blocked) and ``close_ok``. A process of its own so RSS is this recorder's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from rawtap.producer import Recorder

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """This process's resident set, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


class PeakSampler:
    """Samples RSS every 10 ms on a thread, keeping the highest."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        """Stop sampling; the peak seen."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        return self.peak


def main(spec: dict[str, Any]) -> None:
    recorder = Recorder(
        redis_url=spec["redis_url"],
        stream_prefix=spec["prefix"],
        spill_dir=spec["spill_dir"],
        max_memory_mb=spec.get("max_memory_mb", 16),
        spill_max_mb=spec.get("spill_max_mb", 1024),
        socket_timeout_s=spec.get("socket_timeout_s", 2.0),
        connect_timeout_s=spec.get("socket_timeout_s", 2.0),
        close_timeout_s=spec.get("close_timeout_s", 5.0),
        report_interval_s=0.5,
        handle_sigterm=False,
    )
    body = os.urandom(spec.get("size", 10_000) // 2).hex().encode()  # incompressible, exact size
    stop_pid = spec.get("stop_pid")
    if spec.get("replay_only"):
        base = rss_mb()  # before the writer starts: it replays the journal at once
        recorder.record("openai", b"warm-up", {"i": -1}, "s")
    else:
        # Allocate the hot paths' memory before measuring: one record through the writer.
        recorder.record("openai", b"warm-up", {"i": -1}, "s")
        recorder.flush(30)
        base = rss_mb()
    sampler = PeakSampler()
    if spec.get("replay_only"):
        deadline = time.monotonic() + spec.get("replay_timeout_s", 120)
        while recorder.stats().journal_bytes > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        if stop_pid:
            os.kill(stop_pid, signal.SIGSTOP)
        rate, count = spec.get("rate", 2000), spec["count"]
        started = time.monotonic()
        for i in range(count):
            recorder.record("openai", body, {"i": i}, f"session-{i % 50}")
            if i % 20 == 19:
                ahead = (i + 1) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    t0 = time.monotonic()
    ok = recorder.close()
    close_s = time.monotonic() - t0
    peak = sampler.stop()
    if stop_pid:
        os.kill(stop_pid, signal.SIGCONT)
    out = dataclasses.asdict(recorder.stats())
    out.update(base_mb=base, peak_mb=peak, close_s=close_s, close_ok=ok)
    print(json.dumps(out))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
