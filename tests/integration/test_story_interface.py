"""The story's interface: ``ResponseRecorder.record_response`` and ``ResponseRecorderConfig``."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import redis

from rawtap.producer import Recorder, ResponseRecorder, ResponseRecorderConfig
from rawtap.shared import ConfigError, ProducerSettings, StreamNames, decode_entry, is_report
from tests.support.services import free_port

BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}]}'


def test_the_story_names_are_todays_objects() -> None:
    assert ResponseRecorder is Recorder
    assert ResponseRecorderConfig is ProducerSettings


def test_story_code_records_through_real_redis(
    redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    config = ResponseRecorderConfig(
        enabled=True,
        max_memory_mb=8,
        buffer_size=500,
        providers=["openai", "anthropic"],
        redis_url=redis_url,
        stream_prefix=stream_prefix,
    )
    assert (config.buffer_size, config.max_buffered_records) == (500, 500)
    assert config.max_memory_bytes == 8 * 1024 * 1024
    recorder = ResponseRecorder(config)

    async def story() -> list[bool]:
        return [
            await recorder.record_response(
                "openai", BODY, {"endpoint": "/v1/chat/completions"}, "user-42"
            ),
            await recorder.record_response("gemini", b"{}", {}, "user-42"),  # not in providers
        ]

    assert asyncio.run(story()) == [True, False]
    assert recorder.close(10)
    entries = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        redis_client.xrange(StreamNames(stream_prefix).shard(0)),
    )
    records = [decode_entry(f) for _, f in entries if not is_report(f)]
    assert len(records) == 1
    record = records[0]
    assert (record.provider, record.session_id, record.body) == ("openai", "user-42", BODY)
    assert record.metadata["endpoint"] == "/v1/chat/completions"


def test_disabled_story_config_records_nothing() -> None:
    recorder = ResponseRecorder(ResponseRecorderConfig(enabled=False, buffer_size=10))
    assert asyncio.run(recorder.record_response("openai", BODY, {}, "s")) is False
    assert recorder.stats().accepted == 0
    recorder.close(0)


def _refused_of(offered: int, **settings: Any) -> int:
    """Records refused for a full buffer when Redis refuses connections and nothing spills."""
    recorder = Recorder(redis_url=f"redis://127.0.0.1:{free_port()}/0", spill_dir="", **settings)
    try:
        for _ in range(offered):
            recorder.record("openai", b"x")
        stats = recorder.stats()
        assert stats.accepted + stats.dropped.get("buffer_full", 0) == offered
        return stats.dropped.get("buffer_full", 0)
    finally:
        recorder.close(0)


def test_buffer_size_bounds_the_buffer_as_max_buffered_records_does() -> None:
    # The writer takes at most a batch or two off the buffer while it retries; the rest waits.
    assert _refused_of(2000) == 0  # the default bound (100 000) holds them all
    assert _refused_of(2000, buffer_size=5) > 1000
    assert _refused_of(2000, max_buffered_records=5) > 1000


def test_recorder_takes_buffer_size_as_the_issue_wrote_it() -> None:
    recorder = Recorder(buffer_size=1000)
    assert recorder.settings.max_buffered_records == 1000
    recorder.close(0)


def test_buffer_size_in_code_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWTAP_MAX_BUFFERED_RECORDS", "9")
    assert ResponseRecorderConfig().buffer_size == 9
    assert ResponseRecorderConfig(buffer_size=3).max_buffered_records == 3


def test_bad_buffer_size_is_one_clear_line_naming_what_was_written() -> None:
    with pytest.raises(ConfigError, match=r"^invalid setting buffer_size: .*greater than 0"):
        Recorder(buffer_size=0)
    with pytest.raises(ConfigError, match="another name for max_buffered_records"):
        Recorder(buffer_size=10, max_buffered_records=20)
