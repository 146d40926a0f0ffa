"""record() never wakes the writer per record: it rouses a dozing writer, at most once per doze."""

from __future__ import annotations

import threading
import time

from rawtap.producer import Recorder


def test_record_wakes_the_writer_only_when_it_dozes(redis_url: str, stream_prefix: str) -> None:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix, spill_dir="")
    writer = recorder._writer
    assert writer is not None
    caller = threading.current_thread()
    sets_by_caller = 0
    real_set = writer.wake.set

    def counting_set() -> None:
        nonlocal sets_by_caller
        if threading.current_thread() is caller:
            sets_by_caller += 1
        real_set()

    writer.wake.set = counting_set  # type: ignore[method-assign]
    n = 3_000
    for i in range(n):
        assert recorder.record("openai", b"{}", {"i": i}, "user-42")
        if i % 3 == 0:
            time.sleep(0.0002)  # paced: the writer catches up and waits between calls
    assert recorder.flush(30)
    # Every wake-up the caller paid for answered one doze (the first: the writer dozes
    # from construction until the first record); none came per record.
    assert sets_by_caller == writer.rousings
    assert writer.rousings <= writer.dozes + 1
    assert recorder.close(10)
    assert recorder.stats().sent == n
    assert sets_by_caller < n // 2
