"""What a worker refuses before the store sees it: values no real record or report has.

A record or report that passes pydantic's types can still carry values that make
no sense (a negative size, a ``seq`` beyond 64 bits, ten million headers) and
that a store either cannot hold or would hold as nonsense. :func:`record_problem`
and :func:`report_problem` name the first such value; the worker dead-letters
the entry with that reason (docs/reliability.md, "Entries the worker refuses").

These checks run on ingress only, never when a stored record is read back, so a
row stored by an older release stays readable whatever the limits become.
"""

from functools import partial
from itertools import chain
from operator import attrgetter, is_not
from typing import TYPE_CHECKING

from rawtap.shared._record import Chunk, Record

if TYPE_CHECKING:  # _report imports this module
    from rawtap.shared._report import ProducerReport

I64_MAX = 2**63 - 1
"""The largest value every integer column holds (SQLite INTEGER, PostgreSQL bigint)."""

ID_MAX_BYTES = 256
"""``record_id`` and ``producer_id`` are identities (keys, reconciliation), so they are
refused beyond this length rather than cut; rawtap's own are 40 and 16 characters."""

MAX_HEADERS = 10_000
"""Headers per list (request or response); real responses carry fewer than 100."""

MAX_HEADER_BYTES = 1 << 20
"""UTF-8 bytes of one header list, names and values (servers refuse more than ~64 KiB)."""

MAX_CHUNKS = 1_000_000
"""Chunk boundaries per record."""

MAX_LIST_ITEMS = 10_000
"""Items of ``masked_in`` and ``masked_digests``."""

MAX_REPORT_REASONS = 100
MAX_REASON_CHARS = 200
MAX_REPORT_RANGES = 1_000_000
"""Seq ranges in one producer report, over all reasons."""


def _out_of_range(value: int | None, *, low: int = 0, high: int = I64_MAX) -> bool:
    return value is not None and not low <= value <= high


def _too_long(text: str) -> bool:
    # Length in characters bounds the byte length at 4x: skip the encode for short ids.
    return len(text) > ID_MAX_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > (
        ID_MAX_BYTES
    )


def _chunks_in_range(chunks: list[Chunk]) -> bool:
    # min/max run in C: a streamed record has tens to hundreds of chunks.
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    offsets, sizes = zip(*chunks, strict=True)
    return (
        min(offsets) >= 0 and min(sizes) >= 0 and max(offsets) <= I64_MAX and max(sizes) <= I64_MAX
    )


_INT_FIELDS = (
    "seq",
    "started_at_ns",
    "captured_at_ns",
    "first_byte_ns",
    "ended_ns",
    "attempt",
    "original_size",
    "original_request_size",
    "encoded_size",
    "masked",
)
"""The integer fields a store holds in 64-bit columns: each must lie in 0 … 2^63-1."""

_ints_of = attrgetter(*_INT_FIELDS)
_given = partial(is_not, None)


def record_problem(record: Record) -> str | None:
    """Why a worker must refuse ``record`` (one line), or None when it may be stored.

    Part of :func:`rawtap.shared.decode_entry`'s one pass, after the model's own
    validation (types, ``seq`` and ``masked`` not negative, chunks covering the
    body) and the schema rule (:func:`rawtap.shared.schema_problem`), which it
    does not repeat. Every record pays for it, so each check is first made over
    all its values at once in C (``min``/``max``/``sum`` over ``map``); only a
    record that fails one is searched for the value to name.
    """
    for name in ("record_id", "producer_id"):
        if _too_long(getattr(record, name)):
            return f"{name} is longer than {ID_MAX_BYTES} bytes"
    ints = list(filter(_given, _ints_of(record)))  # seq and started/captured are always set
    if min(ints) < 0 or max(ints) > I64_MAX:
        for name in _INT_FIELDS:
            value = getattr(record, name)
            if _out_of_range(value):
                return f"{name} {value} is outside 0 … 2^63-1"
    if _out_of_range(record.status, high=999):
        return f"status {record.status} is not an HTTP status (0 … 999)"
    for name in ("request_headers", "response_headers"):
        headers = getattr(record, name)
        if len(headers) > MAX_HEADERS:
            return f"{name} has {len(headers)} entries (at most {MAX_HEADERS})"
        # latin-1: one byte per character
        size = sum(map(len, chain.from_iterable(headers)))
        if size > MAX_HEADER_BYTES:
            return f"{name} hold {size} bytes (at most {MAX_HEADER_BYTES})"
    if len(record.chunks) > MAX_CHUNKS:
        return f"chunks has {len(record.chunks)} entries (at most {MAX_CHUNKS})"
    if record.chunks and not _chunks_in_range(record.chunks):
        i, chunk = next(
            (i, c)
            for i, c in enumerate(record.chunks)
            if _out_of_range(c.offset_ns) or _out_of_range(c.size)
        )
        return f"chunk {i} ({chunk.offset_ns} ns, {chunk.size} bytes) is out of range"
    if len(record.masked_in) > MAX_LIST_ITEMS or len(record.masked_digests) > MAX_LIST_ITEMS:
        name = "masked_in" if len(record.masked_in) > MAX_LIST_ITEMS else "masked_digests"
        return f"{name} has more than {MAX_LIST_ITEMS} items"
    return None


def report_problem(report: "ProducerReport") -> str | None:
    """Why a worker must refuse ``report`` (one line), or None when it may be accounted.

    A report is folded into the ledger that reconciliation trusts, so every
    range must be ordered, disjoint and below ``next_seq`` (the producer's
    accepted count): a forged or corrupted report is refused, never summed.
    """
    if _too_long(report.producer_id):
        return f"producer_id is longer than {ID_MAX_BYTES} bytes"
    if _out_of_range(report.next_seq):
        return f"next_seq {report.next_seq} is outside 0 … 2^63-1"
    if _out_of_range(report.at_ns):
        return f"at_ns {report.at_ns} is outside 0 … 2^63-1"
    if len(report.dropped) > MAX_REPORT_REASONS:
        return f"{len(report.dropped)} drop reasons (at most {MAX_REPORT_REASONS})"
    total = 0
    for reason, ranges in report.dropped.items():
        if not reason or len(reason) > MAX_REASON_CHARS:
            return f"drop reason {reason[:40]!r} is empty or longer than {MAX_REASON_CHARS}"
        total += len(ranges)
        if total > MAX_REPORT_RANGES:
            return f"more than {MAX_REPORT_RANGES} dropped ranges"
        previous = -1
        for lo, hi in ranges:
            if not 0 <= lo <= hi:
                return f"dropped range {lo}-{hi} ({reason}) is reversed or negative"
            if lo <= previous:
                return f"dropped range {lo}-{hi} ({reason}) is out of order or overlaps"
            if hi >= report.next_seq:
                return (
                    f"dropped range {lo}-{hi} ({reason}) is beyond the "
                    f"{report.next_seq} records accepted"
                )
            previous = hi
    return None
