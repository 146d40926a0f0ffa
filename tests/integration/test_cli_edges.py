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
