"""rawtap.shared's small helpers both packages use: LogOnce, reply_text, display_url."""

from __future__ import annotations

import logging

import pytest

from rawtap.shared import LogOnce, display_url, reply_text


def test_log_once_logs_a_key_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(logging.getLogger("rawtap.test.once"), interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="rawtap.test.once"):
        for n in range(3):
            once.warning("outage", "redis down (%d)", n)
        once.warning("other", "another kind")
    assert [r.getMessage() for r in caplog.records] == ["redis down (0)", "another kind"]


def test_log_once_logs_again_after_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(logging.getLogger("rawtap.test.again"), interval_s=0.0)
    with caplog.at_level(logging.WARNING, logger="rawtap.test.again"):
        once.warning("k", "first")
        once.warning("k", "second")
    assert [r.getMessage() for r in caplog.records] == ["first", "second"]


def test_log_once_adds_the_exception_in_hand(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(logging.getLogger("rawtap.test.exc"))
    with caplog.at_level(logging.WARNING, logger="rawtap.test.exc"):
        try:
            int("boom")
        except ValueError:
            once.warning("k", "failed", exc_info=True)
    (record,) = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"1764000000000-0", "1764000000000-0"),
        ("rawtap-workers", "rawtap-workers"),
        (None, ""),
        (7, "7"),
        (b"bad \xff byte", "bad \ufffd byte"),
    ],
)
def test_reply_text_reads_any_redis_reply_as_text(value: object, text: str) -> None:
    assert reply_text(value) == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://root:pw@db/x", "postgresql://root:***@db/x"),
        ("rediss://:pw@h1:6379,h2:6379/0", "rediss://:***@h1:6379,h2:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://db/x?user=u&password=pw", "postgresql://db/x?user=u&password=***"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)
def test_display_url_hides_passwords(url: str, shown: str) -> None:
    assert display_url(url) == shown
