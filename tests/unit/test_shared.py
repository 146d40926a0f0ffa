"""The record schema, its stream-entry codec, ids and settings."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from rawtap.shared import (
    SCHEMA_VERSION,
    Chunk,
    CodecError,
    ConfigError,
    ProducerSettings,
    Record,
    StreamNames,
    WorkerSettings,
    decode_entry,
    encode_entry,
    load_settings,
    make_record_id,
    new_producer_id,
    record_id_time_ms,
)


def _record(**over: object) -> Record:
    fields: dict[str, object] = {
        "record_id": make_record_id(1_764_000_000_123_456_789, "ab" * 8, 7),
        "producer_id": "ab" * 8,
        "seq": 7,
        "provider": "openai",
        "started_at_ns": 1_764_000_000_000_000_000,
        "captured_at_ns": 1_764_000_000_123_456_789,
        "body": b"data: 1\n\ndata: 2\n\n",
        "chunks": [Chunk(5, 9), Chunk(9, 9)],
        "stream": True,
        "request_body": b"\x00\xff binary",
        "response_headers": [("X-A", "1"), ("x-a", "2"), ("Raw", "caf\xe9")],
        "metadata": {"nested": {"k": [1, 2]}},
    }
    fields.update(over)
    return Record.model_validate(fields)


def test_entry_round_trip_keeps_every_field_and_byte() -> None:
    record = _record()
    entry = encode_entry(record)
    assert entry[b"body"] == record.body  # bodies travel raw, not inside JSON
    assert entry[b"req"] == b"\x00\xff binary"
    assert b"binary" not in entry[b"env"]
    assert decode_entry(entry) == record
    assert decode_entry(entry).chunk_bytes() == [b"data: 1\n\n", b"data: 2\n\n"]


def test_record_ids_sort_by_time_and_are_unique_per_producer_and_seq() -> None:
    pid = new_producer_id()
    assert len(pid) == 16
    ids = [make_record_id(1_000_000 * ms, pid, seq) for seq, ms in enumerate([5, 5, 6, 70_000])]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    assert record_id_time_ms(ids[-1]) == 70_000
    assert make_record_id(0, pid, 1) != make_record_id(0, new_producer_id(), 1)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop(b"env"), "lacks field(s) env"),
        (lambda e: e.update({b"v": b"99"}), "schema version b'99' is not supported"),
        (lambda e: e.update({b"env": b"{not json"}), "not valid JSON"),
        (lambda e: e.update({b"env": b"[1,2]"}), "JSON list, not an object"),
        (lambda e: e.update({b"rid": b"other"}), "differs from the envelope"),
        (
            lambda e: e.update({b"env": orjson.dumps({**orjson.loads(e[b"env"]), "seq": -1})}),
            "seq: Input should be greater than or equal to 0",
        ),
        (
            lambda e: e.update({b"env": orjson.dumps({**orjson.loads(e[b"env"]), "bogus": 1})}),
            "bogus: Extra inputs are not permitted",
        ),
        (lambda e: e.update({b"body": b"short"}), "chunk sizes add up to 18 bytes"),
    ],
)
def test_bad_entries_raise_a_codec_error_saying_what_is_wrong(
    mutate: Callable[[dict[bytes, bytes]], object], message: str
) -> None:
    entry = encode_entry(_record())
    mutate(entry)
    with pytest.raises(CodecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_entry(entry)


def test_schema_version_is_stamped() -> None:
    assert encode_entry(_record())[b"v"] == str(SCHEMA_VERSION).encode()


def test_stream_names_carry_hash_tags() -> None:
    names = StreamNames("acme")
    assert names.shard(3) == "acme:{3}"
    assert names.dead_letters == "acme:{dead}"


def test_settings_come_from_code_over_environment_over_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAWTAP_MAX_MEMORY_MB", "12")
    monkeypatch.setenv("RAWTAP_PROVIDERS", "OpenAI, anthropic")
    monkeypatch.setenv("RAWTAP_ENABLED", "false")
    settings = load_settings(ProducerSettings, max_memory_mb=3)
    assert settings.max_memory_mb == 3
    assert settings.max_memory_bytes == 3 * 1024 * 1024
    assert settings.providers == frozenset({"openai", "anthropic"})
    assert settings.enabled is False
    assert load_settings(ProducerSettings).max_memory_mb == 12


def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWTAP_MAX_MEMORY_MB", "-1")
    with pytest.raises(ConfigError, match=r"RAWTAP_MAX_MEMORY_MB: Input should be greater than 0"):
        load_settings(ProducerSettings)
    monkeypatch.delenv("RAWTAP_MAX_MEMORY_MB")
    with pytest.raises(ConfigError, match=r"redis_url: Value error, must start with redis://"):
        load_settings(ProducerSettings, redis_url="http://x")
    monkeypatch.setenv("RAWTAP_BATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match=r"RAWTAP_BATCH_SIZE"):
        load_settings(WorkerSettings)


def test_worker_consumer_name_defaults_to_host_and_pid() -> None:
    import os
    import socket

    assert WorkerSettings().consumer == f"{socket.gethostname()}-{os.getpid()}"
