"""Producer reports: how a producer accounts for every ``seq`` it accepted.

A producer that had to drop records it had already accepted (its journal was
full, Redis stayed unreachable at exit, a record could not be serialized)
cannot send them, but it can say so. It sends a *report* entry on the same
stream: its id, how many records it has accepted so far (``next_seq``), and
the dropped ``seq`` ranges by reason. Workers store reports; reconciliation
then knows, per producer, that::

    accepted (next_seq) = stored + dead-lettered + dropped-with-reason + gaps

where *gaps* are seqs below ``next_seq`` that never arrived (trimmed by
MAXLEN, or lost with Redis), named by range, not guessed.
"""

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rawtap.shared._errors import CodecError
from rawtap.shared._limits import report_problem
from rawtap.shared._wire import ENTRY_ENVELOPE, ENTRY_KIND, KIND_REPORT

SeqRange = tuple[int, int]
"""An inclusive range of seqs, ``(first, last)``."""


class ProducerReport(BaseModel):
    """What a producer says about the records it accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["producer_report"] = "producer_report"
    producer_id: str = Field(min_length=1)
    next_seq: int = Field(ge=0)
    """Records accepted so far: seqs ``0 … next_seq-1`` exist."""
    dropped: dict[str, list[SeqRange]] = Field(default_factory=dict)
    """Dropped seq ranges by reason (cumulative since the producer started)."""
    at_ns: int
    """When the report was made (``time.time_ns()``)."""
    final: bool = False
    """True for the report a producer sends when it closes."""


def encode_report(report: ProducerReport) -> dict[bytes, bytes]:
    """The stream entry carrying ``report``."""
    return {ENTRY_KIND: KIND_REPORT, ENTRY_ENVELOPE: orjson.dumps(report.model_dump(mode="json"))}


def is_report(fields: dict[bytes, bytes]) -> bool:
    """True if a stream entry is a producer report rather than a record."""
    return fields.get(ENTRY_KIND) == KIND_REPORT


def decode_report(fields: dict[bytes, bytes]) -> ProducerReport:
    """The report in a stream entry; CodecError if it is malformed or inconsistent.

    Inconsistent: a value out of range or a dropped range that is reversed, out of
    order or beyond ``next_seq`` (see :func:`rawtap.shared._limits.report_problem`).
    """
    try:
        report = ProducerReport.model_validate_json(fields.get(ENTRY_ENVELOPE, b""))
    except ValidationError as e:
        raise CodecError(f"invalid producer report: {e.errors()[0]['msg']}") from e
    problem = report_problem(report)
    if problem is not None:
        raise CodecError(f"invalid producer report: {problem}")
    return report


def add_to_ranges(ranges: list[SeqRange], first: int, last: int) -> None:
    """Add ``first … last`` to a sorted list of disjoint ranges, merging neighbours."""
    ranges.append((first, last))
    ranges.sort()
    merged: list[SeqRange] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    ranges[:] = merged


def range_count(ranges: list[SeqRange]) -> int:
    """How many seqs the ranges hold."""
    return sum(hi - lo + 1 for lo, hi in ranges)
