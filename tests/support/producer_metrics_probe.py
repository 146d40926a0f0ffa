"""Run as a process: Recorders in a host that configures an OTel SDK, then print the metrics.

``python -m tests.support.producer_metrics_probe REDIS_URL PREFIX SPILL_DIR`` prints one
JSON object: the collected metric points and the recorders' ``stats()``. A
process of its own because an application sets the global MeterProvider once.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from rawtap.producer import Recorder


def main(redis_url: str, prefix: str, spill: str) -> None:
    # Constructed before the host sets its SDK: the API's proxies must forward later.
    sent = Recorder(redis_url=redis_url, stream_prefix=prefix, spill_dir=spill)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    lost = Recorder(
        redis_url="redis://127.0.0.1:9/0",
        stream_prefix=prefix,
        spill_dir="",
        providers="openai",
        connect_timeout_s=0.2,
        socket_timeout_s=0.2,
    )
    for i in range(7):
        sent.record("openai", b'{"n": %d}' % i, {"endpoint": "/v1/chat/completions"}, "s")
    for _ in range(3):
        lost.record("openai", b"{}")
    for _ in range(2):
        lost.record("anthropic", b"{}")  # not an allowed provider: skipped
    assert sent.flush(10)
    lost.close(0.3)
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        {
            "scope": sm.scope.name,
            "name": m.name,
            "unit": m.unit,
            "attributes": dict(p.attributes or {}),
            "value": getattr(p, "value", None),
            "count": getattr(p, "count", None),
        }
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    ]
    stats = [sent.stats(), lost.stats()]
    print(
        json.dumps(
            {
                "points": points,
                "accepted": sum(s.accepted for s in stats),
                "sent": sum(s.sent for s in stats),
                "skipped": sum(s.skipped for s in stats),
                "dropped": lost.stats().dropped,
            }
        )
    )
    sent.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
