"""Optional keyword details a caller (or the transport tap) adds to a record."""

from collections.abc import Sequence
from typing import TypedDict


class RecordDetails(TypedDict, total=False):
    """Everything ``Recorder.record`` accepts besides provider, response, metadata and session.

    All keys are optional. Times are ``time.time_ns()`` for ``started_at_ns``
    and nanosecond offsets from it (monotonic clock) for the others.
    """

    stream: bool
    """The response was streamed; pass its pieces as ``chunks``."""
    chunks: Sequence[bytes]
    """The streamed body, piece by piece, in arrival order (``raw_response`` is then ignored)."""
    chunk_offsets_ns: Sequence[int]
    """When each chunk arrived, in ns since the request started (same length as ``chunks``)."""
    status: int
    """HTTP status of the response."""
    response_headers: Sequence[tuple[str, str]]
    """Response headers as received (case, order, duplicates; credentials redacted)."""
    method: str
    """HTTP method of the request."""
    url: str
    """URL of the request (rawtap redacts credentials in it, on the writer thread)."""
    request_headers: Sequence[tuple[str, str]]
    """Request headers as sent (rawtap redacts credentials)."""
    request_body: bytes
    """Request body as sent."""
    started_at_ns: int
    """Wall-clock start of the request (``time.time_ns()``); defaults to the record call."""
    first_byte_ns: int
    """Offset of the first response byte from the start."""
    ended_ns: int
    """Offset of the end of the exchange from the start."""
    end_state: str
    """One of :class:`rawtap.shared.EndState`'s values; ``complete`` by default."""
    error: str
    """Error text, for failed exchanges."""
    call_id: str
    """Links the attempts of one logical SDK call."""
    attempt: int
    """The SDK's attempt number within ``call_id`` (0 for the first)."""
    traceparent: str
    """W3C trace context of the calling code."""
    tracestate: str
    """W3C trace state of the calling code."""
    body_form: str
    """Overrides the detected :class:`rawtap.shared.BodyForm` (the tap sets ``wire``)."""
    original_size: int
    """The whole response body's size when ``chunks`` (or ``raw_response``) hold only its start.

    The tap stops holding a body past ``max_record_bytes`` but counts every
    byte that passed, so the record's ``original_size`` is exact.
    """


DETAIL_KEYS = frozenset(RecordDetails.__annotations__)
