"""What the capture tap costs the application: per call and per stream chunk.

Two measurements, both medians:

1. **transport level** (precise): one request through an in-memory inner
   transport that answers instantly, with and without the tap around it, for a
   1-chunk and a 300-chunk response. The difference is the tap's own cost
   (capture, tee, handing the record to a real Recorder; redaction runs on the writer).
2. **SDK level** (what an application sees): the real OpenAI SDK against the
   fake provider running as a separate process, tapped vs untapped, for a JSON
   call and a 300-chunk stream; the ratio shows the tap against the SDK's own
   cost.

Run it with ``python -m uv run python bench/tap_overhead.py`` (Redis on
``RAWTAP_REDIS_URL`` or 127.0.0.1:6379); it prints a Markdown report.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx2

from rawtap.producer import Recorder

REDIS_URL = os.environ.get("RAWTAP_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = f"rawtap-bench-{os.getpid()}"
API_KEY = "sk-bench-0123456789abcdef"


def _median_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def _interleaved(fns: list[Callable[[], Any]], n: int, rounds: int = 5) -> list[float]:
    """Medians over ``rounds`` alternating batches of each variant, so drift hits all alike."""
    per: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            per[i].append(_median_us(fn, n // rounds))
    return [statistics.median(p) for p in per]


class _NoopRecorder(Recorder):
    """A Recorder whose ``record()`` accepts and drops: isolates the tap's own cost."""

    def record(self, *args: Any, **kwargs: Any) -> bool:  # type: ignore[override]
        return True


# -- 1. transport level -----------------------------------------------------------------


class _Stream(httpx2.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


class _Instant(httpx2.BaseTransport):
    """Answers every request at once with the same SSE chunks and realistic headers."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"Date", b"Wed, 25 Nov 2026 12:00:00 GMT"),
        (b"Content-Type", b"text/event-stream; charset=utf-8"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"keep-alive"),
        (b"openai-processing-ms", b"42"),
        (b"openai-version", b"2020-10-01"),
        (b"x-request-id", b"req_0123456789abcdef"),
        (b"x-ratelimit-remaining-requests", b"9999"),
        (b"x-ratelimit-remaining-tokens", b"9999990"),
        (b"Server", b"cloudflare"),
    ]

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=self.HEADERS, stream=_Stream(self._chunks))


def _request() -> httpx2.Request:
    # The headers the OpenAI SDK sends, with its key.
    return httpx2.Request(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        headers={
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "OpenAI/Python 3.57.0",
            "X-Stainless-Lang": "python",
            "X-Stainless-Package-Version": "3.57.0",
            "X-Stainless-OS": "Linux",
            "X-Stainless-Arch": "x64",
            "X-Stainless-Runtime": "CPython",
            "X-Stainless-Runtime-Version": "3.11.7",
            "Authorization": f"Bearer {API_KEY}",
            "x-stainless-retry-count": "0",
            "x-stainless-read-timeout": "600",
        },
        content=b'{"model":"gpt-4o","messages":[{"role":"user","content":"Say something."}],'
        b'"stream":true}',
    )


def transport_level(recorder: Recorder, noop: Recorder) -> list[tuple[str, list[float]]]:
    """Rows (case, [untapped, tap only, tap + Recorder] µs) for 1 and 300 chunks."""
    rows = []
    request = _request()
    for n_chunks in (1, 300):
        chunk = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
        inner = _Instant([chunk] * n_chunks)
        variants = [
            inner,
            noop.transport(inner, provider="openai"),
            recorder.transport(inner, provider="openai"),
        ]

        def once(transport: Any) -> None:
            response = transport.handle_request(request)
            for _ in response.stream:
                pass
            response.stream.close()

        for _ in range(500):
            for v in variants:
                once(v)
        n = 20_000 if n_chunks == 1 else 2_000
        fns = [lambda v=v: once(v) for v in variants]
        rows.append((f"{n_chunks} chunk{'s' if n_chunks > 1 else ''}", _interleaved(fns, n)))
        recorder.flush(10)
    return rows


# -- 2. SDK level -------------------------------------------------------------------------


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawtap.tools.fake_provider", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    return proc, url.rstrip("/")


def sdk_level(recorder: Recorder, noop: Recorder, url: str) -> list[tuple[str, list[float]]]:
    """Rows (case, [untapped, tap only, tap + Recorder] µs): JSON call, 300-chunk stream."""
    import openai

    clients = [
        openai.OpenAI(api_key=API_KEY, base_url=url + "/v1"),
        noop.instrument(openai.OpenAI(api_key=API_KEY, base_url=url + "/v1")),
        recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=url + "/v1")),
    ]
    messages = [{"role": "user", "content": "Say something."}]

    def json_call(client: Any) -> None:
        client.chat.completions.create(model="bench", messages=messages)

    def stream_call(client: Any) -> None:
        for _ in client.chat.completions.create(
            model="fake-long-300", messages=messages, stream=True
        ):
            pass

    rows = []
    try:
        for name, fn, n in (("JSON call", json_call, 1000), ("300-chunk stream", stream_call, 100)):
            for _ in range(20):
                for c in clients:
                    fn(c)
            fns = [lambda c=c: fn(c) for c in clients]  # noqa: B023
            rows.append((name, _interleaved(fns, n)))
            recorder.flush(10)
    finally:
        for c in clients:
            c.close()
    return rows


def main() -> None:
    """Run both measurements and print the Markdown report."""
    recorder = Recorder(redis_url=REDIS_URL, stream_prefix=PREFIX)
    noop = _NoopRecorder(redis_url=REDIS_URL, stream_prefix=PREFIX)
    proc, url = _start_fake()
    try:
        gc.collect()
        transport_rows = transport_level(recorder, noop)
        sdk_rows = sdk_level(recorder, noop, url)
        stats = recorder.stats()
    finally:
        proc.terminate()
        proc.wait(10)
        recorder.close()
        noop.close()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{PREFIX}:*"))
        if keys:
            client.delete(*keys)
        client.close()

    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}" for p in ("openai", "httpx2", "redis", "orjson")
    )
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print("# Tap overhead\n")
    print(f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"- Python {platform.python_version()}; {versions}")
    print(f"- records accepted by the real Recorder during the run: {stats.accepted}, "
          f"dropped: {sum(stats.dropped.values())}")  # fmt: skip
    print("- *tap only*: the tap with a Recorder whose `record()` drops the record;")
    print("  *tap + Recorder*: a real Recorder whose writer thread ships to Redis")
    print("  (its serialization runs in this process, on another thread).\n")
    print("## Transport level (in-memory inner transport)\n")
    print("| case | untapped µs | tap only µs | tap + Recorder µs | tap cost µs | "
          "per chunk µs |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    one = transport_rows[0][1]
    for case, (base, tap, full) in transport_rows:
        chunks = 300 if case.startswith("300") else 1
        per_chunk = ((tap - base) - (one[1] - one[0])) / (chunks - 1) if chunks > 1 else None
        cell = f"{per_chunk:.3f}" if per_chunk is not None else "-"
        print(f"| {case} | {base:.1f} | {tap:.1f} | {full:.1f} | {tap - base:.1f} | {cell} |")
    print("\n## SDK level (openai against the fake provider in its own process)\n")
    print("| case | untapped µs | tap only µs | tap + Recorder µs | ratio tap only | "
          "ratio tap + Recorder |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for case, (base, tap, full) in sdk_rows:
        print(f"| {case} | {base:.0f} | {tap:.0f} | {full:.0f} | {tap / base:.3f} | "
              f"{full / base:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
