"""The worker's compiled decoder: a stream entry to a :class:`Record` without pydantic.

:func:`rawtap.shared.decode_entry` tries :func:`fast_record` first and falls
back to its pydantic path whenever it answers None, so pydantic stays the
schema and the authority: every message a refused entry gets (its dead-letter
reason) is the pydantic path's, and this module only ever *accepts* an entry
that path accepts too, as the same Record (tests/unit/test_fast_decode.py holds
the two equal over generated valid and broken entries).

msgspec decodes the envelope into :class:`Envelope` in C, every occurrence
of every key (a duplicate key is read twice, the last one kept, as orjson
does), with types at least as strict as the model's: ints exclude bools and
floats, strings are strings, enums are their values, chunks are pairs of ints,
no unknown field (so no body in the envelope), no missing required one. The
worker's own limits (:func:`rawtap.shared._limits.record_problem`) are part of
those types or checked after (64-bit bounds, list lengths, identity lengths,
header bytes), at least as tight, so a record accepted here passes
``record_problem`` too. Anything looser (the model's lax coercions of ``1.0``,
``"1"`` or ``true`` to an int, an identity over 64 characters, nested metadata,
a value out of range) is refused here and left to pydantic.

The values msgspec accepts are read alike by orjson, the pydantic path's
parser: strings (UTF-8 checked, surrogates paired, no control characters) and
integers within 64 bits; metadata holds only scalars, lists or objects of them
(floats are correctly rounded by both). The Record is then built from the
values directly (what ``Record.model_construct`` does, without its per-field
Python loop) after the check the model's validator makes (chunk sizes add up
to the body): the same field values and types, field order and set of given
fields as ``Record.model_validate`` gives.

msgspec is imported with this module, which :mod:`rawtap.shared._codec` loads
on the first decode only: the producer never pays for it.
"""

from collections.abc import Callable, Mapping
from itertools import repeat
from typing import Annotated, Any, NamedTuple

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import asdict, astuple
from pydantic import BaseModel

from rawtap.shared._limits import (
    I64_MAX,
    ID_MAX_BYTES,
    MAX_CHUNKS,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_LIST_ITEMS,
)
from rawtap.shared._record import (
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    BodyForm,
    Chunk,
    EndState,
    Record,
)
from rawtap.shared._wire import (
    ENTRY_BODY,
    ENTRY_ENVELOPE,
    ENTRY_RECORD_ID,
    ENTRY_REQUEST_BODY,
    ENTRY_VERSION,
)

# The model's constraints and record_problem's limits, as msgspec types (checked in C).
_Text = Annotated[str, Meta(min_length=1)]
_Id = Annotated[str, Meta(min_length=1, max_length=ID_MAX_BYTES // 4)]
"""At most 4 UTF-8 bytes a character: within the byte limit whatever the text."""
_I64 = Annotated[int, Meta(ge=0, le=I64_MAX)]
_Status = Annotated[int, Meta(ge=0, le=999)]
_Headers = Annotated[list[tuple[str, str]], Meta(max_length=MAX_HEADERS)]
_Chunks = Annotated[list[Chunk], Meta(max_length=MAX_CHUNKS)]
"""Built as Chunks in C; their 64-bit bounds are checked after, over all at once."""
_Texts = Annotated[list[str], Meta(max_length=MAX_LIST_ITEMS)]
_Scalar = str | Annotated[int, Meta(ge=-(2**63), le=I64_MAX)] | float | bool | None
_Metadata = dict[str, _Scalar | list[_Scalar] | dict[str, _Scalar]]
"""``metadata`` as the tags it holds: scalars, lists or objects of them.

Within these types msgspec reads what orjson reads (integers within 64 bits,
floats correctly rounded by both); deeper nesting and larger integers are left
to the pydantic path, whose orjson turns an integer beyond 64 bits into a float.
"""


class Envelope(Struct, kw_only=True, forbid_unknown_fields=True):
    """A record entry's envelope as msgspec decodes it: :class:`Record`'s fields, in order.

    A field the envelope leaves out is ``UNSET`` (so the Record's set of given
    fields is known); the six the model requires have no default here either.
    ``request_body`` and ``body`` travel beside the envelope: they are declared
    to keep the model's field order, and an envelope that names them is refused.
    """

    schema_version: int | UnsetType = UNSET
    record_id: _Id
    producer_id: _Id
    seq: _I64
    session_id: str | UnsetType | None = UNSET
    service: str | UnsetType | None = UNSET
    traceparent: str | UnsetType | None = UNSET
    tracestate: str | UnsetType | None = UNSET
    call_id: str | UnsetType | None = UNSET
    attempt: _I64 | UnsetType | None = UNSET
    provider: _Text
    method: str | UnsetType | None = UNSET
    url: str | UnsetType | None = UNSET
    request_headers: _Headers | UnsetType = UNSET
    request_body: msgspec.Raw | UnsetType = UNSET
    metadata: _Metadata | UnsetType = UNSET
    status: _Status | UnsetType | None = UNSET
    response_headers: _Headers | UnsetType = UNSET
    body: msgspec.Raw | UnsetType = UNSET
    body_form: BodyForm | UnsetType = UNSET
    stream: bool | UnsetType = UNSET
    chunks: _Chunks | UnsetType = UNSET
    started_at_ns: _I64
    first_byte_ns: _I64 | UnsetType | None = UNSET
    ended_ns: _I64 | UnsetType | None = UNSET
    captured_at_ns: _I64
    end_state: EndState | UnsetType = UNSET
    error: str | UnsetType | None = UNSET
    truncated: bool | UnsetType = UNSET
    original_size: _I64 | UnsetType | None = UNSET
    original_request_size: _I64 | UnsetType | None = UNSET
    masked: _I64 | UnsetType = UNSET
    masked_in: _Texts | UnsetType = UNSET
    masked_digests: _Texts | UnsetType = UNSET
    body_decoded_from: str | UnsetType | None = UNSET
    encoded_size: _I64 | UnsetType | None = UNSET


_NAMES: tuple[str, ...] = Envelope.__struct_fields__
if tuple(Record.model_fields) != _NAMES:  # pragma: no cover - a schema change must update both
    raise RuntimeError("Envelope's fields differ from Record's: update rawtap.shared._fast_decode")

_DECODER = msgspec.json.Decoder(Envelope)
_VERSIONS = {str(v).encode(): v for v in READABLE_SCHEMA_VERSIONS}
"""The entry field ``v`` in its only accepted spelling, as ``schema_problem`` reads it."""

_REQUEST_BODY = _NAMES.index("request_body")
_BODY = _NAMES.index("body")

# The four slots ``Record.model_construct`` sets, set through their descriptors (C).
_slots = BaseModel.__dict__
_set_dict = _slots["__dict__"].__set__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__


class _Shape(NamedTuple):
    """Which fields an envelope left out, and what the Record holds for each instead."""

    absent: tuple[int, ...]
    """Their positions in :data:`_NAMES`."""
    fill: tuple[tuple[str, Callable[[], Any]], ...]
    """Each one's name and a maker of its default (a new list or dict where the model makes one)."""
    given: frozenset[str]
    """The Record's ``model_fields_set``: the envelope's fields and the two bodies."""


def _shape(values: tuple[Any, ...]) -> _Shape:
    absent = tuple(
        i for i, v in enumerate(values) if v is UNSET and i not in (_REQUEST_BODY, _BODY)
    )
    fill = []
    for i in absent:
        field = Record.model_fields[_NAMES[i]]
        factory = field.default_factory
        fill.append((_NAMES[i], factory if factory is not None else repeat(field.default).__next__))
    given = frozenset(_NAMES) - {_NAMES[i] for i in absent}
    return _Shape(absent, tuple(fill), given)  # type: ignore[arg-type]


_shapes: dict[int, _Shape] = {}
"""The last shape seen for each number of fields left out: producers send one shape."""


def _shape_of(values: tuple[Any, ...]) -> _Shape:
    count = values.count(UNSET)  # both bodies are always UNSET in the envelope
    shape = _shapes.get(count)
    if shape is not None:
        for i in shape.absent:
            if values[i] is not UNSET:
                break
        else:  # as many left out, and these are: exactly these
            return shape
    shape = _shapes[count] = _shape(values)
    return shape


def fast_record(fields: Mapping[bytes, bytes]) -> Record | None:
    """The Record in ``fields``, or None whenever pydantic's path must decide (or refuse) it.

    None is no verdict: :func:`rawtap.shared.decode_entry` then decodes the
    entry the pydantic way, which says what is wrong if anything is.
    """
    try:
        return _decode(fields)
    except Exception:  # noqa: BLE001 - any surprise is the pydantic path's to judge and name
        return None


def _decode(fields: Mapping[bytes, bytes]) -> Record | None:
    version = _VERSIONS.get(fields.get(ENTRY_VERSION))  # type: ignore[arg-type]
    raw = fields.get(ENTRY_ENVELOPE)
    request_body = fields.get(ENTRY_REQUEST_BODY)
    body = fields.get(ENTRY_BODY)
    if (
        version is None
        or type(raw) is not bytes
        or type(request_body) is not bytes
        or type(body) is not bytes
        # A header list's text is no longer than the JSON holding it: record_problem's
        # byte limit on headers cannot be reached below this size.
        or len(raw) > MAX_HEADER_BYTES
    ):
        return None
    try:
        envelope = _DECODER.decode(raw)
    except msgspec.DecodeError:  # ValidationError included
        return None
    schema = envelope.schema_version
    if schema is UNSET:
        schema = SCHEMA_VERSION
    if schema != version or envelope.request_body is not UNSET or envelope.body is not UNSET:
        return None
    rid = fields.get(ENTRY_RECORD_ID)
    if rid is not None and rid != envelope.record_id.encode():
        return None
    chunks = envelope.chunks
    if chunks:
        offsets, sizes = zip(*chunks, strict=True)
        # Numbers of at least 0 whose sum is within 64 bits are each within 64 bits.
        if min(offsets) < 0 or min(sizes) < 0 or sum(offsets) > I64_MAX:
            return None
        if sum(sizes) != len(body):
            return None

    shape = _shape_of(astuple(envelope))
    record_values = asdict(envelope)  # the model's field order
    for name, default in shape.fill:
        record_values[name] = default()
    record_values["request_body"] = request_body
    record_values["body"] = body
    record: Record = Record.__new__(Record)
    _set_dict(record, record_values)
    _set_fields_set(record, set(shape.given))
    _set_extra(record, None)
    _set_private(record, None)
    return record
