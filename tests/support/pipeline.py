"""Running workers in tests: in a thread, or as a real ``rawtap worker`` process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rawtap.consumer import Sink, Worker, WorkerStats

GUARD_FLOOR_S = 120.0
"""The shortest hang guard: a wait ends at its event, so a guard only says when to call a
run hung, and it costs nothing in a green run. Guards of 20-60 s were reached by healthy
runs on a 2-core machine at load 8 (a whole test run three times slower)."""

PROCESS_EXIT_S = GUARD_FLOOR_S
"""How long a process asked to stop (SIGTERM) or run to its end may take before the test
calls it hung; its exit is asserted by its return code and output, not by this bound."""


def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` when it never becomes true.

    ``timeout`` is what a run on an idle machine needs; the guard is never shorter
    than :data:`GUARD_FLOOR_S`. Nothing may rely on this to assert a bound on time.
    """
    timeout = max(timeout, GUARD_FLOOR_S)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextmanager
def worker_thread(worker: Worker) -> Iterator[Worker]:
    """Run ``worker`` in a thread for the duration of the block, then stop it."""
    result: list[WorkerStats] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(worker.run())
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "worker did not stop within 15 s"
        if errors:
            raise errors[0]


def drain(sink: Sink, producer_id: str, expected: int, timeout: float = 30.0) -> None:
    """Wait until ``expected`` records of ``producer_id`` are in ``sink``."""
    wait_until(
        lambda: sink.count(producer_id) >= expected,
        timeout,
        f"{expected} records of {producer_id} in the sink",
    )


def rawtap_command(*args: str, env: dict[str, str] | None = None) -> list[str]:
    """argv that runs the ``rawtap`` CLI of this environment."""
    return [sys.executable, "-c", "from rawtap.consumer.cli import main; main()", *args]


def spawn_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start ``rawtap worker`` as a real process with ``env`` added to the environment."""
    return subprocess.Popen(
        rawtap_command("worker", *args),
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
