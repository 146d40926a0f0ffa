"""Building records for store and derivation tests from exact wire payloads."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import orjson

from rawtap.shared import Chunk, Record

_counter = itertools.count()


def sse(*events: tuple[str | None, Any]) -> list[bytes]:
    """One chunk per event, as servers flush them: ``event: …`` (optional) and ``data: …``."""
    out = []
    for name, data in events:
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        out.append((f"event: {name}\n".encode() if name else b"") + b"data: " + payload + b"\n\n")
    return out


def make_record(
    provider: str = "openai",
    body: bytes = b"",
    *,
    chunks: Sequence[bytes] | None = None,
    url: str | None = None,
    status: int | None = 200,
    headers: Sequence[tuple[str, str]] = (),
    request_body: bytes = b"",
    started_at_ns: int | None = None,
    first_byte_ns: int | None = 1_000_000,
    chunk_step_ns: int = 1_000_000,
    record_id: str | None = None,
    **fields: Any,
) -> Record:
    """A valid record; streamed when ``chunks`` is given (chunk i arrives at (i+1)·step)."""
    n = next(_counter)
    now = time.time_ns()
    started = now if started_at_ns is None else started_at_ns
    if chunks is not None:
        body = b"".join(chunks)
        fields.setdefault("stream", True)
        fields["chunks"] = [Chunk((i + 1) * chunk_step_ns, len(c)) for i, c in enumerate(chunks)]
    return Record(
        record_id=record_id or f"{started // 1_000_000:012x}{'ab' * 8}{n:012x}",
        producer_id="ab" * 8,
        seq=fields.pop("seq", n),
        provider=provider,
        method="POST",
        url=url,
        status=status,
        response_headers=list(headers),
        request_body=request_body,
        body=body,
        started_at_ns=started,
        captured_at_ns=max(now, started),
        first_byte_ns=first_byte_ns,
        ended_ns=(first_byte_ns or 0) + 5_000_000,
        **fields,
    )
