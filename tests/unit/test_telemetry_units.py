"""Telemetry's tables stay in step with what the worker hands it."""

from dataclasses import fields

from rawtap.consumer.telemetry._metrics import COUNTERS
from rawtap.consumer.worker import WorkerStats


def test_every_worker_counter_has_an_observable_counter() -> None:
    assert set(COUNTERS) == {f.name for f in fields(WorkerStats)}
