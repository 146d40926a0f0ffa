"""A Record to and from a Redis stream entry.

An entry has five fields (named in :mod:`rawtap.shared._wire`); the bodies
travel as raw Redis bulk strings (no base64, no JSON escaping) and everything
else as one orjson envelope.

The producer builds entries from a plain dict with :func:`entry_from_parts`
(no pydantic on its writer thread); the worker validates them into a
:class:`Record` with :func:`decode_entry`, once: what it returns is trusted
downstream, and what it refuses carries the producer and seq it names.
"""

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from rawtap.shared._errors import CodecError, EntryError
from rawtap.shared._limits import record_problem
from rawtap.shared._record import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, Record, schema_problem
from rawtap.shared._wire import (
    ENTRY_BODY,
    ENTRY_ENVELOPE,
    ENTRY_RECORD_ID,
    ENTRY_REQUEST_BODY,
    ENTRY_VERSION,
)

_BODY_FIELDS = frozenset({"request_body", "body"})
_REQUIRED_ORDER = (ENTRY_VERSION, ENTRY_ENVELOPE, ENTRY_REQUEST_BODY, ENTRY_BODY)
_REQUIRED = frozenset(_REQUIRED_ORDER)
_VERSION_BYTES = str(SCHEMA_VERSION).encode()

FastDecoder = Callable[[Mapping[bytes, bytes]], Record | None]
_fast_record: FastDecoder | None = None
"""``rawtap.shared._fast_decode.fast_record``, loaded by the first decode (msgspec with it)."""


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
    """The Record carried by a stream entry: the one validation an entry gets on ingress.

    Raises :class:`EntryError` (a :class:`CodecError`) saying what is wrong: a
    missing field, a schema version this release does not read (the ``v``
    field, by :func:`rawtap.shared.schema_problem`; the envelope's
    ``schema_version`` must agree with it), a broken envelope, fields that do
    not validate, or values out of range (:func:`rawtap.shared._limits.record_problem`).
    The error names the producer and seq the envelope gave, when it gave them.

    An entry is first tried by a compiled decoder (msgspec) that accepts only
    what this validation accepts, as the same Record; whatever it does not
    accept is decided here, so every refusal and its message are this path's.
    """
    fast = _fast_record or _load_fast_record()
    record = fast(fields)
    if record is not None:
        return record
    raw = fields.get(ENTRY_ENVELOPE)
    envelope: Any = None
    broken: orjson.JSONDecodeError | None = None
    if raw is not None:
        # Parsed first, whatever else is wrong: a dead letter names whom it came from.
        try:
            envelope = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            broken = e
    try:
        return _validate(fields, envelope, broken)
    except CodecError as e:
        raise EntryError(str(e), *_identity(envelope)) from e.__cause__


def _load_fast_record() -> FastDecoder:
    # Imported on first use, not with rawtap.shared: the producer never decodes an entry.
    global _fast_record  # noqa: PLW0603 - resolved once per process
    from rawtap.shared._fast_decode import fast_record

    _fast_record = fast_record
    return fast_record


def entry_identity(fields: Mapping[bytes, bytes]) -> tuple[str | None, int | None]:
    """The ``producer_id`` and ``seq`` an entry's envelope names, best effort (None if not).

    For an entry the worker refuses without decoding it (delivered too often);
    :func:`decode_entry` names them in its :class:`EntryError` from the one parse.
    """
    try:
        return _identity(orjson.loads(fields.get(ENTRY_ENVELOPE, b"")))
    except orjson.JSONDecodeError:
        return None, None


def _identity(envelope: Any) -> tuple[str | None, int | None]:
    if not isinstance(envelope, dict):
        return None, None
    pid, seq = envelope.get("producer_id"), envelope.get("seq")
    return (pid if isinstance(pid, str) else None), (seq if isinstance(seq, int) else None)


def _validate(
    fields: Mapping[bytes, bytes], envelope: Any, broken: orjson.JSONDecodeError | None
) -> Record:
    if not fields.keys() >= _REQUIRED:
        missing = [f.decode() for f in _REQUIRED_ORDER if f not in fields]
        raise CodecError(f"entry lacks field(s) {', '.join(missing)}")
    version = fields[ENTRY_VERSION]
    problem = schema_problem(version)
    if problem is not None:
        raise CodecError(problem)
    if broken is not None:
        raise CodecError(f"envelope is not valid JSON: {broken}") from broken
    if not isinstance(envelope, dict):
        raise CodecError(f"envelope is a JSON {type(envelope).__name__}, not an object")
    if "body" in envelope or "request_body" in envelope:
        raise CodecError("envelope must not carry the bodies")
    # The rule on the value as sent, before validation coerces it (1.0, "1" and true would
    # become 1): the envelope is stored as it arrived and read back under this same rule.
    sent = envelope.get("schema_version", SCHEMA_VERSION)
    if type(sent) is not int or sent not in READABLE_SCHEMA_VERSIONS:
        problem = schema_problem(sent, name="schema_version")
        if problem is not None:
            raise CodecError(f"invalid record: {problem}")
    envelope["request_body"] = fields[ENTRY_REQUEST_BODY]
    envelope["body"] = fields[ENTRY_BODY]
    try:
        record = Record.model_validate(envelope)
    except ValidationError as e:
        raise CodecError(f"invalid record: {_one_line(e)}") from e
    rid = fields.get(ENTRY_RECORD_ID)
    if rid is not None and rid != record.record_id.encode():
        raise CodecError(f"entry id {rid[:60]!r} differs from the envelope's record_id")
    if record.schema_version != int(version):  # both readable (checked above), yet unequal
        raise CodecError(
            f"invalid record: schema_version {record.schema_version} differs from the "
            f"entry's version {version!r}"
        )
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
