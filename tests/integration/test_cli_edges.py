"""CLI edges: read commands never create stores, one-line errors, help, safe output, Redis wait."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.pipeline import rawtap_command
from tests.support.services import RedisServer, free_port


def test_stats_and_list_on_a_missing_store_create_nothing(
    tmp_path: Path, redis_url: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    typo = tmp_path / "typo.db"
    for args in (("stats", "--redis-url", redis_url), ("list",), ("show", "x"), ("export",)):
        result = run_cli(capsysbinary, *args, "--sink", f"sqlite:///{typo}")
        assert result.code != 0, args
        assert result.err.count("\n") == 1, result.err
        assert "no SQLite store" in result.err, result.err
        assert not typo.exists(), args


def test_stats_json_names_redis_masked_and_exit_codes(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    result = run_cli(capsysbinary, "stats", "--json", "--redis-url", url)
    assert result.code == 3
    doc = json.loads(result.out)
    assert doc["status"] == "redis_unreachable"
    assert "s3cret" not in result.out.decode()
    assert doc["redis"] == url.replace("s3cret", "***")


def test_usage_errors_are_one_line_with_the_allowed_values(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    cases = {
        ("worker", "--log-level", "verbose"): "debug, info, warning, error",
        ("export", "--format", "csv"): "jsonl, parquet",
        ("replay", "--match", "fuzzy"): "request, path, sequence",
        ("migrate", "--partition", "week"): "none, day",
        ("list", "--end-state", "weird"): "complete",
        ("list", "--limit", "x"): "--limit",
    }
    for args, expected in cases.items():
        result = run_cli(capsysbinary, *args)
        assert result.code == 2, (args, result.err)
        assert result.err.count("\n") == 1, result.err
        assert expected in result.err, result.err
        assert "╭" not in result.err


def test_every_help_shows_defaults_and_env_and_no_bool_metavar(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    commands = [(), ("worker",), ("stats",), ("demo",), ("list",), ("show",), ("export",),
                ("purge",), ("rederive",), ("migrate",), ("replay",),
                ("dead-letters", "list"), ("dead-letters", "show"),
                ("dead-letters", "requeue")]  # fmt: skip
    for cmd in commands:
        result = run_cli(capsysbinary, *cmd, "--help")
        text = result.out.decode()
        assert result.code == 0, cmd
        assert "<bool>" not in text, cmd
        assert "╭" not in text, cmd
        options = [ln for ln in text.splitlines() if ln.startswith("  --")]
        joined = " ".join(text.split("Options:", 1)[-1].split())
        for line in options:
            name = line.split()[0].rstrip(",")
            if name == "--help" or name not in joined:
                continue
            # each option's help (possibly wrapped) carries a default
            part = re.split(r"(?<!/) --[a-z]", joined.split(name, 1)[1], maxsplit=1)[0]
            assert "default:" in part, (cmd, name)
    worker = run_cli(capsysbinary, "worker", "--help").out.decode()
    for env in ("RAWTAP_REDIS_URL", "RAWTAP_SINK_URL", "RAWTAP_LOG_FORMAT", "RAWTAP_BATCH_SIZE"):
        assert env in worker


def test_worker_started_before_redis_waits_then_runs_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "RAWTAP_SINK_URL": f"sqlite:///{tmp_path}/w.db"}
    proc = subprocess.Popen(
        rawtap_command("worker", "--redis-url", f"redis://127.0.0.1:{port}/0"),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while not any("waiting for it" in ln for ln in lines):
        line = proc.stderr.readline()
        assert line, f"worker exited {proc.wait()}: {lines}"
        lines.append(line)
    server = RedisServer(port, str(tmp_path)).start()
    try:
        deadline = time.monotonic() + 60
        while not any("answers again" in ln for ln in lines):
            assert time.monotonic() < deadline, lines
            lines.append(proc.stderr.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        waits = [ln for ln in lines if "waiting for it" in ln]
        assert len(waits) == 1, lines
    finally:
        proc.kill()
        proc.stderr.close()
        server.kill()


def test_sigterm_while_waiting_for_redis_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "RAWTAP_SINK_URL": f"sqlite:///{tmp_path}/w.db"}
    proc = subprocess.Popen(
        rawtap_command("worker", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    while "waiting for it" not in (line := proc.stderr.readline()):
        assert line, proc.wait()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    proc.stderr.close()


def test_json_logs_are_one_object_per_line_with_secrets_masked(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RAWTAP_SINK_URL": f"sqlite:///{tmp_path}/w.db",
        "RAWTAP_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        rawtap_command("worker", "--redis-url", f"redis://:pw123@127.0.0.1:{free_port()}/0"),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while "waiting for it" not in line:
        assert line, proc.wait()
        line = proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(30) == 0
    proc.stderr.close()
    for ln in [line, *rest.splitlines()]:
        doc = json.loads(ln)
        assert {"time", "level", "logger", "message"} <= doc.keys()
        assert "pw123" not in ln


def test_stored_control_characters_reach_the_terminal_escaped(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    from rawtap.consumer import derive, open_sink
    from tests.support.records import make_record

    url = f"sqlite:///{tmp_path / 'odd.db'}"
    hostile = "sess\x1b[2J\x1b]0;owned\x07\u202etxt\r\x7f"
    record = make_record(
        "openai",
        b'{"id":"x","object":"chat.completion","model":"gpt\\u001b[31m","choices":[]}',
        url="https://api.openai.com/v1/chat/completions",
        session_id=hostile,
        service="svc\x1b[1m",
    )
    with open_sink(url) as store:
        store.write([record], time.time_ns(), [derive(record)])
    for args in (("list",), ("show", record.record_id), ("list", "--session", hostile)):
        result = run_cli(capsysbinary, *args, "--sink", url)
        assert result.code == 0, (args, result.err)
        for byte in (b"\x1b", b"\x07", b"\r", b"\x7f", "\u202e".encode()):
            assert byte not in result.out, (args, byte, result.out)
        assert b"sess" in result.out, args  # the value is shown, escaped, not dropped


def test_demo_replaces_only_its_own_store(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    import sqlite3

    db = tmp_path / "demo.db"
    rows = []
    for _ in range(2):
        result = subprocess.run(
            [*rawtap_command(), "demo", "--count", "8", "--sink", f"sqlite:///{db}"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        reported = re.search(r"byte-exact against what the provider wrote: (\d+)/", result.stdout)
        assert reported is not None, result.stdout
        with sqlite3.connect(db) as conn:
            rows.append(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        assert rows[-1] == int(reported.group(1))  # the store holds this run, as reported
    assert rows[0] == rows[1]
    other = tmp_path / "mine.db"
    other.write_bytes(b"not a demo store")
    result = subprocess.run(
        [*rawtap_command(), "demo", "--count", "8", "--sink", f"sqlite:///{other}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "not a demo store" in result.stderr
    assert other.read_bytes() == b"not a demo store"


def test_stats_exit_codes_are_the_documented_table() -> None:
    from rawtap.consumer.read import STATUS, StatsExit
    from tests.support.chaos import ROOT

    doc = (ROOT / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| (\d) \| `(\w+)` \|", doc, flags=re.MULTILINE))
    assert rows == {str(int(code)): STATUS[code] for code in StatsExit}
