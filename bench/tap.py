"""Tap: what the capture tap adds per SDK call and per stream chunk.

Reuses ``bench/tap_overhead.py``'s pieces. Two levels, interleaved round by round:

* **transport level** (precise): one request through an in-memory inner transport
  that answers at once, untapped vs tapped (*tap only*: a Recorder whose
  ``record()`` drops; *tap + Recorder*: a real one shipping to Redis), for 1 and
  300 chunks. The per-call cost is tapped − untapped at 1 chunk; the per-chunk
  cost is the extra of 300 chunks over 1, divided by 299.
* **SDK level** (what an application sees): the real OpenAI SDK against the fake
  provider in its own process, tapped vs untapped, JSON call and 300-chunk stream.

The baselines are the untapped SDK's own times, measured in the same rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench._common import Figure, delete_keys, time_figure
from bench.tap_overhead import API_KEY, _Instant, _NoopRecorder, _request, _start_fake

_CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'


def _median_us(fn: Callable[[], Any], n: int) -> float:
    pc = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t = pc()
        fn()
        samples.append(pc() - t)
    return statistics.median(samples) / 1000


def run(redis_url: str, quick: bool, **_: Any) -> list[Figure]:
    """Per-round medians of the transport and SDK cases; figures on the added time."""
    from rawtap.producer import Recorder

    rounds = 3 if quick else 7
    n_one, n_many = (500, 50) if quick else (5_000, 500)
    n_json, n_stream = (30, 4) if quick else (300, 30)
    prefix = f"rawtap-bench-tap-{time.time_ns()}"
    spill = tempfile.TemporaryDirectory()
    recorder = Recorder(redis_url=redis_url, stream_prefix=prefix, spill_dir=spill.name)
    noop = _NoopRecorder(redis_url=redis_url, stream_prefix=prefix, spill_dir=spill.name)
    # Before importing openai: it rewrites the ``__module__`` of the httpx2 classes it
    # re-exports, and the tap then no longer recognizes a BaseTransport subclass.
    transports = {
        n: [
            inner,
            noop.transport(inner, provider="openai"),
            recorder.transport(inner, provider="openai"),
        ]
        for n, inner in ((1, _Instant([_CHUNK])), (300, _Instant([_CHUNK] * 300)))
    }
    import openai

    proc, url = _start_fake()
    request = _request()
    messages = [{"role": "user", "content": "Say something."}]
    clients = [
        openai.OpenAI(api_key=API_KEY, base_url=url + "/v1"),
        noop.instrument(openai.OpenAI(api_key=API_KEY, base_url=url + "/v1")),
        recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=url + "/v1")),
    ]

    def once(transport: Any) -> None:
        response = transport.handle_request(request)
        for _ in response.stream:
            pass
        response.stream.close()

    def json_call(client: Any) -> None:
        client.chat.completions.create(model="bench", messages=messages)

    def stream_call(client: Any) -> None:
        for _ in client.chat.completions.create(
            model="fake-long-300", messages=messages, stream=True
        ):
            pass

    # per round: [untapped, tap only, tap + Recorder] for each case
    cases: dict[str, list[list[float]]] = {k: [] for k in ("t1", "t300", "json", "stream")}
    try:
        for _ in range(3):
            for c in clients:
                json_call(c)
                stream_call(c)
        for _ in range(200):
            for ts in transports.values():
                for t in ts:
                    once(t)
        for r in range(rounds):
            order = [0, 1, 2] if r % 2 == 0 else [2, 1, 0]
            for key, n, fn in (
                ("t1", n_one, lambda i: once(transports[1][i])),
                ("t300", n_many, lambda i: once(transports[300][i])),
                ("json", n_json, lambda i: json_call(clients[i])),
                ("stream", n_stream, lambda i: stream_call(clients[i])),
            ):
                row = [0.0, 0.0, 0.0]
                for i in order:
                    row[i] = _median_us(lambda i=i, fn=fn: fn(i), n)  # type: ignore[misc]
                cases[key].append(row)
            recorder.flush(10)
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        proc.wait(10)
        recorder.close()
        noop.close()
        spill.cleanup()
        delete_keys(redis_url, prefix)

    t1, t300 = cases["t1"], cases["t300"]
    per_call = [r[1] - r[0] for r in t1]
    per_call_rec = [r[2] - r[0] for r in t1]
    per_chunk = [((b[1] - b[0]) - (a[1] - a[0])) / 299 for a, b in zip(t1, t300, strict=True)]
    sdk_json = [r[0] for r in cases["json"]]
    sdk_chunk = [r[0] / 300 for r in cases["stream"]]
    extra = {"rounds_us": cases}
    return [
        time_figure(
            "tap", "tap cost per call (transport level, tap only)", per_call, sdk_json,
            "untapped SDK JSON call", goal=15.0,
            note=f"with a real Recorder: {statistics.median(per_call_rec):.1f} µs",
            extra=extra,
        ),
        time_figure(
            "tap", "tap cost per stream chunk (transport level)", per_chunk, sdk_chunk,
            "untapped SDK, per chunk of a 300-chunk stream", goal=0.3,
        ),
        time_figure(
            "tap", "SDK JSON call, tap + Recorder", [r[2] for r in cases["json"]], sdk_json,
            "untapped SDK JSON call",
            note=f"tap only: {statistics.median(r[1] for r in cases['json']):.0f} µs",
        ),
        time_figure(
            "tap", "SDK 300-chunk stream, tap + Recorder", [r[2] for r in cases["stream"]],
            [r[0] for r in cases["stream"]], "untapped SDK stream",
            note=f"tap only: {statistics.median(r[1] for r in cases['stream']):.0f} µs",
        ),
    ]  # fmt: skip
