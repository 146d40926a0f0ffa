"""What both SQL sinks share: column values from a record, and records back from rows.

Column values are *copies* for filtering; the envelope and the bodies are the
truth a record is rebuilt from. Copies are made safe for any database: integers
outside 64 bits become NULL (or are clamped where a value is required), text
never holds NUL or a lone surrogate, and the text copies that are indexed or
filtered on are cut to :data:`FILTER_MAX_BYTES` of UTF-8 (PostgreSQL refuses an
index entry over 2,704 bytes), so one odd record can never make a batch fail.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import fields, make_dataclass
from typing import Any

import orjson

from rawtap.consumer.derivation import Derived, ToolCall, derive, is_stale
from rawtap.consumer.store._sink import CallFacts, RecordSummary, StoredRecord
from rawtap.shared import SCHEMA_VERSION, CodecError, Record, encode_envelope, schema_problem

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

FILTER_MAX_BYTES = 1024
"""UTF-8 bytes kept in an indexed or filtered text copy (session_id, model, …).

Far below PostgreSQL's 2,704-byte limit for a B-tree entry whatever else the index
holds; the envelope keeps the full value, and filters are cut the same way.
"""

_UNSAFE = re.compile("[\x00\ud800-\udfff]")

RECORD_COLUMNS = (
    "record_id",
    "schema_version",
    "producer_id",
    "seq",
    "session_id",
    "service",
    "provider",
    "method",
    "url",
    "status",
    "end_state",
    "stream",
    "started_at_ns",
    "ended_ns",
    "captured_at_ns",
    "persisted_at_ns",
    "body_size",
    "envelope",
    "request_body",
    "body",
    "call_id",
)
"""Columns both sinks fill from the record, in this order (``call_id`` since schema 5)."""

DERIVED_COLUMNS = (
    "parser",
    "parser_version",
    "model",
    "response_id",
    "request_id",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "finish_reason",
    "ttft_ns",
    "text",
    "tool_calls",
    "provider_error",
    "parse_error",
    "text_chars",
)
"""Columns both sinks fill from :class:`Derived`, in this order.

``text`` holds the derived text cut to :data:`FILTER_MAX_BYTES` (a filter copy like the
others) and ``text_chars`` its full length in characters: the full text is derived again
from the stored body when the row is read (:func:`stored_from_row`), so a response is not
stored twice (for a JSON body, the text is most of its bytes). A text longer than the
preview is therefore always what :func:`~rawtap.consumer.derive` makes of the body: a
``Derived`` written with another long text (``set_derived``) reads back with derive's."""

SUMMARY_COLUMNS = (
    "record_id",
    "started_at_ns",
    "provider",
    "model",
    "status",
    "end_state",
    "stream",
    "session_id",
    "input_tokens",
    "output_tokens",
    "ended_ns",
    "body_size",
    "parse_error",
    "service",
    "method",
    "url",
    "call_id",
    "finish_reason",
    "ttft_ns",
)
"""What :class:`RecordSummary` is made of, in its field order."""

CALL_FACTS_COLUMNS = (
    "started_at_ns",
    "provider",
    "model",
    "status",
    "end_state",
    "ended_ns",
    "ttft_ns",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
)
"""What :class:`CallFacts` is made of, in its field order."""

STORED_COLUMNS = ("envelope", "request_body", "body", "persisted_at_ns", *DERIVED_COLUMNS)
"""What is read to rebuild a :class:`StoredRecord`."""


def nullable_i64(value: int | None) -> int | None:
    """``value`` if it fits in 64 bits, else None."""
    if value is None or I64_MIN <= value <= I64_MAX:
        return value
    return None


def clamp_i64(value: int) -> int:
    """``value`` clamped into 64 bits (for required columns; the envelope keeps the truth)."""
    if I64_MIN <= value <= I64_MAX:
        return value
    return I64_MIN if value < 0 else I64_MAX


def safe_text(value: str | None) -> str | None:
    """``value`` with NUL and lone surrogates replaced by U+FFFD (any database takes it)."""
    if value is None:
        return None
    if value.isascii():
        # No surrogate in ASCII (the check is O(1)); NUL is found by a byte scan,
        # several times faster than the regex over a long text.
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if not _UNSAFE.search(value):
        return value
    return _UNSAFE.sub("\ufffd", value)


def filter_text(value: str | None) -> str | None:
    """The copy of ``value`` an indexed or filtered column holds: safe, at most
    :data:`FILTER_MAX_BYTES` of UTF-8, cut at a character boundary."""
    if value is None:
        return None
    if value.isascii():
        # The common case in one pass of C: ASCII is one byte a character, no surrogates.
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
            return filter_text(value)
        return value if len(value) <= FILTER_MAX_BYTES else value[:FILTER_MAX_BYTES]
    value = safe_text(value)
    if value is None or len(value) * 4 <= FILTER_MAX_BYTES:
        return value
    encoded = value.encode("utf-8")
    if len(encoded) <= FILTER_MAX_BYTES:
        return value
    return encoded[:FILTER_MAX_BYTES].decode("utf-8", "ignore")


def record_values(record: Record, persisted_at_ns: int, envelope: bytes | None = None) -> list[Any]:
    """Values for :data:`RECORD_COLUMNS` (``stream`` as a bool).

    ``envelope`` is the envelope as it arrived, when ``record`` was decoded from it:
    stored as is (it is what the producer sent, and re-encoding it costs more than
    the rest of the row). Without it the record is encoded.
    """
    return [
        safe_text(record.record_id),
        record.schema_version,
        filter_text(record.producer_id),
        clamp_i64(record.seq),
        filter_text(record.session_id),
        filter_text(record.service),
        filter_text(record.provider),
        filter_text(record.method),
        safe_text(record.url),
        nullable_i64(record.status),
        record.end_state.value,
        record.stream,
        clamp_i64(record.started_at_ns),
        nullable_i64(record.ended_ns),
        clamp_i64(record.captured_at_ns),
        persisted_at_ns,
        len(record.body),
        encode_envelope(record) if envelope is None else envelope,
        record.request_body,
        record.body,
        filter_text(record.call_id),
    ]


def derived_values(derived: Derived | None) -> list[Any]:
    """Values for :data:`DERIVED_COLUMNS`; all None when never derived (``tool_calls`` as JSON)."""
    if derived is None:
        return [None] * len(DERIVED_COLUMNS)
    return [
        filter_text(derived.parser),
        derived.parser_version or 0,
        filter_text(derived.model),
        filter_text(derived.response_id),
        filter_text(derived.request_id),
        nullable_i64(derived.input_tokens),
        nullable_i64(derived.output_tokens),
        nullable_i64(derived.cached_tokens),
        nullable_i64(derived.reasoning_tokens),
        filter_text(derived.finish_reason),
        nullable_i64(derived.ttft_ns),
        filter_text(derived.text),
        orjson.dumps([c.model_dump() for c in derived.tool_calls]).decode()
        if derived.tool_calls
        else None,
        safe_text(derived.provider_error),
        safe_text(derived.parse_error),
        None if derived.text is None else len(derived.text),
    ]


def text_was_cut(values: Sequence[Any]) -> bool:
    """True when a row's stored ``text`` is shorter than the text that was derived."""
    row = dict(zip(DERIVED_COLUMNS, values, strict=True))
    text, chars = row["text"], row["text_chars"]
    return text is not None and chars is not None and len(text) < chars


def derived_from_row(values: Sequence[Any]) -> Derived | None:
    """The :class:`Derived` in a row's :data:`DERIVED_COLUMNS` values (None if never derived).

    ``text`` is as stored, cut when :func:`text_was_cut`; :func:`stored_from_row` gives
    the full text.
    """
    row = dict(zip(DERIVED_COLUMNS, values, strict=True))
    del row["text_chars"]
    version = row["parser_version"]
    if version is None:
        return None
    try:
        calls = row["tool_calls"]
        if isinstance(calls, str | bytes):
            calls = orjson.loads(calls)
        row["tool_calls"] = [ToolCall.model_validate(c) for c in calls or []]
        row["parser_version"] = version or None
        return Derived.model_validate(row)
    except ValueError as e:  # orjson.JSONDecodeError and pydantic's ValidationError
        first = " ".join(str(e).split())[:200]
        raise CodecError(f"stored derived fields are not valid: {first}") from e


def record_from_row(
    record_id: str, envelope: bytes | memoryview, request_body: Any, body: Any
) -> Record:
    """Rebuild a record from its stored envelope and bodies.

    Raises :class:`CodecError` for a corrupted envelope or a schema version this
    release does not read (:func:`rawtap.shared.schema_problem`, the rule of ingress).
    """
    try:
        data = orjson.loads(bytes(envelope))
    except orjson.JSONDecodeError as e:
        raise CodecError(f"stored record {record_id} is corrupted: envelope is not JSON") from e
    if not isinstance(data, dict):
        raise CodecError(f"stored record {record_id} is corrupted: envelope is not an object")
    # The rule an entry met on ingress (an envelope without the field is the current version).
    problem = schema_problem(data.get("schema_version", SCHEMA_VERSION))
    if problem is not None:
        raise CodecError(f"stored record {record_id}: {problem}")
    data["request_body"] = bytes(request_body)
    data["body"] = bytes(body)
    try:
        return Record.model_validate(data)
    except ValueError as e:
        first = " ".join(str(e).split())[:200]
        raise CodecError(f"stored record {record_id} is not a valid record: {first}") from e


def summary_from_row(values: Sequence[Any]) -> RecordSummary:
    """A :class:`RecordSummary` from :data:`SUMMARY_COLUMNS` values."""
    row = dict(zip(SUMMARY_COLUMNS, values, strict=True))
    row["stream"] = bool(row["stream"])
    return RecordSummary(**row)


FACTS_BUILDER = make_dataclass(
    "CallFactsBuilder", [(f.name, f.type) for f in fields(CallFacts)], slots=True
)
"""CallFacts' twin without ``frozen``: the same slots, a plain ``__init__`` (see
:func:`facts_from_rows`); :func:`as_call_facts` makes its objects CallFacts."""


def facts_from_rows(rows: Iterable[Sequence[Any]]) -> list[CallFacts]:
    """:class:`CallFacts` from rows of :data:`CALL_FACTS_COLUMNS` values.

    Built as the unfrozen twin, then made CallFacts (the same slots, so the same
    layout): a frozen dataclass sets each field through ``object.__setattr__``, and
    20,000 of them (``call_facts``' default) cost three times as much.
    """
    return as_call_facts([FACTS_BUILDER(*row) for row in rows])


def as_call_facts(built: list[Any]) -> list[CallFacts]:
    """:data:`FACTS_BUILDER` objects made :class:`CallFacts`, in place."""
    for facts in built:
        facts.__class__ = CallFacts
    return built


def stored_from_row(row: Sequence[Any]) -> StoredRecord:
    """A ``StoredRecord`` from the columns both stores select: id, envelope, bodies, persisted."""
    record_id, envelope, request_body, body, persisted_at_ns, *values = row
    record = record_from_row(str(record_id), envelope, request_body, body)
    derived = derived_from_row(values)
    if derived is not None and text_was_cut(values) and not is_stale(derived):
        # Only a preview was stored: the text is derived again from the bytes it came from,
        # by the parser version that made the row (a stale row keeps its preview until
        # `rawtap rederive`), and made safe as the stored copies are (NUL → U+FFFD).
        whole = derive(record).text
        if whole is not None:  # else (a decoder missing on this host) the preview stays
            derived = derived.model_copy(update={"text": safe_text(whole)})
    return StoredRecord(record=record, derived=derived, persisted_at_ns=int(persisted_at_ns))


def check_parallel(
    records: Sequence[Record],
    derived: Sequence[Derived | None] | None,
    envelopes: Sequence[bytes] | None,
) -> None:
    """Refuse a write whose derived fields or envelopes are not one per record."""
    if derived is not None and len(derived) != len(records):
        raise ValueError("derived must have one entry per record")
    if envelopes is not None and len(envelopes) != len(records):
        raise ValueError("envelopes must have one entry per record")
