"""The tap's pure parts (redaction: test_redact.py): end-state judgement, sessions, the finalizer guard."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest

from rawtap.producer import Recorder
from rawtap.producer._ledger import Ledger
from rawtap.producer._tap import _handoff
from rawtap.producer._tap._capture import Capture, Tap
from rawtap.producer._tap._context import Session, current_session
from rawtap.producer._tap._core import Drain, Prefetch
from rawtap.shared import provider_from_host


def test_provider_names_from_hosts() -> None:
    assert provider_from_host("api.openai.com") == "openai"
    assert provider_from_host("openrouter.ai") == "openrouter"
    assert provider_from_host("api.anthropic.com") == "anthropic"
    assert provider_from_host("generativelanguage.googleapis.com") == "gemini"
    assert provider_from_host("myco.openai.azure.com") == "openai"
    assert provider_from_host("notopenai.com") is None


class _Sink:
    """Stands in for the Recorder: records what the tap hands over."""

    settings = SimpleNamespace(max_record_bytes=1 << 20)
    ledger = Ledger()

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, provider: str, raw: object, meta: Any, session: Any, **details: Any) -> bool:
        self.records.append({"provider": provider, "session": session, **details})
        return True

    def accepting(self) -> bool:
        return True

    def allows(self, provider: str) -> bool:
        return True

    def buffer_busy(self) -> bool:
        return False


def _capture_for(chunks: list[bytes], sink: _Sink) -> Capture:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions", content=b"{}")
    capture = Tap(sink, "openai").begin(request)  # type: ignore[arg-type]
    assert capture is not None
    capture.head(httpx2.Response(200, headers={"content-type": "text/event-stream"}))
    capture.chunks.extend(chunks)
    capture.offsets.extend(range(len(chunks)))
    return capture


@pytest.mark.parametrize(
    ("tail", "state"),
    [
        (b"data: [DONE]\n\n", "complete"),
        (b'event: message_stop\ndata: {"type":"message_stop"}\n\n', "complete"),
        (b"event: response.completed\ndata: {}\n\n", "complete"),
        (b'data: {"candidates":[{"finishReason":"STOP"}]}\r\n\r\n', "complete"),
        (b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n', "closed_early"),
    ],
)
def test_close_is_judged_by_the_providers_terminal_event(tail: bytes, state: str) -> None:
    sink = _Sink()
    capture = _capture_for([b"data: {}\n\n", tail], sink)
    capture.closed()
    capture.closed()  # exactly once
    assert [r["end_state"] for r in sink.records] == [state]


def _raise(exc: BaseException) -> None:
    raise exc


def test_close_during_cancellation_or_generator_finalization() -> None:
    sink = _Sink()
    for exc in (asyncio.CancelledError(), GeneratorExit()):
        capture = _capture_for([b"data: {}\n\n"], sink)
        try:
            _raise(exc)
        except BaseException:
            capture.closed()
    # A GeneratorExit alone is a generator closed by the caller's code (close(), a break);
    # only a stream that was already garbage when it was closed is abandoned.
    capture = _capture_for([b"data: {}\n\n"], sink)
    capture.closed(reachable=False)
    assert [r["end_state"] for r in sink.records] == ["cancelled", "closed_early", "abandoned"]


def test_a_finalizer_never_takes_a_lock_this_thread_may_hold(monkeypatch: Any) -> None:
    recorder = Recorder(redis_url="redis://127.0.0.1:1/0", stream_prefix="unit-never-sent")
    calls: list[str] = []

    def record(*a: Any, **k: Any) -> bool:
        calls.append(k["end_state"])
        return True

    monkeypatch.setattr(recorder, "record", record)
    capture = _capture_for([b"x"], _Sink())
    capture.tap = Tap(recorder, "openai")
    lock: threading.Lock = recorder._buffer._lock
    with lock:  # as if the GC ran inside record() on this very thread
        capture.abandoned()
    assert calls == []
    assert len(_handoff.deferred) == 1
    _handoff.drain_deferred()  # the next capture does this
    assert calls == ["abandoned"]
    recorder.close()


def test_sessions_nest_and_reset() -> None:
    assert current_session() is None
    with Session("a", {"x": 1}):
        with Session(None, {"y": 2}) as inner:
            state = current_session()
            assert state is not None
            assert (state.session_id, state.metadata) == ("a", {"x": 1, "y": 2})
        with inner:  # reusable after exit
            pass
        state = current_session()
        assert state is not None
        assert state.metadata == {"x": 1}
    assert current_session() is None


def test_session_metadata_is_copied_on_creation() -> None:
    meta = {"k": "v"}
    session = Session("s", meta)
    meta["k"] = "changed"
    with session:
        state = current_session()
        assert state is not None
        assert state.metadata == {"k": "v"}


def test_a_users_own_httpx2_transport_is_recognised_after_openai_is_imported() -> None:
    import httpx2
    import openai  # renames httpx2.BaseTransport.__module__ to "openai"

    from rawtap.producer._tap._flavour import package_of

    class Mine(httpx2.BaseTransport):
        pass

    assert openai is not None
    assert package_of(Mine()) == "httpx2"
    with httpx2.Client() as client:
        assert package_of(client) == "httpx2"
    assert package_of(object()) is None


class _SmallSink(_Sink):
    settings = SimpleNamespace(max_record_bytes=20)


def test_every_read_path_applies_the_record_size_bound() -> None:
    """Prefetch, tee and drain all keep chunks through the same bound (Capture.keep)."""
    ahead = Prefetch(_capture_for([], _SmallSink()))
    for _ in range(4):
        ahead.feed(b"x" * 8)
    assert ahead.capture.chunks == [b"x" * 8] * 3  # 20 of room: the third crosses it
    assert ahead.capture.unkept == 8
    assert ahead.got == [b"x" * 8] * 4  # the SDK still gets every byte

    # A tee's loop holds chunks without writing ``room`` back; a drain after it sees
    # the true room, not the room the capture started with.
    teed = _capture_for([b"y" * 16], _SmallSink())
    drain = Drain(teed)
    for _ in range(3):
        drain.feed(b"z" * 8)
    assert teed.chunks == [b"y" * 16, b"z" * 8]
    assert teed.unkept == 16
