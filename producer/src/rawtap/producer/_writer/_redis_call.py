"""Redis calls on a thread of their own, so the writer can stop waiting for a stalled server.

A Redis that accepts TCP and answers nothing (a SIGSTOPped or overloaded server,
a blackholed address) blocks a call for ``socket_timeout_s``. Were the writer
thread to wait that long each time, records would pile up in the buffer and be
refused although the journal has room. The writer waits only while
``give_up()`` says it can afford to (the buffer has room, close's deadline has
not passed); then it treats the call as failed and spills, leaving the call to
finish or time out here. Calls run one at a time, in order, so a probe sent
after a stuck call waits behind it instead of opening more connections.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - see below
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar, cast

# concurrent.futures.thread is imported here, on the thread importing rawtap, because it
# registers an exit hook: redis-py imports it, and the writer thread imports redis-py, maybe
# while the interpreter is already shutting down (a short script), when that hook is refused.

T = TypeVar("T")

_POLL_S = 0.01


class RedisStalled(Exception):
    """Redis took a call and has not answered while the writer could afford to wait."""


class Call:
    """A call submitted to the I/O thread: its future and when it was submitted."""

    __slots__ = ("future", "started")

    def __init__(self, future: Future[object], started: float) -> None:
        self.future = future
        self.started = started


class RedisCaller:
    """Runs Redis calls on one daemon thread; the caller waits until ``give_up(waited_s)``."""

    def __init__(self, give_up: Callable[[float], bool]) -> None:
        self._give_up = give_up
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def run(self, call: Callable[[], T]) -> T:
        """``call()``'s result, or raise what it raised, or :class:`RedisStalled`."""
        return cast(T, self.wait(self.submit(call)))

    def submit(self, call: Callable[[], object]) -> Call:
        """Start ``call()`` on the I/O thread; :meth:`wait` for it (calls run in order)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="rawtap-redis-io", daemon=True)
            self._thread.start()
        future: Future[object] = Future()
        self._jobs.put((call, future))
        return Call(future, time.monotonic())

    def wait(self, call: Call) -> object:
        """What a submitted call returned, or raise what it raised, or :class:`RedisStalled`."""
        future, started = call.future, call.started
        while True:
            try:
                return future.result(timeout=_POLL_S)
            except FutureTimeout:
                if self._give_up(time.monotonic() - started):
                    msg = "Redis accepted the connection but has not answered"
                    raise RedisStalled(msg) from None

    def close(self) -> None:
        """End the thread once its current call returns (it never blocks the caller)."""
        if self._thread is not None:
            self._jobs.put(None)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, future = job
            try:
                future.set_result(call())
            except BaseException as e:  # noqa: BLE001 - handed to the waiting writer as is
                future.set_exception(e)
