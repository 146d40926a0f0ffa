"""Fork safety of the writer thread's imports: the first connection imports nothing.

The writer imports redis-py on its own thread under a lock a ``fork()`` waits for.
A module imported lazily *outside* that lock (redis-py reading its version through
importlib.metadata, getaddrinfo's idna codec) could be half initialized in a child
forked at that moment, and the child's writer would then fail every connection.
The class of fault is "a module first imported by the writer after the lock":
this test makes a first connection and sends a record in a fresh process, and
asserts that no module at all was imported between the lock's imports and the
record reaching Redis.
"""

from __future__ import annotations

import subprocess
import sys

import redis

from tests.support.pipeline import PROCESS_EXIT_S

_CHILD = r"""
import sys
from rawtap.producer import Recorder
from rawtap.producer._writer._imports import import_redis

recorder = Recorder(redis_url=sys.argv[1], stream_prefix=sys.argv[2], spill_dir="")
import_redis()  # waits for the writer's own import (the lock), then returns at once
before = set(sys.modules)
assert recorder.record("openai", b"{}")
assert recorder.flush(60), "not sent"
print(sorted(set(sys.modules) - before))
recorder.close(10)
"""


def test_the_first_connection_imports_nothing_the_fork_lock_does_not_cover(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, redis_url, stream_prefix],
        capture_output=True, text=True, timeout=PROCESS_EXIT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"imported after the lock: {done.stdout}"
    assert redis_client.xlen(f"{stream_prefix}:{{0}}") >= 1
