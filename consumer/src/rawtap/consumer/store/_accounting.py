"""What the worker commits besides records: dead letters, producer reports, trimmed ids.

Together with the stored records they let ``rawtap stats`` reconcile, per
producer, ``accepted = stored + dead-lettered + dropped-with-reason + gaps``
(see :mod:`rawtap.shared._report`), where gaps are named seq ranges.
"""

from dataclasses import dataclass, field

from rawtap.shared import ProducerReport, SeqRange, add_to_ranges, range_count


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry the worker gave up on, as committed to the sink's ledger."""

    stream: str
    entry_id: str
    error: str
    deliveries: int
    dead_at_ns: int
    record_id: str | None = None
    producer_id: str | None = None
    seq: int | None = None


@dataclass(slots=True)
class Accounting:
    """One batch's non-record outcomes, committed before the batch is acknowledged."""

    stream: str
    reports: list[ProducerReport] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    """Pending entry ids whose data MAXLEN trimmed away before they were committed."""

    def __bool__(self) -> bool:
        return bool(self.reports or self.dead or self.trimmed)

    def split(self) -> list["Accounting"]:
        """One accounting per row (to find the one a store refuses)."""
        return (
            [Accounting(self.stream, reports=[r]) for r in self.reports]
            + [Accounting(self.stream, dead=[d]) for d in self.dead]
            + [Accounting(self.stream, trimmed=[t]) for t in self.trimmed]
        )


@dataclass(frozen=True, slots=True)
class ProducerBalance:
    """One producer's records, reconciled."""

    producer_id: str
    accepted: int | None
    """From the producer's latest report; None if none arrived yet."""
    stored: int
    dead_lettered: int
    dropped: dict[str, int]
    """Accepted then dropped by the producer, by reason (from its reports)."""
    missing: list[SeqRange]
    """Seqs below ``accepted`` (or the highest seen) that are nowhere: trimmed or lost."""
    final: bool
    """The producer closed and said so."""
    purged: int = 0
    """Stored once, then deleted by retention: accounted for, not lost."""

    @property
    def lost(self) -> int:
        """Dropped with a reason plus missing."""
        return sum(self.dropped.values()) + range_count(self.missing)

    @property
    def balanced(self) -> bool:
        """``accepted = stored + dead-lettered + lost + purged`` holds (and accepted is known)."""
        return self.accepted is not None and self.accepted == (
            self.stored + self.dead_lettered + self.lost + self.purged
        )


def missing_ranges(
    upper: int, present: list[SeqRange], accounted: list[SeqRange]
) -> list[SeqRange]:
    """Seqs in ``0 … upper-1`` covered by neither ``present`` nor ``accounted``."""
    covered: list[SeqRange] = []
    for lo, hi in [*present, *accounted]:
        add_to_ranges(covered, lo, hi)
    out: list[SeqRange] = []
    nxt = 0
    for lo, hi in covered:
        if lo > nxt:
            out.append((nxt, min(lo, upper) - 1))
        nxt = max(nxt, hi + 1)
        if nxt >= upper:
            break
    if nxt < upper:
        out.append((nxt, upper - 1))
    return [(lo, hi) for lo, hi in out if lo <= hi]
