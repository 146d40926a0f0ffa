"""Per-producer reconciliation from a sink's tables (plain SQL both sinks run).

For each producer: the seqs stored (as ranges, from a window query, never by
loading every row), the dead letters not stored later, the drops its reports
named, and ``accepted`` from its latest report. Whatever lies below
``accepted`` and is in none of those is *missing*: trimmed by MAXLEN before a
worker read it, or lost with a Redis that had no persistence.
"""

from collections.abc import Callable, Sequence
from typing import Any

from rawtap.consumer.store._accounting import ProducerBalance, missing_ranges
from rawtap.consumer.store._ledger import PURGED
from rawtap.shared import SeqRange, add_to_ranges, range_count

Query = Callable[[str, tuple[Any, ...]], Sequence[Sequence[Any]]]

_STORED = "SELECT producer_id, count(*), min(seq), max(seq) FROM records GROUP BY producer_id"
_GAPS = (
    "SELECT producer_id, seq, nxt FROM (SELECT producer_id, seq, "
    "LEAD(seq) OVER (PARTITION BY producer_id ORDER BY seq) AS nxt FROM records) AS g "
    # Never `seq + 1`: a stored seq of 2^63-1 would overflow PostgreSQL's bigint.
    # (nor `nxt - seq`, for a negative seq written by hand).
    "WHERE CASE WHEN nxt > seq THEN nxt - 1 > seq ELSE false END ORDER BY producer_id, seq"
)
_PROGRESS = "SELECT producer_id, next_seq, final FROM producer_progress"
_DROPS = "SELECT producer_id, reason, first_seq, last_seq FROM producer_drops"
_DEAD = (
    "SELECT producer_id, seq FROM dead_letters d WHERE producer_id IS NOT NULL "
    "AND seq IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM records r WHERE r.record_id = d.record_id)"
)


def _overlap(a: list[SeqRange], b: list[SeqRange]) -> int:
    total = 0
    for lo, hi in a:
        for blo, bhi in b:
            total += max(0, min(hi, bhi) - max(lo, blo) + 1)
    return total


def reconcile_rows(query: Query) -> list[ProducerBalance]:
    """Balances of every producer the sink has heard of, sorted by producer id."""
    stored: dict[str, tuple[int, int, int]] = {
        pid: (int(n), int(lo), int(hi)) for pid, n, lo, hi in query(_STORED, ())
    }
    gaps: dict[str, list[tuple[int, int]]] = {}
    for pid, seq, nxt in query(_GAPS, ()):
        gaps.setdefault(pid, []).append((int(seq), int(nxt)))
    progress = {pid: (int(n), bool(final)) for pid, n, final in query(_PROGRESS, ())}
    drops: dict[str, dict[str, list[SeqRange]]] = {}
    for pid, reason, lo, hi in query(_DROPS, ()):
        add_to_ranges(drops.setdefault(pid, {}).setdefault(reason, []), int(lo), int(hi))
    dead: dict[str, list[SeqRange]] = {}
    for pid, seq in query(_DEAD, ()):
        add_to_ranges(dead.setdefault(pid, []), int(seq), int(seq))

    balances = []
    for pid in sorted(set(stored) | set(progress) | set(drops) | set(dead)):
        present: list[SeqRange] = []
        count, lo, hi = stored.get(pid, (0, 0, -1))
        if count:
            start = lo
            for seq, nxt in gaps.get(pid, []):
                present.append((start, seq))
                start = nxt
            present.append((start, hi))
        dead_ranges = dead.get(pid, [])
        by_reason = drops.get(pid, {})
        dropped = {
            reason: range_count(r) - _overlap(r, present) - _overlap(r, dead_ranges)
            for reason, r in by_reason.items()
        }
        purged = dropped.pop(PURGED, 0)
        accepted, final = progress.get(pid, (None, False))
        seen = [h for _, h in present] + [h for _, h in dead_ranges]
        seen += [h for r in by_reason.values() for _, h in r]
        upper = accepted if accepted is not None else (max(seen) + 1 if seen else 0)
        accounted = dead_ranges + [x for r in by_reason.values() for x in r]
        balances.append(
            ProducerBalance(
                producer_id=pid,
                accepted=accepted,
                stored=count,
                dead_lettered=range_count(dead_ranges),
                dropped={k: v for k, v in dropped.items() if v},
                missing=missing_ranges(upper, present, accounted),
                final=final,
                purged=purged,
            )
        )
    return balances
