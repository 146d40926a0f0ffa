"""Recorder → Redis → Worker → each store: derived fields persisted, failures counted, retention."""

from __future__ import annotations

import random
import time
from typing import Any

from rawtap.consumer import RecordQuery, Worker, open_sink
from rawtap.producer import Recorder
from tests.support.pipeline import drain, wait_until, worker_thread
from tests.support.records import make_record
from tests.support.synthetic import SyntheticResponse, anthropic, gemini, openai

DAY = 86_400 * 1_000_000_000


def test_worker_derives_and_applies_retention(
    redis_url: str, stream_prefix: str, sink_url: str
) -> None:
    rng = random.Random(11)
    replies = [openai(rng, False), anthropic(rng, True), gemini(rng, True)]
    with open_sink(sink_url) as store:
        old = make_record(started_at_ns=time.time_ns() - 3 * DAY)
        store.write([old], 1)
        worker = Worker(
            redis_url=redis_url,
            stream_prefix=stream_prefix,
            sink_url=sink_url,
            consumer="w-store",
            block_ms=50,
            retention="2d",
            sink=store,
        )
        recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
        with worker_thread(worker):
            for reply in replies:
                details: dict[str, Any] = {"chunks": reply.chunks} if reply.stream else {}
                recorder.record(
                    reply.provider,
                    reply.body if not reply.stream else None,
                    {"model": reply.model},
                    "sess-w",
                    status=200,
                    url=reply.url,
                    request_body=reply.request_body,
                    stream=reply.stream,
                    **details,
                )
            recorder.record("openai", b"{not json", None, "sess-w", status=200,
                            url="https://api.openai.com/v1/chat/completions")  # fmt: skip
            drain(store, recorder.producer_id, 4)
            wait_until(lambda: worker.stats.purged == 1, what="retention to run")
        recorder.close()
        assert store.get(old.record_id) is None  # retention removed the 3-day-old record
        assert worker.stats.derive_failures == 1
        stored = sorted(
            store.iter_records(RecordQuery(producer_id=recorder.producer_id)),
            key=lambda s: s.record.seq,
        )
        for reply, s in zip(replies, stored, strict=False):
            d = s.derived
            assert d is not None
            assert d.parse_error is None
            assert d.model == reply.model
            expected_usage = orjson_usage(reply)
            assert (d.input_tokens, d.output_tokens) == expected_usage
            assert d.text
        broken = stored[3].derived
        assert broken is not None
        assert broken.parse_error is not None
        assert stored[3].record.body == b"{not json"  # the raw record is intact


def orjson_usage(reply: SyntheticResponse) -> tuple[int, int]:
    """The token counts the synthetic reply carries, read straight from its payload."""
    import orjson

    body = reply.body or reply.chunks[-1 if reply.provider != "openai" else -2]
    if reply.provider == "anthropic":
        events = [orjson.loads(c.split(b"data: ", 1)[1]) for c in reply.chunks]
        start = events[0]["message"]["usage"]["input_tokens"]
        out = next(e for e in events if e["type"] == "message_delta")["usage"]["output_tokens"]
        return start, out
    doc = orjson.loads(body.split(b"data: ", 1)[1] if body.startswith(b"data: ") else body)
    if reply.provider == "gemini":
        return doc["usageMetadata"]["promptTokenCount"], doc["usageMetadata"][
            "candidatesTokenCount"
        ]
    return doc["usage"]["prompt_tokens"], doc["usage"]["completion_tokens"]
