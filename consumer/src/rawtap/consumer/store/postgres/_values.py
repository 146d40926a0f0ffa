"""A record as PostgreSQL's columns: the shared values plus the partition key ``started_at``.

``records`` holds, besides the columns both stores fill (:mod:`.._rows`), the
partition key ``started_at`` (a timestamptz); headers and metadata are read
from the envelope (the view ``records_json``, migration 0003). Text and jsonb
cannot hold NUL, so copies have it replaced; the envelope keeps the truth.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store._rows import (
    DERIVED_COLUMNS,
    RECORD_COLUMNS,
    derived_values,
    record_values,
)
from rawtap.shared import Record

PG_COLUMNS = (
    *RECORD_COLUMNS,
    "started_at",
    *DERIVED_COLUMNS,
)
"""The columns a write fills, in the order of :func:`pg_row`."""

PG_TYPES = (
    # RECORD_COLUMNS
    "text", "int2", "text", "int8", "text", "text", "text", "text", "text", "int8", "text",
    "bool", "int8", "int8", "int8", "int8", "int8", "bytea", "bytea", "bytea", "text",
    # started_at
    "timestamptz",
    # DERIVED_COLUMNS
    "text", "int4", "text", "text", "text", "int8", "int8", "int8", "int8", "text", "int8",
    "text", "jsonb", "text", "text", "int8",
)  # fmt: skip
"""The types of :data:`PG_COLUMNS`, for a binary COPY."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOOL_CALLS = len(RECORD_COLUMNS) + 1 + DERIVED_COLUMNS.index("tool_calls")
_TEXT_INDEXES = tuple(i for i, t in enumerate(PG_TYPES) if t == "text")
_MIN_TS = datetime(1, 1, 2, tzinfo=UTC)
_MAX_TS = datetime(9999, 12, 30, tzinfo=UTC)


def ns_to_datetime(ns: int) -> datetime:
    """A wall-clock ns timestamp as an aware UTC datetime (truncated to µs, clamped)."""
    try:
        return EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return _MIN_TS if ns < 0 else _MAX_TS


def _scrub(value: Any) -> Any:
    """``value`` with NUL characters replaced (PostgreSQL text and jsonb cannot hold them)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _json_bytes(value: Any) -> bytes:
    out = orjson.dumps(value)
    if b"\\u0000" in out:
        out = orjson.dumps(_scrub(value))
    return out


def _as_is(text: str) -> str:
    return text


def json_text(text: str) -> Jsonb:
    """JSON text already serialized (the derived tool calls) as a jsonb value, not re-encoded.

    Only a text holding an escaped NUL, which jsonb refuses, is parsed and scrubbed.
    """
    if "\\u0000" in text:
        return Jsonb(orjson.loads(text), dumps=_json_bytes)
    return Jsonb(text, dumps=_as_is)


def pg_row(
    record: Record, persisted_at_ns: int, derived: Derived | None, envelope: bytes | None = None
) -> list[Any]:
    """The values of :data:`PG_COLUMNS` for one record (``envelope``: as it arrived, if known)."""
    row = [
        *record_values(record, persisted_at_ns, envelope),
        ns_to_datetime(record.started_at_ns),
        *derived_values(derived),
    ]
    if row[_TOOL_CALLS] is not None:
        row[_TOOL_CALLS] = json_text(row[_TOOL_CALLS])
    for i in _TEXT_INDEXES:
        value = row[i]
        if value is not None and "\x00" in value:
            row[i] = value.replace("\x00", "\ufffd")
    return row


def derived_row(record_id: str, derived: Derived) -> list[Any]:
    """The values of :data:`DERIVED_COLUMNS`, then the record id (a derived-field update)."""
    values = derived_values(derived)
    calls = DERIVED_COLUMNS.index("tool_calls")
    if values[calls] is not None:
        values[calls] = json_text(values[calls])
    return [*_scrub(values[:calls]), values[calls], *_scrub(values[calls + 1 :]), record_id]
