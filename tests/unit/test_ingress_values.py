"""The per-record checks the worker's hot path makes cheaply, tested as classes, not instances.

``record_problem`` checks every 64-bit field at once (min/max) and searches for
the one to name only when that fails; the stores' text copies take a fast path
for ASCII. Each test covers every member of its class, so a field left out of
the fast path (or a character the fast path misses) fails here.
"""

from __future__ import annotations

import orjson
import pytest

from rawtap.consumer.store._rows import FILTER_MAX_BYTES, filter_text, safe_text
from rawtap.shared import EntryError, decode_entry, encode_entry
from rawtap.shared._limits import I64_MAX, MAX_LIST_ITEMS
from tests.support.records import make_record

INT_FIELDS = (
    "seq", "started_at_ns", "captured_at_ns", "first_byte_ns", "ended_ns", "attempt",
    "original_size", "original_request_size", "encoded_size", "masked",
)  # fmt: skip


def _forged(**changes: object) -> dict[bytes, bytes]:
    entry = encode_entry(make_record(body=b"{}"))
    envelope = orjson.loads(entry[b"env"])
    envelope.update(changes)
    entry[b"env"] = orjson.dumps(envelope)
    return entry


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("value", [-1, I64_MAX + 1])
def test_every_64_bit_field_out_of_range_is_refused_by_name(name: str, value: int) -> None:
    if value < 0 and name in ("seq", "masked"):
        expected = name  # the model's own ge=0 refuses it first
    else:
        expected = f"{name} {value} is outside 0 … 2^63-1"
    entry = _forged(**{name: value})
    with pytest.raises(EntryError, match=expected.replace("^", r"\^").replace(".", r"\.")):
        decode_entry(entry)


@pytest.mark.parametrize("name", INT_FIELDS)
def test_every_64_bit_field_at_its_bounds_is_stored(name: str) -> None:
    for value in (0, I64_MAX):
        decode_entry(_forged(**{name: value}))


@pytest.mark.parametrize("name", ["masked_in", "masked_digests"])
def test_masked_lists_over_the_limit_are_refused_by_name(name: str) -> None:
    with pytest.raises(EntryError, match=f"{name} has more than {MAX_LIST_ITEMS} items"):
        decode_entry(_forged(**{name: ["x"] * (MAX_LIST_ITEMS + 1)}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("nul\x00in ascii", "nul\ufffdin ascii"),
        ("\x00" * 3, "\ufffd" * 3),
        ("naïve\x00", "naïve\ufffd"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("emoji 😀 kept", "emoji 😀 kept"),
        ("", ""),
        (None, None),
    ],
)
def test_safe_text_replaces_nul_and_lone_surrogates_whatever_the_script(
    value: str | None, expected: str | None
) -> None:
    assert safe_text(value) == expected


@pytest.mark.parametrize("text", ["a" * 5000, "é" * 5000, "😀" * 5000, "a" * 1023 + "é" * 10])
def test_filter_text_cuts_to_the_byte_limit_at_a_character_boundary(text: str) -> None:
    cut = filter_text(text)
    assert cut is not None
    assert len(cut.encode("utf-8")) <= FILTER_MAX_BYTES
    assert text.startswith(cut)
    assert len(cut.encode("utf-8")) > FILTER_MAX_BYTES - 4
