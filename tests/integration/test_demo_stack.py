"""What ``docker compose up`` shows in Jaeger, without Docker: the same processes, locally.

The demo service of deploy/demo/service.py runs as a process against the fake
provider, the test Redis and an OTLP receiver, configured by the variables
docker-compose.yml gives it; a ``rawtap worker`` process exports to the same
receiver. One trace must then hold the demo's ``GET /answer`` SERVER span and,
as its children, the CLIENT spans the worker made from the records, under the
demo's service name; the demo's producer self-metrics arrive too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rawtap.consumer import SqliteSink
from rawtap.tools.fake_provider import FakeProvider
from tests.support.otlp import OtlpReceiver, attributes
from tests.support.pipeline import PROCESS_EXIT_S, spawn_worker, wait_until

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    with SqliteSink(db) as sink:
        return sink.count()


def test_demo_request_and_its_llm_calls_form_one_trace(
    redis_url: str, stream_prefix: str, tmp_path: Path
) -> None:
    db = tmp_path / "demo.db"
    with FakeProvider() as fake, OtlpReceiver() as receiver:
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }
        demo = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "demo" / "service.py")],
            env={
                **os.environ,
                **otel,
                "RAWTAP_REDIS_URL": redis_url,
                "RAWTAP_STREAM_PREFIX": stream_prefix,
                "RAWTAP_SPILL_DIR": str(tmp_path / "spill"),
                "FAKE_PROVIDER_URL": fake.url,
                "DEMO_ITERATIONS": "1",
                "DEMO_INTERVAL_S": "0",
                "OTEL_SERVICE_NAME": "demo-service",
            },
            capture_output=True,
            text=True,
            timeout=PROCESS_EXIT_S,
            check=False,
        )
        assert demo.returncode == 0, demo.stderr
        assert "handled 1 requests" in demo.stderr
        worker = spawn_worker(
            {
                "RAWTAP_REDIS_URL": redis_url,
                "RAWTAP_STREAM_PREFIX": stream_prefix,
                "RAWTAP_SINK_URL": f"sqlite:///{db}",
                "RAWTAP_CONSUMER": "worker-1",
                "RAWTAP_BLOCK_MS": "100",
                **otel,
            }
        )
        try:
            wait_until(lambda: _stored(db) == 4, 30, "the demo's 4 calls stored")
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=PROCESS_EXIT_S)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, stderr
        spans = list(receiver.spans())
        metrics = receiver.metric_names()

    (server,) = [s for res, s in spans if s.name == "GET /answer"]
    clients = [(res, s) for res, s in spans if "rawtap.record_id" in attributes(s.attributes)]
    assert len(clients) == 4
    # An SDK that traces itself (anthropic does, once an SDK is configured) puts its own
    # span between the request and the call: rawtap's span is then that span's child.
    in_request = {server.span_id} | {
        s.span_id for _, s in spans if s.parent_span_id == server.span_id
    }
    for resource, span in clients:
        assert span.kind == span.SPAN_KIND_CLIENT
        assert span.trace_id == server.trace_id
        assert span.parent_span_id in in_request
        assert resource["service.name"] == "demo-service"
        assert span.start_time_unix_nano >= server.start_time_unix_nano
        assert span.end_time_unix_nano <= server.end_time_unix_nano
    names = sorted(s.name for _, s in clients)
    assert names == [
        "chat claude-sonnet-4",
        "chat fake-long-30",
        "chat gpt-4o-mini",
        "generate_content gemini-2.5-flash",
    ]
    usage = {attributes(s.attributes)["gen_ai.usage.output_tokens"] for _, s in clients}
    assert 30 in usage  # fake-long-30: thirty words, thirty tokens
    assert {"rawtap.producer.records.accepted", "rawtap.producer.send.duration"} <= metrics
