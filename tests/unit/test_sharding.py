"""Shard choice, shard sets, cluster URLs and the settings that carry them."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from rawtap.shared import (
    ConfigError,
    ProducerSettings,
    StreamNames,
    WorkerSettings,
    load_settings,
    parse_shard_set,
    shard_for,
    split_cluster_url,
)
from tests.support.cluster import command_keys, parse_monitor_line


def test_a_session_always_maps_to_one_shard_and_sessions_spread() -> None:
    shards = [shard_for(f"user-{i}", seq, 8) for i in range(4000) for seq in (0, 1)]
    assert all(a == b for a, b in zip(shards[0::2], shards[1::2], strict=True))
    counts = Counter(shards[0::2])
    assert set(counts) == set(range(8))
    assert max(counts.values()) < 1.2 * 4000 / 8  # crc32 spreads evenly


def test_records_without_a_session_spread_by_seq() -> None:
    assert [shard_for(None, seq, 4) for seq in range(6)] == [0, 1, 2, 3, 0, 1]
    assert shard_for("anything", 5, 1) == 0


def test_the_shard_of_a_session_is_the_same_in_every_process() -> None:
    """Python's hash() is salted per process; the shard must not be."""
    code = "from rawtap.shared import shard_for; print(shard_for('user-42', 0, 16))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert runs == {str(shard_for("user-42", 0, 16))}


def test_stream_names_carry_one_hash_tag_per_shard() -> None:
    assert StreamNames("p").shards(3) == ["p:{0}", "p:{1}", "p:{2}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0-3", (0, 1, 2, 3)), ("5", (5,)), ("0,2,4-5", (0, 2, 4, 5)), (" 1 , 1-2 ", (1, 2))],
)
def test_shard_sets(text: str, expected: tuple[int, ...]) -> None:
    assert parse_shard_set(text, 8) == expected


@pytest.mark.parametrize("text", ["8", "3-1", "a", "", "-1", "0-8"])
def test_bad_shard_sets(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is checked in the settings test
        parse_shard_set(text, 8)


def test_worker_settings_read_a_subset_or_every_shard() -> None:
    assert WorkerSettings(shards=4).assigned_shards == (0, 1, 2, 3)
    assert WorkerSettings(shards=8, read_shards="2-3").assigned_shards == (2, 3)
    with pytest.raises(ConfigError, match=r"read_shards '0-4': shard 4 does not exist"):
        load_settings(WorkerSettings, shards=4, read_shards="0-4")
    with pytest.raises(ConfigError, match="shards: Input should be greater than or equal to 1"):
        load_settings(ProducerSettings, shards=0)


def test_the_shard_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWTAP_SHARDS", "8")
    monkeypatch.setenv("RAWTAP_READ_SHARDS", "4-7")
    assert load_settings(WorkerSettings).assigned_shards == (4, 5, 6, 7)
    monkeypatch.setenv("RAWTAP_SHARDS", "0")
    with pytest.raises(ConfigError, match="RAWTAP_SHARDS"):
        load_settings(ProducerSettings)


def test_cluster_urls() -> None:
    assert split_cluster_url("redis+cluster://u:pw@a:7000,b:7001,c/0") == (
        "redis://u:pw@a:7000/0",
        [("b", 7001), ("c", 6379)],
        True,
    )
    assert split_cluster_url("rediss+cluster://a:7000")[0] == "rediss://a:7000"
    assert ProducerSettings(redis_url="redis+cluster://a:7000").use_cluster
    assert ProducerSettings(cluster=True).use_cluster
    assert not ProducerSettings().use_cluster
    with pytest.raises(ConfigError, match="redis\\+cluster://"):
        load_settings(ProducerSettings, redis_url="http://a")


def test_the_command_log_parser_finds_the_keys_of_each_command() -> None:
    line = rb'1700000000.1 [0 127.0.0.1:5000] "XREADGROUP" "GROUP" "g" "c" "COUNT" "5" "STREAMS" "a:{1}" "b:{2}" ">" ">"'
    args = parse_monitor_line(line)
    assert command_keys(args) == [b"a:{1}", b"b:{2}"]
    escaped = parse_monitor_line(rb'1.0 [0 x] "XADD" "k:{0}" "*" "body" "\x00\"q\\"')
    assert escaped[-1] == b'\x00"q\\'
    assert command_keys(escaped) == [b"k:{0}"]
    assert command_keys([b"XINFO", b"GROUPS", b"k:{0}"]) == [b"k:{0}"]
    assert command_keys([b"PING"]) == []
