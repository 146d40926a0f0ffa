"""The capture tap with the real SDKs against the fake provider.

For each SDK x sync/async x JSON/stream: the application gets exactly what it
got without the tap (results and exceptions), and each physical attempt is
one record whose bytes and headers are the ones the fake provider wrote.
The SDK versions are in every test id (see ``tests.support.tap.SDK_VERSIONS``).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from rawtap.producer import Recorder
from rawtap.shared import BodyForm, EndState, Record
from rawtap.tools.fake_provider import Exchange, FakeProvider
from tests.support.tap import (
    API_KEY,
    DRIVERS,
    Captured,
    Driver,
    exchanges,
    run_async,
)

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(slow_ms=50) as provider:
        yield provider


@pytest.fixture
def captured(redis_url: str, stream_prefix: str, redis_client: Any) -> Iterator[Captured]:
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    yield Captured(recorder, redis_client, stream_prefix)
    recorder.close()


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeProvider) -> None:
    fake.clear()


def _assert_record_matches(record: Record, ex: Exchange, driver: Driver, *, stream: bool) -> None:
    assert record.provider == driver.provider
    assert record.body_form is BodyForm.WIRE
    assert record.status == ex.status
    assert record.body == ex.body  # the entity as written, before content decoding
    assert record.response_headers == ex.headers  # case, order and duplicates
    assert record.request_body == ex.request.body
    assert record.method == ex.request.method
    assert record.url is not None
    assert record.url.endswith(ex.request.target)
    assert record.stream is stream
    assert sum(c.size for c in record.chunks) == len(record.body)
    offsets = [c.offset_ns for c in record.chunks]
    assert offsets == sorted(offsets)
    assert record.first_byte_ns is not None
    assert record.ended_ns is not None
    assert record.ended_ns >= record.first_byte_ns
    assert record.call_id
    sent = {k.lower(): v for k, v in ex.request.headers}
    recorded = {k.lower(): v for k, v in record.request_headers}
    assert {k for k in sent if k.startswith("x-stainless")} <= set(recorded)
    for name in ("authorization", "x-api-key", "x-goog-api-key"):
        if name in recorded:
            assert API_KEY not in recorded[name]
            assert "[REDACTED]" in recorded[name]


def _override(driver: Driver) -> str | None:
    # The fake provider's host is 127.0.0.1: OpenRouter cannot be inferred from it.
    return "openrouter" if driver.name == "openrouter" else None


def _calls(driver: Driver, fake: FakeProvider, model: str, stream: bool, is_async: bool,
           tapped_by: Recorder | None, **make: Any) -> Any:  # fmt: skip
    if is_async:

        async def go() -> Any:
            client = driver.make_async(fake, **make)
            if tapped_by is not None:
                assert tapped_by.instrument(client, provider=_override(driver)) is client
            try:
                return await driver.arun(client, model, stream)
            finally:
                await driver.aclose(client)

        return run_async(go)
    client = driver.make(fake, **make)
    if tapped_by is not None:
        assert tapped_by.instrument(client, provider=_override(driver)) is client
    try:
        return driver.run(client, model, stream)
    finally:
        driver.close(client)


MATRIX = [
    pytest.param(d, is_async, stream, id=f"{d.id}-{'async' if is_async else 'sync'}-"
                 f"{'stream' if stream else 'json'}")
    for d in DRIVERS
    for is_async in (False, True)
    for stream in (False, True)
]  # fmt: skip


@pytest.mark.parametrize(("driver", "is_async", "stream"), MATRIX)
def test_same_result_and_one_exact_record_per_call(
    driver: Driver, is_async: bool, stream: bool, fake: FakeProvider, captured: Captured
) -> None:
    model = "fake-normal"
    plain = _calls(driver, fake, model, stream, is_async, None)
    fake.clear()
    tapped = _calls(driver, fake, model, stream, is_async, captured.recorder)
    assert tapped == plain
    assert plain[0] != "raised", plain

    (ex,) = exchanges(fake, driver)
    (record,) = captured.records(1)
    _assert_record_matches(record, ex, driver, stream=stream)
    assert record.end_state is EndState.COMPLETE
    if stream:
        # HTTP/1.1 chunked: each chunk the server wrote arrives as one piece.
        assert record.chunk_bytes() == ex.chunks


@pytest.mark.parametrize(("driver", "is_async", "stream"), MATRIX)
def test_same_exception_and_error_body_recorded(
    driver: Driver, is_async: bool, stream: bool, fake: FakeProvider, captured: Captured
) -> None:
    model = "fake-400"
    make = {} if driver.sdk == "google-genai" else {"max_retries": 0}
    plain = _calls(driver, fake, model, stream, is_async, None, **make)
    fake.clear()
    tapped = _calls(driver, fake, model, stream, is_async, captured.recorder, **make)
    assert plain[0] == "raised"
    assert tapped == plain

    (ex,) = exchanges(fake, driver)
    (record,) = captured.records(1)
    assert ex.status == 400
    _assert_record_matches(record, ex, driver, stream=False)
    assert record.body  # the SDK read it; so did the tap
    assert record.end_state is EndState.COMPLETE


@pytest.mark.parametrize("driver", DRIVERS, ids=[d.id for d in DRIVERS])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_retried_stream_records_every_attempt_with_its_error_body(
    driver: Driver, is_async: bool, fake: FakeProvider, captured: Captured
) -> None:
    """CAPTURE.md pitfalls 2 and 7: SDKs close retried error bodies unread."""
    make: dict[str, Any] = {}
    if driver.sdk == "google-genai":
        from google.genai import types

        make["retry_options"] = types.HttpRetryOptions(
            attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0
        )
    model = "fake-429-then-200"
    plain = _calls(driver, fake, model, True, is_async, None, **make)
    fake.clear()
    tapped = _calls(driver, fake, model, True, is_async, captured.recorder, **make)
    assert tapped == plain
    assert plain[0] != "raised", plain

    first, second = exchanges(fake, driver)
    failed, ok = captured.records(2)
    assert (first.status, second.status) == (429, 200)
    assert failed.status == 429
    assert failed.body == first.body != b""
    assert failed.end_state is EndState.COMPLETE
    assert ok.body == second.body
    assert ok.end_state is EndState.COMPLETE
    assert failed.call_id == ok.call_id  # one logical call
    assert (failed.attempt, ok.attempt) == (0, 1)


def test_each_call_gets_its_own_call_id(fake: FakeProvider, captured: Captured) -> None:
    driver = DRIVERS[0]
    client = driver.make(fake)
    captured.recorder.instrument(client)
    try:
        driver.run(client, "fake-normal", False)
        driver.run(client, "fake-normal", True)
    finally:
        client.close()
    a, b = captured.records(2)
    assert a.call_id != b.call_id
    assert a.attempt == b.attempt == 0


def test_gzip_body_is_stored_compressed_and_decodes(fake: FakeProvider, captured: Captured) -> None:
    """CAPTURE.md pitfall 3."""
    driver = DRIVERS[0]
    plain = _calls(driver, fake, "fake-gzip", True, False, None)
    fake.clear()
    assert _calls(driver, fake, "fake-gzip", True, False, captured.recorder) == plain
    assert _calls(driver, fake, "fake-gzip-no-trailer", False, False, captured.recorder)[0] != (
        "raised"
    )
    ex, ex_no_trailer = exchanges(fake, driver)
    record, record_no_trailer = captured.records(2)
    assert record.header("content-encoding") == "gzip"
    assert record.body == ex.body
    assert gzip.decompress(record.body) == ex.decoded_body
    assert record_no_trailer.body == ex_no_trailer.body
    decoder = zlib.decompressobj(wbits=31)  # a missing trailer must not break decoding
    assert decoder.decompress(record_no_trailer.body) == ex_no_trailer.decoded_body


def test_openrouter_comments_are_kept_in_the_record(fake: FakeProvider, captured: Captured) -> None:
    """CAPTURE.md pitfall 11: the SDK drops ': OPENROUTER PROCESSING'; the record keeps it."""
    driver = next(d for d in DRIVERS if d.name == "openrouter")
    pieces = _calls(driver, fake, "fake-normal", True, False, captured.recorder)
    assert pieces[0] != "raised", pieces
    assert all(": OPENROUTER" not in (text or "") for text, _ in pieces)
    (record,) = captured.records(1)
    assert b": OPENROUTER PROCESSING" in record.body
    assert record.provider == "openrouter"
