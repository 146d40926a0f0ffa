"""Context variables of the tap: the session a record belongs to, and the SDK call.

Both work the same in threads and in asyncio tasks (``contextvars``).
The OpenTelemetry trace context is read here too (:func:`trace_context`,
only if the host has ``opentelemetry-api``). A
*session* tags every record made inside it; a *call scope* is set around one
logical SDK call so that its retried attempts share a ``call_id`` and get
consecutive attempt numbers.
"""

import contextvars
import itertools
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

__all__ = [
    "CallScope",
    "Session",
    "current_call",
    "current_session",
    "new_call_id",
    "trace_context",
]


class SessionState:
    """What a session contributes to a record; immutable once entered."""

    __slots__ = ("metadata", "record", "session_id")

    def __init__(self, session_id: str | None, metadata: Mapping[str, Any] | None, record: bool):
        self.session_id = session_id
        self.metadata = metadata
        self.record = record


_SESSION: contextvars.ContextVar[SessionState | None] = contextvars.ContextVar(
    "rawtap_session", default=None
)


current_session = _SESSION.get
"""``current_session()``: the innermost open session of this thread or task, if any.

The context variable's own ``get`` (no Python frame: the tap calls it per request).
"""


class Session:
    """``with recorder.session("user-42", metadata={...}):`` (or ``async with``).

    Every record captured inside the block carries ``session_id`` and
    ``metadata``. Sessions nest: an inner one replaces the session id (when it
    gives one) and adds its metadata to the outer one's. ``record=False``
    turns capture off inside the block, for performance-critical paths.
    The same object may be entered again after it was exited, but not twice at once.
    """

    __slots__ = ("_metadata", "_record", "_session_id", "_token")

    def __init__(
        self,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        record: bool = True,
    ) -> None:
        self._session_id = session_id
        # Copied once here: the writer thread serializes it later, after the caller may
        # have changed its own dict.
        self._metadata = dict(metadata) if metadata else None
        self._record = record
        self._token: contextvars.Token[SessionState | None] | None = None

    def __enter__(self) -> Self:
        outer = _SESSION.get()
        session_id = self._session_id
        metadata: Mapping[str, Any] | None = self._metadata
        if outer is not None:
            if session_id is None:
                session_id = outer.session_id
            if outer.metadata:
                metadata = {**outer.metadata, **metadata} if metadata else outer.metadata
        self._token = _SESSION.set(SessionState(session_id, metadata, self._record))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _SESSION.reset(token)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


# -- call ids ------------------------------------------------------------------

_prefix = os.urandom(6).hex()
_counter = itertools.count(1)


def _reset_ids_after_fork() -> None:
    global _prefix, _counter  # noqa: PLW0603 - process-wide id state, replaced in a forked child
    _prefix = os.urandom(6).hex()
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_reset_ids_after_fork)


def new_call_id() -> str:
    """A call id unique in this process and, by its random prefix, across processes."""
    return f"{_prefix}-{next(_counter):x}"


class CallScope:
    """One logical SDK call: its id and the next attempt number."""

    __slots__ = ("call_id", "next_attempt")

    def __init__(self) -> None:
        self.call_id = new_call_id()
        self.next_attempt = 0


_CALL: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "rawtap_call", default=None
)


current_call = _CALL.get
"""``current_call()``: the SDK call being made in this thread or task, if instrumented."""


def enter_call() -> contextvars.Token[CallScope | None] | None:
    """Open a call scope unless one is open already (an SDK method calling another)."""
    if _CALL.get() is not None:
        return None
    return _CALL.set(CallScope())


def exit_call(token: contextvars.Token[CallScope | None] | None) -> None:
    """Close the scope ``enter_call`` opened (no-op for ``None``)."""
    if token is not None:
        _CALL.reset(token)


# -- trace context (optional dependency) --------------------------------------

_get_current_span: Callable[[], Any] | None = None
_otel_checked = False


def _load_otel() -> None:
    global _get_current_span, _otel_checked  # noqa: PLW0603 - resolved once per process
    _otel_checked = True
    try:
        from opentelemetry.trace import get_current_span
    except ImportError:
        return
    _get_current_span = get_current_span


def trace_context() -> tuple[str, str | None] | None:
    """``(traceparent, tracestate)`` of the current OpenTelemetry span, if there is a valid one."""
    if not _otel_checked:
        _load_otel()
    get_span = _get_current_span
    if get_span is None:
        return None
    ctx = get_span().get_span_context()
    if not ctx.is_valid:
        return None
    traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    state = ctx.trace_state
    return traceparent, (state.to_header() if state else None)
