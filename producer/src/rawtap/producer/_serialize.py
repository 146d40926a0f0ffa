"""Pending items to stream entries, on the writer thread.

This is where everything the hot path deferred happens: the record id is
formatted, ``raw_response`` becomes bytes, oversized bodies are truncated with
a marker, and the envelope is serialized with orjson. No pydantic model is
built here; the envelope's keys are :class:`rawtap.shared.Record`'s fields,
which the round-trip tests hold to.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from rawtap.producer import _redact
from rawtap.producer._details import DETAIL_KEYS
from rawtap.shared import SCHEMA_VERSION, BodyForm, EndState, entry_from_parts

_END_STATES = frozenset(s.value for s in EndState)
_BODY_FORMS = frozenset(f.value for f in BodyForm)
_ENVELOPE_OPTIONS = orjson.OPT_NON_STR_KEYS
_DETAIL_KEYS_SUPERSET = DETAIL_KEYS.issuperset
# Plain strings: an enum member's ``.value`` is a descriptor call, and serialize()
# runs once per record on the writer thread (its cost bounds the drain rate).
_BYTES = BodyForm.BYTES.value
_STR = BodyForm.STR.value
_JSON = BodyForm.JSON.value
_SDK_OBJECT = BodyForm.SDK_OBJECT.value
_REPR = BodyForm.REPR.value
_COMPLETE = EndState.COMPLETE.value
_ERROR = EndState.ERROR.value


def _envelope_default(value: object) -> object:
    # User metadata is free-form: keep what cannot be JSON as its text, never fail the record.
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class SerializedRecord:
    """A record ready to send: its id, its stream entry, its shard, and what happened on the way."""

    __slots__ = ("entry", "fallback", "record_id", "seq", "session_id", "shard", "truncated")

    def __init__(
        self,
        seq: int,
        record_id: str,
        entry: dict[bytes, bytes],
        *,
        fallback: bool,
        truncated: bool,
        session_id: str | None = None,
    ) -> None:
        self.seq = seq
        self.record_id = record_id
        self.entry = entry
        self.fallback = fallback
        self.truncated = truncated
        self.session_id = session_id
        """What routes the record to its shard (kept in its journal frame too)."""
        self.shard = 0


def body_bytes(raw: object) -> tuple[bytes, str, str | None]:
    """``raw_response`` as bytes, the :class:`BodyForm` it came in, and an error if it fell back."""
    if raw is None:
        return b"", _BYTES, None
    if isinstance(raw, bytes):
        return raw, _BYTES, None
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw), _BYTES, None
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass"), _STR, None
    try:
        dump = getattr(raw, "model_dump_json", None)
        if callable(dump):  # a pydantic model, e.g. an SDK response object
            text = dump(by_alias=True, exclude_unset=True)
            return str(text).encode("utf-8", "surrogatepass"), _SDK_OBJECT, None
        return orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS), _JSON, None
    except Exception as e:  # noqa: BLE001 - any object may be handed to us; never fail the record
        error = f"raw_response could not be serialized ({type(e).__name__}: {e}); stored repr()"
    try:
        text = repr(raw)
    except Exception as e:  # noqa: BLE001 - a broken __repr__ must not lose the record either
        text = f"<unrepresentable {type(raw).__qualname__}: {type(e).__name__}>"
    return text.encode("utf-8", "surrogatepass"), _REPR, error


def _cut_chunks(chunks: list[list[int]], keep: int) -> list[list[int]]:
    out: list[list[int]] = []
    left = keep
    for offset, size in chunks:
        if left <= 0:
            break
        out.append([offset, min(size, left)])
        left -= size
    return out


def _response_body(
    raw: object, d: dict[str, Any], errors: list[str]
) -> tuple[bytes, str, list[list[int]]]:
    """The response body, its form and its chunk boundaries; problems go to ``errors``."""
    chunks_in = d.get("chunks")
    chunk_pairs: list[list[int]] = []
    if chunks_in is not None:
        pieces = [bytes(c) for c in chunks_in]
        body = b"".join(pieces)
        form = _BYTES
        offsets = list(d.get("chunk_offsets_ns") or ())
        if len(offsets) != len(pieces):
            if offsets:
                errors.append("chunk_offsets_ns length differs from chunks; offsets dropped")
            offsets = [0] * len(pieces)
        chunk_pairs = [[int(o), len(p)] for o, p in zip(offsets, pieces, strict=True)]
    else:
        body, form, fallback_error = body_bytes(raw)
        if fallback_error:
            errors.append(fallback_error)
    form = d.get("body_form", form)
    if form not in _BODY_FORMS:
        errors.append(f"unknown body_form {form!r}; kept as bytes")
        form = _BYTES
    return body, form, chunk_pairs


def _truncate(
    body: bytes,
    body_size: int,
    request_body: bytes,
    chunk_pairs: list[list[int]],
    max_record_bytes: int,
) -> tuple[bytes, bytes, list[list[int]], int | None, int | None]:
    """Cut the bodies to ``max_record_bytes``; their original sizes where cut.

    ``body_size`` is the response body's true size, which is more than
    ``len(body)`` when the tap already stopped holding it.
    """
    original_size = original_request_size = None
    # The response is the point of the record: the request gets what the body
    # leaves of the budget, but never less than half of it. Judged on the true size,
    # so where the tap happened to stop holding bytes changes nothing.
    request_cap = max(max_record_bytes // 2, max_record_bytes - body_size)
    if len(request_body) > request_cap:
        original_request_size = len(request_body)
        request_body = request_body[:request_cap]
    body_cap = max_record_bytes - len(request_body)
    if body_size > body_cap or body_size > len(body):  # cut here, or already by the tap
        original_size = body_size
        body = body[:body_cap]
        chunk_pairs = _cut_chunks(chunk_pairs, body_cap)
    return body, request_body, chunk_pairs, original_size, original_request_size


def _body_size(claimed: object, held: int, errors: list[str]) -> int:
    """The body's true size: ``original_size`` from the details when it is sound."""
    if claimed is None:
        return held
    if type(claimed) is not int or claimed < held:
        errors.append(f"original_size {claimed!r} is not a size of at least {held}; ignored")
        return held
    return claimed


def serialize(
    item: Sequence[Any],
    producer_id: str,
    service: str | None,
    max_record_bytes: int,
    redact_names: tuple[str, ...] = (),
) -> SerializedRecord:
    """Turn one buffered item into a stream entry, credentials masked.

    ``item`` is ``(seq, size, (captured_at_ns, provider, raw_response,
    request_metadata, session_id, details))`` as ``Recorder.record`` queued it;
    ``redact_names`` adds credential header/parameter names (``RAWTAP_REDACT_NAMES``).
    """
    seq, _size, fields = item
    captured_at_ns, provider, raw, metadata, session_id, details = fields
    d: dict[str, Any] = details or {}
    get = d.get
    errors: list[str] = []
    if d and not _DETAIL_KEYS_SUPERSET(d.keys()):
        unknown = d.keys() - DETAIL_KEYS
        errors.append(f"unknown record details ignored: {', '.join(sorted(unknown))}")

    if not isinstance(provider, str) or not provider:
        errors.append(f"provider {provider!r} is not a name; recorded as 'unknown'")
        provider = "unknown"
    if session_id is not None and not isinstance(session_id, str):
        session_id = str(session_id)
    if metadata is not None and not isinstance(metadata, Mapping):
        errors.append(f"request_metadata was a {type(metadata).__name__}, not a mapping")
        metadata = {"value": metadata}
    status = get("status")
    if status is not None and not isinstance(status, int):
        errors.append(f"status {status!r} is not an integer; dropped")
        status = None

    chunks_in = get("chunks")
    chunk_pairs: list[list[int]]
    if chunks_in is None and type(raw) is bytes and "body_form" not in d:
        body, form, chunk_pairs = raw, _BYTES, []  # the common case, as _response_body does it
    else:
        body, form, chunk_pairs = _response_body(raw, d, errors)
    request_body = get("request_body", b"")
    if type(request_body) is not bytes:
        request_body = bytes(request_body)
    held = len(body)
    body_size = _body_size(get("original_size"), held, errors)
    # make_record_id, inlined (one call less per record); the round-trip tests hold them equal.
    record_id = f"{captured_at_ns // 1_000_000:012x}{producer_id}{seq:012x}"

    # Credentials, before truncation: a secret cut in half by it would leave a prefix.
    red = _redact.redact_record(
        d, body, chunk_pairs, request_body, max_record_bytes, redact_names, errors
    )
    body, chunk_pairs, request_body, url, error = (
        red.body,
        red.chunks,
        red.request_body,
        red.url,
        red.error,
    )
    if len(body) != held:
        # Masking stored the decoded body of a compressed one: sizes count decoded bytes
        # now, plus whatever the tap counted but did not hold.
        body_size = len(body) + (body_size - held)
    truncated = body_size > len(body) or body_size + len(request_body) > max_record_bytes
    original_size = original_request_size = None
    if truncated:
        body, request_body, chunk_pairs, original_size, original_request_size = _truncate(
            body, body_size, request_body, chunk_pairs, max_record_bytes
        )

    end_state = get("end_state", _COMPLETE)
    if end_state not in _END_STATES:
        errors.append(f"unknown end_state {end_state!r}; recorded as error")
        end_state = _ERROR
    if errors:
        error = "; ".join([error, *errors] if error else errors)
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "record_id": record_id,
        "producer_id": producer_id,
        "seq": seq,
        "session_id": session_id,
        "service": service,
        "traceparent": get("traceparent"),
        "tracestate": get("tracestate"),
        "call_id": get("call_id"),
        "attempt": get("attempt"),
        "provider": provider,
        "method": get("method"),
        "url": url,
        "request_headers": red.request_headers,
        "metadata": dict(metadata) if metadata else {},
        "status": status,
        "response_headers": red.response_headers,
        "body_form": form,
        "stream": bool(get("stream", chunks_in is not None)),
        "chunks": chunk_pairs,
        "started_at_ns": get("started_at_ns", captured_at_ns),
        "first_byte_ns": get("first_byte_ns"),
        "ended_ns": get("ended_ns"),
        "captured_at_ns": captured_at_ns,
        "end_state": end_state,
        "error": error,
        "truncated": truncated,
        "original_size": original_size,
        "original_request_size": original_request_size,
    }
    # Only when something was masked: records stay readable by older consumers.
    red.add_to(envelope, record_id)
    packed = orjson.dumps(envelope, default=_envelope_default, option=_ENVELOPE_OPTIONS)
    return SerializedRecord(
        seq,
        record_id,
        entry_from_parts(record_id, packed, request_body, body),
        fallback=form == _REPR,
        truncated=truncated,
        session_id=session_id,
    )
