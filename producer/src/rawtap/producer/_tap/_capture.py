"""One physical HTTP attempt as the tap sees it, and the one record it becomes.

A :class:`Capture` is created when the request reaches the transport, gets
the response head and every body chunk as they pass, and is finished exactly
once: at EOF, on a read error, on close (complete if the provider's terminal
event was seen, else closed early / cancelled / abandoned), on a transport
error, or when the response is garbage-collected unclosed. Finishing runs on
the application's thread (sometimes inside a finalizer): it never raises,
never blocks, and leaves serialization and redaction of credentials to the
Recorder's writer thread (rawtap.producer._redact): it only gathers references
and queues the record.
"""

import asyncio
import logging
import sys
import time
import zlib
from typing import TYPE_CHECKING, Any

from rawtap.producer._tap._context import (
    CallScope,
    SessionState,
    current_call,
    current_session,
    new_call_id,
    trace_context,
)
from rawtap.producer._tap._handoff import count_failure, deferred, drain_deferred, submit
from rawtap.shared import LogOnce, provider_from_host, terminal_markers

if TYPE_CHECKING:
    from rawtap.producer._recorder import Recorder

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

clock = time.perf_counter_ns
"""The tap's clock (ns): offsets and durations of one attempt."""
_clock = clock

ERROR_BODY_LIMIT = 64 * 1024
"""Error bodies (status >= 400) up to this size are read by the tap before the SDK sees them."""

DRAIN_LIMIT = 64 * 1024
"""At most this much is read after the terminal event when the SDK closes (see ``should_drain``)."""

DRAIN_TIMEOUT_S = 0.1
"""Async drains give up after this long (the same bound openai's own async drain uses)."""

_STREAM_TYPES = (b"text/event-stream", b"application/x-ndjson", b"application/jsonl")
# Every provider's markers, whatever the record's provider: a client tapped with
# provider="http" (or a custom name) may still talk to a known API.
_TERMINAL_MARKERS = terminal_markers()
_RETRY_COUNT_HEADER = b"x-stainless-retry-count"


# -- the tap's shared state ------------------------------------------------------


class Tap:
    """What every transport of one instrumented client shares: recorder and provider."""

    __slots__ = ("fallback_provider", "provider", "recorder")

    def __init__(
        self, recorder: "Recorder", provider: str | None, fallback_provider: str = "http"
    ) -> None:
        self.recorder = recorder
        self.provider = provider
        self.fallback_provider = fallback_provider

    def begin(self, request: Any) -> "Capture | None":
        """A capture for ``request``, or None when nothing is to be recorded."""
        try:
            recorder = self.recorder
            if not recorder.accepting():
                return None
            if deferred:
                drain_deferred()
            session = current_session()
            if session is not None and not session.record:
                return None
            provider = self.provider
            if provider is None:
                provider = provider_from_host(request.url.host) or self.fallback_provider
            if not recorder.allows(provider):
                return None
            return Capture(self, request, provider, session, current_call())
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(self.recorder, "begin")
            return None


class Capture:
    """The state of one attempt until its record is queued (see the module docstring)."""

    __slots__ = (
        "attempt",
        "call_id",
        "chunks",
        "done",
        "eof",
        "first_byte",
        "offsets",
        "provider",
        "request",
        "response_headers",
        "room",
        "session",
        "started_wall",
        "status",
        "t0",
        "tail",
        "tap",
        "trace",
        "unkept",
    )

    def __init__(
        self,
        tap: Tap,
        request: Any,
        provider: str,
        session: SessionState | None,
        scope: CallScope | None,
    ) -> None:
        self.t0 = _clock()
        self.started_wall = time.time_ns()
        self.tap = tap
        self.request = request
        self.provider = provider
        self.session = session
        if scope is not None:
            self.call_id: str | None = scope.call_id
            self.attempt: int | None = scope.next_attempt
            scope.next_attempt += 1
        else:
            self.call_id = None
            self.attempt = None
        self.trace = trace_context()
        self.status: int | None = None
        self.response_headers: Any = None
        self.first_byte: int | None = None
        self.chunks: list[bytes] = []
        self.offsets: list[int] = []
        self.done = False
        self.eof = False
        # Bytes of body worth holding: the writer cuts records at max_record_bytes anyway.
        self.room: int = tap.recorder.settings.max_record_bytes
        self.unkept = 0
        self.tail: tuple[bytes, bytes] = (b"", b"")

    # -- events ------------------------------------------------------------------

    def keep(self, chunk: bytes, offset_ns: int | None = None) -> None:
        """A body chunk passed (``offset_ns`` after the start; default: now).

        The one place that holds chunks, for every read path (see :mod:`._core`):
        past ``max_record_bytes`` the record is cut anyway, so the rest is only
        counted, and the last two pieces kept to see the terminal event on close.
        """
        room = self.room
        if room > 0:
            self.room = room - len(chunk)
            self.chunks.append(chunk)
            self.offsets.append(_clock() - self.t0 if offset_ns is None else offset_ns)
        else:
            self.unkept += len(chunk)
            self.tail = (self.tail[1], chunk)

    def sync_room(self) -> None:
        """Make ``room`` exact (a tee's loop writes it back only past the bound); before a drain."""
        if self.room > 0:
            self.room = self.tap.recorder.settings.max_record_bytes - sum(map(len, self.chunks))

    def head(self, response: Any) -> None:
        """The response head arrived (status and headers)."""
        self.first_byte = _clock() - self.t0
        self.status = response.status_code
        self.response_headers = response.headers

    def at_eof(self) -> None:
        """The body was read to its end."""
        self.eof = True
        self.finish("complete", None, risky=False)

    def read_failed(self, exc: BaseException) -> None:
        """Reading the body raised ``exc`` (it propagates unchanged)."""
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            # Not an error of the exchange: the end state says what happened.
            self.finish("cancelled", None, risky=False)
        else:
            self.finish("error", _describe(exc), risky=False)

    def transport_failed(self, exc: BaseException) -> None:
        """The inner transport raised ``exc`` before any response."""
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            self.finish("cancelled", None, risky=False)
        else:
            self.finish("transport_error", _describe(exc), risky=False)

    def closed(self, reachable: bool = True) -> None:
        """The response was closed; judge how far it got.

        ``reachable`` is False when the stream object was already unreachable
        garbage when it was closed: the cyclic garbage collector is finalizing
        the SDK or httpx generator that held it (see ``closed_early`` vs
        ``abandoned`` in docs/capture.md).
        """
        if self.done:
            return
        try:
            if self.eof or self._saw_terminal_event():
                state = "complete"
            elif not reachable or sys.is_finalizing():
                # Nobody could have closed it: the garbage collector (or interpreter
                # exit) is finalizing a generator that still held it.
                state = "abandoned"
            elif isinstance(sys.exc_info()[1], asyncio.CancelledError | KeyboardInterrupt):
                state = "cancelled"
            else:
                # Any close the caller's own code caused: close()/aclose(), leaving a
                # ``with``, generator.close(), or breaking out of a loop over iter_*()
                # (httpx2 closes the response in iter_raw's ``finally`` as the dropped
                # iterator is finalized; a GeneratorExit in flight is that, not the GC).
                state = "closed_early"
        except Exception:  # noqa: BLE001 - never into the host
            state = "closed_early"
        self.finish(state, None, risky=True)

    def abandoned(self) -> None:
        """The response was garbage-collected without being closed."""
        if not self.done:
            self.finish("abandoned", None, risky=True)

    def should_drain(self) -> bool:
        """True when the SDK closes right after the terminal event: the rest is tiny and due.

        Never while an exception (cancellation, generator finalization) is in flight.
        """
        return (
            not self.done
            and not self.eof
            and sys.exc_info()[0] is None
            and self._saw_terminal_event()
        )

    def _saw_terminal_event(self) -> bool:
        chunks = self.chunks
        if self.unkept:
            chunks = [*chunks[-2:], *self.tail]  # the newest pieces were not kept
        if not chunks:
            return False
        tail = chunks[-1] if len(chunks) == 1 else chunks[-2] + chunks[-1]
        headers = self.response_headers
        coding = headers.get("content-encoding") if headers is not None else None
        if coding:
            tail = _decoded_tail(chunks, coding)
        return any(marker in tail for marker in _TERMINAL_MARKERS)

    # -- the record ------------------------------------------------------------

    def finish(self, end_state: str, error: str | None, *, risky: bool) -> None:
        """Queue the record (once); never raises."""
        if self.done:
            return
        self.done = True
        recorder = self.tap.recorder
        try:
            ended = _clock() - self.t0
            request = self.request
            # Only references here: decoding and redaction run on the writer thread.
            request_headers, retry_count = _request_headers(request.headers)
            attempt = self.attempt if retry_count is None else retry_count
            url = str(request.url)
            request_body = _request_body(request)
            chunks = self.chunks
            response_headers: list[tuple[bytes, bytes, bytes]] = []
            content_type = b""
            if self.response_headers is not None:
                response_headers = list(_header_items(self.response_headers))
                content_type = _content_type(response_headers)
            details: dict[str, Any] = {
                "stream": content_type.lower().startswith(_STREAM_TYPES),
                "chunks": chunks,
                "chunk_offsets_ns": self.offsets,
                "method": request.method,
                "url": url,
                "request_headers": request_headers,
                "request_body": request_body,
                "response_headers": response_headers,
                "started_at_ns": self.started_wall,
                "ended_ns": ended,
                "end_state": end_state,
                "call_id": self.call_id or new_call_id(),
                "attempt": 0 if attempt is None else attempt,
                "body_form": "wire",
            }
            if self.status is not None:
                details["status"] = self.status
            if self.first_byte is not None:
                details["first_byte_ns"] = self.first_byte
            if self.unkept:
                # Every byte that passed was counted, kept or not: the record's
                # original_size is the body's true size (the writer cuts to the limit).
                details["original_size"] = sum(map(len, chunks)) + self.unkept
            if error is not None:
                details["error"] = error
            if self.trace is not None:
                details["traceparent"] = self.trace[0]
                if self.trace[1]:
                    details["tracestate"] = self.trace[1]
            session = self.session
            if session is None:
                submit(recorder, self.provider, None, None, details, risky)
            else:
                submit(
                    recorder, self.provider, session.metadata, session.session_id, details, risky
                )
        except Exception:  # noqa: BLE001 - never into the host
            count_failure(recorder, "finish")
        finally:
            self.request = None  # the request (and its body) need not live as long as the stream


def _decoded_tail(chunks: list[bytes], coding: str) -> bytes:
    """The last decoded bytes of a compressed body read so far (gzip/deflate only).

    Only used when a compressed stream is closed before EOF: the terminal event
    cannot be seen in compressed bytes, and deflate needs the whole prefix.
    """
    if coding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        return b""
    try:
        decoder = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
        out = decoder.decompress(b"".join(chunks))
    except zlib.error:
        return b""
    return out[-4096:]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__module__ + "." + type(exc).__qualname__
    return f"{name}: {text}" if text else name


def _request_headers(headers: Any) -> tuple[list[tuple[bytes, bytes, bytes]], int | None]:
    """Request header triples (a copy of the list), and the SDK's ``x-stainless-retry-count``."""
    items = list(_header_items(headers))
    for _raw_name, lower_name, value in items:
        if lower_name == _RETRY_COUNT_HEADER and value.isdigit():
            return items, int(value)
    return items, None


def _content_type(items: list[tuple[bytes, bytes, bytes]]) -> bytes:
    for _raw_name, lower_name, value in items:
        if lower_name == b"content-type":
            return value
    return b""


def _header_items(headers: Any) -> Any:
    """``(raw_name, lower_name, value)`` triples of an httpx/httpx2 ``Headers``."""
    items = getattr(headers, "_list", None)
    if isinstance(items, list):
        return items
    return [(k, k.lower(), v) for k, v in headers.raw]


def _request_body(request: Any) -> bytes:
    content = getattr(request, "_content", None)
    if isinstance(content, bytes):
        return content
    return b""  # a streamed request body (multipart upload) is not captured
