"""The worker's collector tuning is shared by the process and leaves the host's settings alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rawtap.consumer.worker._gc import GEN0_THRESHOLD, tuned_collector


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*before)
    if enabled:
        gc.enable()


def test_nested_runs_restore_what_the_first_found_only_when_the_last_ends() -> None:
    gc.set_threshold(700, 10, 10)
    with tuned_collector():
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
        with tuned_collector():
            pass
        assert gc.get_threshold()[0] == GEN0_THRESHOLD  # the other worker still runs
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_runs_in_any_order_end_with_the_process_settings() -> None:
    gc.set_threshold(700, 10, 10)
    a, b = tuned_collector(), tuned_collector()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)  # A stops first: B keeps the tuning
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    b.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_disabled_or_higher_collector_is_left_alone_and_nothing_is_unfrozen() -> None:
    gc.set_threshold(100_000, 10, 10)
    with tuned_collector():
        assert gc.get_threshold() == (100_000, 10, 10)
    gc.set_threshold(700, 10, 10)
    gc.disable()
    with tuned_collector():
        assert gc.get_threshold() == (700, 10, 10)
        assert not gc.isenabled()
    gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    with tuned_collector():
        pass
    assert gc.get_freeze_count() >= frozen  # the host's own freeze stays
