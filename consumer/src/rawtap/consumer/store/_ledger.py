"""The ledger's SQL, shared by both sinks (``?`` placeholders, bound to a :class:`Dialect`).

See :mod:`rawtap.consumer.store._accounting` for what the ledger holds and why.
"""

from collections.abc import Callable, Sequence
from typing import Any

from rawtap.consumer.store._accounting import Accounting
from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store._rows import filter_text, nullable_i64

ExecuteMany = Callable[[str, Sequence[Sequence[Any]]], object]

_DEAD = (
    "INSERT INTO dead_letters (stream, entry_id, record_id, producer_id, seq, error, "
    "deliveries, dead_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (stream, entry_id) DO NOTHING"
)
_PROGRESS = (
    "INSERT INTO producer_progress (producer_id, next_seq, final, reported_at_ns) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (producer_id) DO UPDATE SET "
    "next_seq = {greatest}(producer_progress.next_seq, excluded.next_seq), "
    "final = producer_progress.final OR excluded.final, "
    "reported_at_ns = {greatest}(producer_progress.reported_at_ns, excluded.reported_at_ns)"
)
_DROPS = (
    "INSERT INTO producer_drops (producer_id, reason, first_seq, last_seq) "
    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_TRIMMED = "INSERT INTO trimmed (stream, entry_id) VALUES (?, ?) ON CONFLICT DO NOTHING"

LEDGER_COUNTS = (
    "SELECT (SELECT count(*) FROM dead_letters d WHERE d.record_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM records r WHERE r.record_id = d.record_id)), (SELECT count(*) FROM trimmed)"
)


def write_accounting(executemany: ExecuteMany, accounting: Accounting, dialect: Dialect) -> None:
    """Write ``accounting`` with ``executemany`` inside the caller's transaction."""

    def run(statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cleaned = [tuple(_clean(v) for v in row) for row in rows]
            executemany(dialect.bind(statement), cleaned)

    run(
        _DEAD,
        [
            (
                d.stream,
                d.entry_id,
                d.record_id,
                d.producer_id,
                d.seq,
                d.error,
                d.deliveries,
                d.dead_at_ns,
            )
            for d in accounting.dead
        ],
    )
    run(
        _PROGRESS.format(greatest=dialect.greatest),
        [(r.producer_id, r.next_seq, r.final, r.at_ns) for r in accounting.reports],
    )
    run(
        _DROPS,
        [
            (r.producer_id, reason, lo, hi)
            for r in accounting.reports
            for reason, ranges in r.dropped.items()
            for lo, hi in ranges
        ],
    )
    run(_TRIMMED, [(accounting.stream, entry_id) for entry_id in accounting.trimmed])


def _clean(value: Any) -> Any:
    """A value both databases accept: 64-bit integers, bounded text with no NUL.

    Ledger rows describe entries that may be garbage (that is why they are dead
    letters): a value the database refuses must not make the ledger write fail
    forever and stop the worker. Text is cut like the records' filter copies
    (an indexed producer id of 3,000 bytes would not fit a PostgreSQL index).
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return nullable_i64(value)
    if isinstance(value, str):
        return filter_text(value)
    return value


PURGED = "purged"
"""The ``producer_drops`` reason of records retention deleted: accounted for, not lost."""

# Before retention deletes rows, their seqs go to the ledger as ranges (gaps and
# islands), so the reconciliation counts them as purged rather than missing.
RECORD_PURGED = (
    "INSERT INTO producer_drops (producer_id, reason, first_seq, last_seq) "
    "SELECT producer_id, 'purged', min(seq), max(seq) FROM ("
    " SELECT producer_id, seq, seq - ROW_NUMBER() OVER (PARTITION BY producer_id ORDER BY seq)"
    " AS island FROM records WHERE started_at_ns < ?) AS doomed "
    "GROUP BY producer_id, island ON CONFLICT DO NOTHING"
)
