"""One producer process for the end-to-end and memory benchmarks.

    python -m bench._producer paced --redis URL --prefix P --rate R --seconds S
    python -m bench._producer flood --redis URL --prefix P --rate R --seconds S
        [--max-memory-mb 64] [--spill-dir DIR | --no-spill]

Prints ``ready``, waits for ``go`` on stdin, records 2 KB responses with a real
Recorder at ``rate`` per second (paced every millisecond) for ``seconds``, and
prints one JSON line: records offered and accepted, the rate achieved, the
recorder's counters and, every 0.25 s, this process's RSS in MB (the first
sample is taken before the Recorder exists: the baseline of the memory figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from bench._common import BODY_BYTES, DETAILS, METADATA, body_of_size, rss_mb


def main() -> None:
    """Parse the arguments, record at the requested rate, report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["paced", "flood"])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-memory-mb", type=float, default=64.0)
    parser.add_argument("--spill-dir", default="")
    parser.add_argument("--spill-max-mb", type=float, default=256.0)
    args = parser.parse_args()

    from rawtap.producer import Recorder

    body = body_of_size(BODY_BYTES)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.wait(0.25):
            samples.append((time.monotonic() - t0, rss_mb()))

    baseline = rss_mb()
    recorder = Recorder(
        redis_url=args.redis, stream_prefix=args.prefix, max_memory_mb=args.max_memory_mb,
        spill_dir=args.spill_dir, spill_max_mb=args.spill_max_mb, close_timeout_s=1.0,
        socket_timeout_s=1.0, connect_timeout_s=1.0,
    )  # fmt: skip
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            break
    threading.Thread(target=sample, daemon=True).start()
    record = recorder.record
    body = body.replace(b"chatcmpl-", b"chatcmpl-0000000000", 1)
    fresh = body.replace if args.mode == "flood" else None
    offered = 0
    started = time.monotonic()
    end = started + args.seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - started) * args.rate)
        if offered >= due:
            time.sleep(0.0005)
            continue
        while offered < due:
            # A new bytes object per response, as a service gets from its HTTP client
            # (the same object recorded twice would be held in memory once).
            raw = body if fresh is None else fresh(b"0000000000", b"%010d" % offered, 1)
            record("openai", raw, METADATA, "user-42", **DETAILS)
            offered += 1
    elapsed = time.monotonic() - started
    flushed = recorder.flush(30) if args.mode == "paced" else False
    stop.set()
    stats = recorder.stats()
    recorder.close(1.0 if args.mode == "flood" else 30.0)
    result: dict[str, Any] = {
        "offered": offered,
        "rate": offered / elapsed,
        "accepted": stats.accepted,
        "sent": stats.sent,
        "dropped": stats.dropped,
        "spilled": stats.spilled,
        "flushed": flushed,
        "baseline_rss": baseline,
        "rss": samples,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
