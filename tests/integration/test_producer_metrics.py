"""The producer's self-metrics through opentelemetry-api, in a host that configured an SDK."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from rawtap.producer import Recorder, _metrics
from tests.support.pipeline import PROCESS_EXIT_S

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def _probe(redis_url: str, prefix: str, spill: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.producer_metrics_probe",
            redis_url,
            prefix,
            str(spill),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_EXIT_S,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _value(result: dict[str, Any], name: str, **attributes: Any) -> Any:
    found = [
        p
        for p in result["points"]
        if p["name"] == name and all(p["attributes"].get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, (name, attributes, found)
    return found[0]


def test_self_metrics_equal_the_recorders_stats(
    redis_url: str, stream_prefix: str, tmp_path: Path
) -> None:
    result = _probe(redis_url, stream_prefix, tmp_path / "spill")
    assert result["accepted"] == 10
    assert result["sent"] == 7
    assert result["skipped"] == 2
    assert result["dropped"] == {"unsent_at_close": 3}
    assert {p["scope"] for p in result["points"]} == {"rawtap.producer"}
    assert _value(result, "rawtap.producer.records.accepted")["value"] == 10
    assert _value(result, "rawtap.producer.records.sent")["value"] == 7
    assert _value(result, "rawtap.producer.records.skipped")["value"] == 2
    dropped = _value(
        result, "rawtap.producer.records.dropped", **{"rawtap.reason": "unsent_at_close"}
    )
    assert dropped["value"] == 3
    assert _value(result, "rawtap.producer.records.spilled")["value"] == 0
    assert _value(result, "rawtap.producer.send.failures")["value"] >= 1
    assert _value(result, "rawtap.producer.buffer.usage")["value"] == 0
    assert _value(result, "rawtap.producer.buffer.usage")["unit"] == "By"
    assert _value(result, "rawtap.producer.buffer.records")["value"] == 0
    assert _value(result, "rawtap.producer.journal.usage")["value"] == 0
    assert _value(result, "rawtap.producer.backpressured")["value"] == 0
    assert _value(result, "rawtap.producer.send.duration")["count"] >= 1


def test_record_never_touches_opentelemetry(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, stream_prefix: str
) -> None:
    """Nothing in _metrics runs on record()'s path: registration at construction, the send
    duration on the writer thread; the rest is observed when the host's reader collects."""
    calls: list[tuple[str, str]] = []

    def register(recorder: object) -> None:
        calls.append(("register", threading.current_thread().name))

    def send_duration(seconds: float) -> None:
        calls.append(("send", threading.current_thread().name))

    monkeypatch.setattr(_metrics, "register", register)
    monkeypatch.setattr(_metrics, "send_duration", send_duration)
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    assert calls == [("register", threading.current_thread().name)]
    calls.clear()
    for _ in range(100):
        recorder.record("openai", b"{}")
    assert recorder.flush(10)
    recorder.close()
    assert calls
    assert set(calls) == {("send", "rawtap-writer")}
