"""The tap's IO-free core: what a response and each of its chunks do to a :class:`Capture`.

The sync and async shells in :mod:`._transport` only read (``next(it)`` or
``await it.__anext__()``) and hand what they read here, the way h11 and
httpcore keep protocol logic apart from IO: a fix to the bookkeeping lands
once, and every read path (the tee, the error-body read-ahead, the drain
after the terminal event, a body that arrived whole) goes through
:meth:`Capture.keep`, the one place that applies ``max_record_bytes``.
"""

import enum
from typing import Any

from rawtap.producer._tap._capture import DRAIN_LIMIT, ERROR_BODY_LIMIT, Capture


class Plan(enum.Enum):
    """What a shell does with a response once its head arrived."""

    RECORDED = "recorded"
    """The body came with the response (mock transports, ASGI/WSGI): already recorded."""
    PREFETCH = "prefetch"
    """A small error body: read it now (SDKs close retried error bodies unread), then replay it."""
    TEE = "tee"
    """Tee the body into the capture as the SDK reads it."""


def plan(response: Any, capture: Capture) -> Plan:
    """Note the response head in ``capture`` and say how to read its body."""
    capture.head(response)
    content = getattr(response, "_content", None)
    if isinstance(content, bytes):
        if content:
            capture.keep(content, capture.first_byte or 0)
        capture.at_eof()
        return Plan.RECORDED
    if response.status_code >= 400:
        length = _content_length(response)
        if length is None or length <= ERROR_BODY_LIMIT:
            return Plan.PREFETCH
    return Plan.TEE


def _content_length(response: Any) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Prefetch:
    """Reading an error body ahead, up to ``ERROR_BODY_LIMIT``; what was read is replayed."""

    __slots__ = ("capture", "error", "got", "total")

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.got: list[bytes] = []
        self.total = 0
        self.error: BaseException | None = None

    def more(self) -> bool:
        """True while the shell should read another chunk."""
        return self.total < ERROR_BODY_LIMIT

    def feed(self, chunk: bytes) -> None:
        """A chunk was read."""
        self.capture.keep(chunk)
        self.got.append(chunk)
        self.total += len(chunk)

    def ended(self) -> None:
        """The body ended."""
        self.capture.at_eof()

    def failed(self, exc: Exception) -> None:
        """Reading raised ``exc``: it is replayed to the SDK exactly when it reads that far."""
        self.error = exc
        self.capture.read_failed(exc)


class Drain:
    """Reading the little left after the terminal event, up to ``DRAIN_LIMIT``.

    The SDK stopped at the provider's terminal event (OpenAI sync streams stop
    at ``[DONE]``): what is left (a gzip trailer, the end of the chunked body)
    is read so the record is byte-exact and the connection can go back to the
    pool. A failure is ignored: without the tap nobody would have read it.
    """

    __slots__ = ("capture", "total")

    def __init__(self, capture: Capture) -> None:
        capture.sync_room()  # the tee that stopped may not have written it back
        self.capture = capture
        self.total = 0

    def more(self) -> bool:
        """True while the shell should read another chunk."""
        return self.total <= DRAIN_LIMIT

    def feed(self, chunk: bytes) -> None:
        """A chunk was read."""
        self.capture.keep(chunk)
        self.total += len(chunk)

    def ended(self) -> None:
        """The body ended."""
        self.capture.eof = True


class TeeState:
    """What a response-stream tee knows between reads (its shell does the reading).

    ``replay``/``replay_error``: what a :class:`Prefetch` read ahead, handed to
    the SDK before the rest of the body.
    """

    __slots__ = ("capture", "replay", "replay_error", "started")

    def __init__(
        self,
        capture: Capture,
        replay: list[bytes] | None = None,
        replay_error: BaseException | None = None,
    ) -> None:
        self.capture = capture
        self.replay = replay
        self.replay_error = replay_error
        self.started = False

    def start(self) -> tuple[list[bytes], BaseException | None] | None:
        """The SDK started reading: the read-ahead chunks (and error) to replay first, once."""
        self.started = True
        replay = self.replay
        if replay is None:
            return None
        error = self.replay_error
        self.replay = self.replay_error = None
        return replay, error

    def ended(self) -> None:
        """The inner stream ended."""
        if not self.capture.done:
            self.capture.at_eof()

    def finalized(self) -> None:
        """The tee was garbage-collected; never raises."""
        try:
            capture = self.capture
            if not capture.done:
                capture.abandoned()
        except Exception:  # noqa: BLE001, S110 - a finalizer must not raise
            pass
