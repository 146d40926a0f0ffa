"""The compiled decoder against the pydantic path it stands in for, entry by entry.

``decode_entry`` tries ``fast_record`` (msgspec) first and decodes the pydantic
way whenever it answers None. These tests generate valid and broken entries
(wrong types, bools and floats for ints, integers beyond 64 bits, missing and
extra fields, bad chunks and enums, nulls, bodies in the envelope, invalid
UTF-8, lone surrogates, duplicate and escaped keys, nested and deep junk,
broken bytes) and hold, for each one:

- when the fast path accepts it, the pydantic path accepts it too, as the same
  Record: equal, the same type for every value down to each chunk, header and
  metadata item, the same field order and set of given fields;
- ``decode_entry`` as shipped (fast path first) gives what the pydantic path
  alone gives: the same Record, or an :class:`EntryError` with the same message,
  producer and seq;
- every entry a producer writes takes the fast path (so it is not trivially
  equivalent by refusing everything), and so does every value at a limit of
  ``record_problem`` that the store accepts.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rawtap.shared._codec as codec
from rawtap.producer._serialize import serialize
from rawtap.shared import BodyForm, EndState, EntryError, Record, decode_entry
from rawtap.shared._fast_decode import fast_record
from rawtap.shared._limits import _INT_FIELDS, I64_MAX, ID_MAX_BYTES, MAX_HEADERS, MAX_LIST_ITEMS

SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,  # the same examples on every run: a failure reproduces
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# Drawing a record costs more than checking it: each one is checked several ways.
# 200 records make 600 valid and 1,600 broken entries, in about 15 s on 2 busy cores.
EXAMPLES = settings(max_examples=200, **SETTINGS)
VALID_VARIANTS = 3
BROKEN_VARIANTS = 8


# -- the two paths -------------------------------------------------------------------------


@contextmanager
def _pydantic_only() -> Iterator[None]:
    saved = codec._fast_record
    codec._fast_record = lambda fields: None
    try:
        yield
    finally:
        codec._fast_record = saved


def _outcome(fields: dict[bytes, Any]) -> Record | tuple[str, str, str | None, int | None]:
    try:
        return decode_entry(fields)
    except EntryError as e:
        return ("EntryError", str(e), e.producer_id, e.seq)
    except Exception as e:  # values Redis never returns (None, int) may fail otherwise: alike
        return (type(e).__name__, str(e), None, None)


def _typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out (True and 1, 1.0 and 1 differ)."""
    if isinstance(value, dict):
        return (type(value), [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_typed(v) for v in value])
    if isinstance(value, float):
        return (float, value.hex())  # -0.0 and 0.0 differ
    return (type(value), value)


def assert_identical(fast: Record, slow: Record) -> None:
    """The two Records are one: values, types, order, given fields, the pydantic slots."""
    assert type(fast) is type(slow) is Record
    assert fast == slow
    assert list(fast.__dict__) == list(slow.__dict__) == list(Record.model_fields)
    assert _typed(fast.__dict__) == _typed(slow.__dict__)
    assert fast.model_fields_set == slow.model_fields_set
    assert type(fast.model_fields_set) is type(slow.model_fields_set)
    assert fast.__pydantic_extra__ == slow.__pydantic_extra__
    assert fast.__pydantic_private__ == slow.__pydantic_private__
    assert fast.model_dump_json() == slow.model_dump_json()
    assert repr(fast) == repr(slow)


def check(fields: dict[bytes, Any]) -> Record | None:
    """Compare the paths on ``fields``; the fast path's answer."""
    fast = fast_record(fields)
    with _pydantic_only():
        slow = _outcome(fields)
    if fast is not None:
        assert isinstance(slow, Record), f"fast path accepted what pydantic refuses: {slow}"
        assert_identical(fast, slow)
    shipped = _outcome(fields)
    if isinstance(slow, Record):
        assert isinstance(shipped, Record)
        assert_identical(shipped, slow)
    else:
        assert shipped == slow
    return fast


# -- JSON text with what orjson.dumps cannot write ----------------------------------------


class Raw(bytes):
    """JSON text written as is (broken numbers, bad escapes, invalid UTF-8, deep nesting)."""


class Obj(list[tuple[Any, Any]]):
    """A JSON object as (key, value) pairs: keys may repeat, or be Raw (escaped) text."""


def dump(value: Any) -> bytes:
    """JSON text of ``value``; ints of any size, Obj and Raw as above."""
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, Obj):
        return b"{" + b",".join(dump(k) + b":" + dump(v) for k, v in value) + b"}"
    if isinstance(value, dict):
        return dump(Obj(value.items()))
    if isinstance(value, list | tuple):
        return b"[" + b",".join(dump(v) for v in value) + b"]"
    if value is None or isinstance(value, bool):
        return orjson.dumps(value)
    if isinstance(value, int):
        return str(value).encode()
    return orjson.dumps(value)  # str, float


# -- strategies ----------------------------------------------------------------------------

# Valid values, a few at a limit (some of them past what the fast path takes: pydantic's).
ints = st.one_of(st.integers(0, 2**40), st.integers(0, I64_MAX), st.sampled_from([0, I64_MAX]))
texts = st.text(max_size=12)
ids = st.text(min_size=1, max_size=40) | st.sampled_from(["x" * 64, "😀" * 64, "r" * 40])
long_ids = st.text(min_size=60, max_size=70) | st.sampled_from(["é" * 128, "a" * 256])
"""Stored, but past the fast path's 64 characters: pydantic's."""
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), I64_MAX), texts,
    st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip
json_values = st.recursive(  # deeper than two levels or big ints: pydantic's
    st.one_of(scalars, st.integers(), st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63) - 1])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
flat = scalars | st.lists(scalars, max_size=3) | st.dictionaries(texts, scalars, max_size=3)
tags = st.dictionaries(
    st.text(max_size=6),
    st.one_of(flat, flat, flat, json_values),
    max_size=4,
)

# Invalid ones, for the broken entries.
EDGE_INTS = [I64_MAX + 1, -1, 2**64 - 1, 2**64, 2**64 + 1, -(2**63), -(2**63) - 1, 10**30]
EDGE_INTS += [-(10**30), 10**400, 1000, 999]
RAW_JUNK = [
    b"1e400", b"-1e400", b"1.0", b"1e2", b"-0", b"-0.0", b"01", b"1.", b".5", b"+1", b"NaN",
    b"Infinity", b"tru", b"nul", b'"\\ud800"', b'"\\udc00x"', b'"\xff"', b'"\xed\xa0\x80"',
    b'"\xc0\x80"', b'"\x00"', b'"\t"', b'"\\u0000"', b'"\\x41"', b'"\\ud83d\\ude00"', b"[1,]",
    b"{,}", b"[" * 1100 + b"]" * 1100, b"[" * 1023 + b"]" * 1023, b"1" + b"0" * 400,
    b'{"a":' * 600 + b"1" + b"}" * 600, b'"' + b"a" * 70 + b'"', b"[[1,2,3]]", b"[[1]]",
    b"[[true,1]]", b"[[1.0,1]]", b'[["1",1]]', b"[1,2]", b"{}", b'{"":1}', b'""', b'"x"',
]  # fmt: skip
junk = st.one_of(
    json_values,
    st.sampled_from(RAW_JUNK).map(Raw),
    st.sampled_from(EDGE_INTS),
    st.sampled_from([True, False, None, 1.0, 0.0, -0.0, 1.5, "1", "true", "", [], {}]),
    st.sampled_from([e.value for e in EndState] + [f.value for f in BodyForm]),
    st.sampled_from(["COMPLETE", "complete ", "Bytes", "wire\x00"]),
)
headers = st.lists(st.tuples(texts, texts), max_size=4)
optional_text = st.one_of(st.none(), texts)

REQUIRED = ("record_id", "producer_id", "seq", "provider", "started_at_ns", "captured_at_ns")


@st.composite
def records(draw: st.DrawFn) -> tuple[Obj, bytes, bytes]:
    """An envelope (most values valid, some at or past a limit) and the two bodies."""
    body = draw(st.binary(max_size=48))
    chunks: list[list[int]] = []
    if draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
        bounds = [0, *cuts, len(body)]
        # Near 2^63 (one record in ten), offsets add up past it: stored, but pydantic's.
        offset = ints if draw(st.integers(0, 9)) == 7 else st.integers(0, 2**40)
        offsets = draw(st.lists(offset, min_size=len(bounds) - 1, max_size=len(bounds) - 1))
        chunks = [[o, b - a] for o, (a, b) in zip(offsets, pairwise(bounds), strict=True)]
    envelope: dict[str, Any] = {
        "schema_version": 1,
        "record_id": draw(long_ids if draw(st.integers(0, 9)) == 7 else ids),
        "producer_id": draw(long_ids if draw(st.integers(0, 9)) == 7 else ids),
        "seq": draw(ints),
        "session_id": draw(optional_text),
        "service": draw(optional_text),
        "traceparent": draw(optional_text),
        "tracestate": draw(optional_text),
        "call_id": draw(optional_text),
        "attempt": draw(st.one_of(st.none(), ints)),
        "provider": draw(st.one_of(st.text(min_size=1, max_size=8), st.just("openai"))),
        "method": draw(optional_text),
        "url": draw(optional_text),
        "request_headers": draw(headers),
        "metadata": draw(tags),
        "status": draw(st.one_of(st.none(), st.integers(0, 999))),
        "response_headers": draw(headers),
        "body_form": draw(st.sampled_from([f.value for f in BodyForm])),
        "stream": bool(chunks),
        "chunks": chunks,
        "started_at_ns": draw(ints),
        "first_byte_ns": draw(st.one_of(st.none(), ints)),
        "ended_ns": draw(st.one_of(st.none(), ints)),
        "captured_at_ns": draw(ints),
        "end_state": draw(st.sampled_from([e.value for e in EndState])),
        "error": draw(optional_text),
        "truncated": draw(st.booleans()),
        "original_size": draw(st.one_of(st.none(), ints)),
        "original_request_size": draw(st.one_of(st.none(), ints)),
        "masked": draw(ints),
        "masked_in": draw(st.lists(texts, max_size=3)),
        "masked_digests": draw(st.lists(texts, max_size=3)),
        "body_decoded_from": draw(optional_text),
        "encoded_size": draw(st.one_of(st.none(), ints)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(set(envelope) - set(REQUIRED))))):
        del envelope[name]  # left out: the model's default, not in model_fields_set
    pairs = Obj(envelope.items())
    if draw(st.booleans()):
        pairs = Obj(draw(st.permutations(pairs)))
    return pairs, draw(st.binary(max_size=16)), body


def _mutate(draw: st.DrawFn, pairs: Obj) -> Obj:
    keys = [k for k, _ in pairs if isinstance(k, str)] or ["seq"]
    key = draw(st.sampled_from([*keys, *REQUIRED, "chunks", "metadata", "end_state"]))
    kind = draw(st.integers(0, 8))
    out = Obj(pairs)
    if kind == 0:  # a value replaced by junk
        out = Obj((k, draw(junk) if k == key else v) for k, v in out)
    elif kind == 1:  # a field left out (required ones too)
        out = Obj((k, v) for k, v in out if k != key)
    elif kind == 2:  # an unknown field, or a body in the envelope
        extra = draw(st.sampled_from(["bogus", "body", "request_body", "Seq", "seq ", ""]))
        out.insert(draw(st.integers(0, len(out))), (extra, draw(junk)))
    elif kind == 3:  # a key given twice: the last one wins in orjson
        value = draw(st.one_of(junk, st.sampled_from([v for _, v in out] or [0])))
        out.insert(draw(st.integers(0, len(out))), (key, value))
    elif kind == 4:  # a key spelled with an escape, same key once decoded
        spelled = "".join(f"\\u{ord(c):04x}" if i == 0 else c for i, c in enumerate(key))
        out = Obj((Raw(f'"{spelled}"'.encode()) if k == key else k, v) for k, v in out)
    elif kind == 5:  # metadata that orjson and msgspec might read apart
        out = Obj((k, v) for k, v in out if k != "metadata")
        out.append(("metadata", draw(st.one_of(junk, st.dictionaries(texts, junk, max_size=3)))))
    elif kind == 6:  # chunks that do not fit
        bad = draw(
            st.one_of(
                st.lists(st.lists(st.one_of(ints, junk), max_size=3), max_size=4),
                st.lists(st.tuples(ints, ints), max_size=4),
                junk,
            )
        )
        out = Obj((k, bad if k == "chunks" else v) for k, v in out)
        if "chunks" not in keys:
            out.append(("chunks", bad))
    return out


def _text_mutate(draw: st.DrawFn, text: bytes) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0 and text:  # one byte changed
        i = draw(st.integers(0, len(text) - 1))
        return text[:i] + bytes([draw(st.integers(0, 255))]) + text[i + 1 :]
    if kind == 1:  # cut short
        return text[: draw(st.integers(0, len(text)))]
    if kind == 2:  # around the document
        before = draw(st.sampled_from([b"", b" ", b"\n\t\r ", b"\xef\xbb\xbf", b"\x0c", b"\x00"]))
        after = draw(st.sampled_from([b"", b" ", b"\n", b"x", b"{}", b"\x00", b",", b" \x0c"]))
        return before + text + after
    if kind == 3:
        return _indented(text)
    if kind == 4 and text:  # bytes that are not UTF-8, somewhere
        i = draw(st.integers(0, len(text)))
        return text[:i] + draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80"])) + text[i:]
    return text


def _indented(text: bytes) -> bytes:
    """The same document spaced out, where orjson can write it again."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return text


def entry(draw: st.DrawFn, base: tuple[Obj, bytes, bytes], broken: bool) -> dict[bytes, Any]:
    """A stream entry of ``base``: as generated, or (``broken``) with things wrong."""
    pairs, request_body, body = base
    if broken:
        for _ in range(draw(st.integers(1, 3))):
            pairs = _mutate(draw, pairs)
    text = dump(pairs)
    if broken and draw(st.booleans()):
        text = _text_mutate(draw, text)
    elif not broken and draw(st.booleans()):
        text = _indented(text)
    envelope = dict(p for p in pairs if isinstance(p[0], str))
    rid = envelope.get("record_id")
    fields: dict[bytes, Any] = {
        b"v": b"1",
        b"rid": rid.encode("utf-8", "surrogatepass") if isinstance(rid, str) else b"x",
        b"env": text,
        b"req": request_body,
        b"body": body,
    }
    if broken and draw(st.booleans()):
        name = draw(st.sampled_from([b"v", b"rid", b"env", b"req", b"body"]))
        change = draw(st.integers(0, 2))
        if change == 0:
            del fields[name]
        elif change == 1 and name == b"v":
            fields[name] = draw(st.sampled_from([b"01", b"2", b"0", b"", b"1 ", b"one", b"1.0"]))
        elif change == 1:
            fields[name] = draw(st.sampled_from([b"", b"other", b"\xff", body + b"x"]))
        else:
            fields[name] = draw(st.sampled_from([None, "1", bytearray(b"1"), 1]))
    return fields


# -- the tests -----------------------------------------------------------------------------


@EXAMPLES
@given(records(), st.data())
def test_generated_entries_decode_alike_on_both_paths(
    base: tuple[Obj, bytes, bytes], data: st.DataObject
) -> None:
    for _ in range(VALID_VARIANTS):
        check(data.draw(st.composite(entry)(base, broken=False)))


@EXAMPLES
@given(records(), st.data())
def test_broken_entries_are_refused_alike_or_left_to_pydantic(
    base: tuple[Obj, bytes, bytes], data: st.DataObject
) -> None:
    for _ in range(BROKEN_VARIANTS):
        check(data.draw(st.composite(entry)(base, broken=True)))


def _producer_entry(metadata: dict[str, Any] | None, details: dict[str, Any]) -> dict[bytes, Any]:
    item = (7, 0, (1_764_000_000_123_456_789, "openai", b'{"id":"x"}', metadata, "u-1", details))
    return serialize(item, "ab" * 8, "svc", 8 * 1024 * 1024).entry


@settings(max_examples=100, **SETTINGS)
@given(
    metadata=st.one_of(
        st.none(),
        st.dictionaries(
            texts, st.one_of(texts, st.integers(-(2**63), I64_MAX), st.booleans(), st.none())
        ),
    ),
    streamed=st.booleans(),
    status=st.one_of(st.none(), st.integers(100, 599)),
    headers=headers,
)
def test_every_entry_a_producer_writes_takes_the_fast_path(
    metadata: dict[str, Any] | None, streamed: bool, status: int | None, headers: Any
) -> None:
    details: dict[str, Any] = {
        "status": status,
        "method": "POST",
        "url": "https://api.openai.com/v1/chat/completions?key=sk-12345678901234567890",
        "request_headers": [("authorization", "Bearer sk-12345678901234567890"), *headers],
        "response_headers": headers,
        "request_body": b'{"model":"gpt-4o-mini"}',
    }
    if streamed:
        details["chunks"] = [b"data: 1\n\n", b"data: [DONE]\n\n"]
        details["chunk_offsets_ns"] = [1_000, 2_000]
    assert check(_producer_entry(metadata, details)) is not None


def _forged(**changes: Any) -> dict[bytes, Any]:
    entry = _producer_entry({"tenant": "acme"}, {"status": 200})
    envelope = orjson.loads(entry[b"env"])
    envelope.update(changes)
    entry[b"env"] = dump(envelope)
    entry[b"rid"] = str(envelope["record_id"]).encode()
    return entry


@pytest.mark.parametrize("name", _INT_FIELDS)
def test_each_64_bit_field_takes_the_fast_path_at_its_bounds_and_not_past_them(name: str) -> None:
    # Over record_problem's own list of fields: one it bounds and the fast path does not fails.
    for value in (0, I64_MAX):
        assert check(_forged(**{name: value})) is not None
    for value in (-1, I64_MAX + 1, 2**64):
        assert check(_forged(**{name: value})) is None


@pytest.mark.parametrize(
    ("changes", "fast"),
    [
        ({"status": 999}, True),
        ({"status": 1000}, False),
        ({"record_id": "é" * (ID_MAX_BYTES // 4)}, True),
        ({"record_id": "a" * ID_MAX_BYTES}, False),  # stored, but left to pydantic
        ({"producer_id": "😀" * (ID_MAX_BYTES // 4 + 1)}, False),
        ({"response_headers": [["a", "b"]] * MAX_HEADERS}, True),
        ({"response_headers": [["a", "b"]] * (MAX_HEADERS + 1)}, False),
        ({"request_headers": [["a", "b" * (1 << 20)]]}, False),
        ({"masked_in": ["body"] * MAX_LIST_ITEMS}, True),
        ({"masked_digests": ["x"] * (MAX_LIST_ITEMS + 1)}, False),
        ({"metadata": {"n": 2**64 - 1}}, False),  # orjson reads it exactly: pydantic decides
        ({"metadata": {"n": 2**64}}, False),  # orjson reads it as a float
        ({"metadata": {"deep": [[1]]}}, False),
        ({"metadata": {"x": 1.5, "y": [1, "a", None], "z": {"k": False}}}, True),
        ({"schema_version": 2}, False),
        ({"end_state": "COMPLETE"}, False),
    ],
)
def test_limits_of_record_problem_hold_on_the_fast_path(
    changes: dict[str, Any], fast: bool
) -> None:
    assert (check(_forged(**changes)) is not None) is fast


def test_chunks_are_bounded_and_cover_the_body() -> None:
    body = b"0123456789"
    for chunks, fast in [
        ([[0, 4], [I64_MAX, 6]], True),
        ([[0, 4], [I64_MAX + 1, 6]], False),
        ([[-1, 4], [1, 6]], False),
        ([[0, 11], [1, -1]], False),  # adds up, one negative
        ([[0, 4], [1, 5]], False),  # short of the body
        ([[0, 4, 1], [1, 6]], False),
        ([[True, 4], [1, 6]], False),
        ([[0.0, 4], [1, 6]], False),
    ]:
        entry = _forged(chunks=chunks, stream=True)
        entry[b"body"] = body
        assert (check(entry) is not None) is fast, chunks


def test_a_body_in_the_envelope_is_refused_with_the_pydantic_message() -> None:
    entry = _forged(body=base64.b64encode(b"x").decode())
    assert check(entry) is None
    with pytest.raises(EntryError, match="envelope must not carry the bodies"):
        decode_entry(entry)


def test_msgspec_is_imported_by_the_first_decode_never_by_the_producer() -> None:
    code = (
        "import sys, rawtap.producer, rawtap.shared as s; "
        "print('msgspec' in sys.modules); "
        "s.decode_entry(s.encode_entry(s.Record(record_id='r', producer_id='p', seq=0, "
        "provider='openai', started_at_ns=1, captured_at_ns=1))); "
        "print('msgspec' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
