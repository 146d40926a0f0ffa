"""A Record to and from a Redis stream entry.

An entry has five fields (named in :mod:`rawtap.shared._wire`); the bodies
travel as raw Redis bulk strings (no base64, no JSON escaping) and everything
else as one orjson envelope.

The producer builds entries from a plain dict with :func:`entry_from_parts`
(no pydantic on its writer thread); the worker validates them into a
:class:`Record` with :func:`decode_entry`.
"""

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from rawtap.shared._errors import CodecError
from rawtap.shared._limits import record_problem
from rawtap.shared._record import SCHEMA_VERSION, Record
from rawtap.shared._wire import (
    ENTRY_BODY,
    ENTRY_ENVELOPE,
    ENTRY_RECORD_ID,
    ENTRY_REQUEST_BODY,
    ENTRY_VERSION,
)

_BODY_FIELDS = frozenset({"request_body", "body"})
_VERSION_BYTES = str(SCHEMA_VERSION).encode()


def entry_from_parts(
    record_id: str, envelope: bytes, request_body: bytes, body: bytes
) -> dict[bytes, bytes]:
    """A stream entry from an already-serialized envelope and the two bodies."""
    return {
        ENTRY_VERSION: _VERSION_BYTES,
        ENTRY_RECORD_ID: record_id.encode(),
        ENTRY_ENVELOPE: envelope,
        ENTRY_REQUEST_BODY: request_body,
        ENTRY_BODY: body,
    }


def encode_envelope(record: Record) -> bytes:
    """The JSON envelope of ``record``: every field except the bodies."""
    return orjson.dumps(record.model_dump(mode="json", exclude=set(_BODY_FIELDS)))


def encode_entry(record: Record) -> dict[bytes, bytes]:
    """The stream entry for ``record``."""
    return entry_from_parts(
        record.record_id, encode_envelope(record), record.request_body, record.body
    )


def decode_entry(fields: Mapping[bytes, bytes]) -> Record:
    """The Record carried by a stream entry.

    Raises :class:`CodecError` saying what is wrong: a missing field, a schema
    version this release does not know (in ``v`` or in the envelope), a broken
    envelope, fields that do not validate, or values out of range
    (:func:`rawtap.shared._limits.record_problem`).
    """
    missing = [
        f.decode()
        for f in (ENTRY_VERSION, ENTRY_ENVELOPE, ENTRY_REQUEST_BODY, ENTRY_BODY)
        if f not in fields
    ]
    if missing:
        raise CodecError(f"entry lacks field(s) {', '.join(missing)}")
    version = fields[ENTRY_VERSION]
    if version != _VERSION_BYTES:
        raise CodecError(
            f"schema version {version[:20]!r} is not supported "
            f"(this release reads version {SCHEMA_VERSION})"
        )
    try:
        envelope: Any = orjson.loads(fields[ENTRY_ENVELOPE])
    except orjson.JSONDecodeError as e:
        raise CodecError(f"envelope is not valid JSON: {e}") from e
    if not isinstance(envelope, dict):
        raise CodecError(f"envelope is a JSON {type(envelope).__name__}, not an object")
    if _BODY_FIELDS & envelope.keys():
        raise CodecError("envelope must not carry the bodies")
    envelope["request_body"] = fields[ENTRY_REQUEST_BODY]
    envelope["body"] = fields[ENTRY_BODY]
    try:
        record = Record.model_validate(envelope)
    except ValidationError as e:
        raise CodecError(f"invalid record: {_one_line(e)}") from e
    rid = fields.get(ENTRY_RECORD_ID)
    if rid is not None and rid != record.record_id.encode():
        raise CodecError(f"entry id {rid[:60]!r} differs from the envelope's record_id")
    problem = record_problem(record)
    if problem is not None:
        raise CodecError(f"invalid record: {problem}")
    return record


def _one_line(error: ValidationError) -> str:
    parts = []
    for err in error.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{loc}: {err['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
