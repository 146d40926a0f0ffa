"""Text search on SQLite: pages of matches read from FTS5 in start-time order.

A search's matches can be most of the store (a common word): collecting them all to
sort them by time would read every one. Instead, each record's FTS row id is a
*slot* at or just above its start time (migration 0005: the start time in ns, or
the next free value when another record holds it; ``push`` = slot - start time), so
FTS5 hands the matches over in time order (``ORDER BY rowid DESC`` with a ``LIMIT``,
no sort) and a page stops after ``limit`` of them. The order of a page is the
store's (start time, then record id), exactly:

- every match not yet read has a slot below the last one read, so it started
  before it (a slot is never below its start time);
- a match read may have been pushed above records that started at the same time or
  a little earlier; the matches whose slots lie between the earliest start time
  read and the last slot read are read too (usually none: pushes are rare and
  small), and the page is sorted.

Time bounds (``since_ns``/``until_ns``, the page's ``after`` key) become slot bounds,
widened by the largest push in the store (``records_fts_pushed``). A session's or a
call's filter also bounds the slots by the first and last start of its records.

What stays slow: a filter that keeps few matches (``end_state="cancelled"`` with a
common word) reads matches until a page passes it, about ``limit ÷ its share`` of them.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store._reads import where_clause
from rawtap.consumer.store._sink import RecordQuery

SLOT_MIN = -9_223_370_000_000_000_000
SLOT_MAX = 9_223_370_000_000_000_000
"""The start times slots are clamped to (as in migration 0005), far from the 64-bit limits."""

_MAX_PUSH = "SELECT coalesce(max(push), 0) FROM records_fts_keys WHERE push > 0"
_SPAN = "SELECT min(started_at_ns), max(started_at_ns) FROM records WHERE {} = ?"

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one read on the store: statement, parameters → rows."""


def slot_of(ns: int) -> int:
    """The lowest slot a record starting at ``ns`` can have."""
    return max(min(ns, SLOT_MAX), SLOT_MIN)


def text_page(
    run: Run,
    dialect: Dialect,
    query: RecordQuery,
    fts_query: str,
    columns: Sequence[str],
    limit: int,
    newest_first: bool,
    after: tuple[int, str] | None,
) -> list[tuple[Any, ...]]:
    """``columns`` of the first ``limit`` records matching ``query`` and ``fts_query``.

    In the store's order (newest first, or oldest), strictly past ``after``
    (``(started_at_ns, record_id)``).
    """
    if limit <= 0:
        return []
    (push,) = run(_MAX_PUSH, ())[0]
    low, high = SLOT_MIN, SLOT_MAX + int(push)
    if query.since_ns is not None:
        low = max(low, slot_of(query.since_ns))
    if query.until_ns is not None:
        high = min(high, slot_of(query.until_ns) + int(push))
    if after is not None:
        if newest_first:
            high = min(high, slot_of(after[0]) + int(push))
        else:
            low = max(low, slot_of(after[0]))
    for column, value in (("session_id", query.session_id), ("call_id", query.call_id)):
        if value is not None:
            first, last = run(_SPAN.format(column), (value,))[0]
            if first is None:
                return []
            low, high = max(low, slot_of(first)), min(high, slot_of(last) + int(push))
    if low > high:
        return []

    where, params = where_clause(dialect, replace(query, text=None))
    conditions = [c for c in (where.removeprefix("WHERE "),) if c]
    if after is not None:
        conditions.append(f"(r.started_at_ns, r.record_id) {'<' if newest_first else '>'} (?, ?)")
        params = [*params, *after]
    selected = ("started_at_ns", "record_id", *columns)  # the order key first, the slot last

    def read(lo: int, hi: int, count: int | None) -> list[tuple[Any, ...]]:
        statement = _statement(selected, conditions, newest_first, count is not None)
        return run(statement, [fts_query, lo, hi, *params, *([count] if count else [])])

    rows = read(low, high, limit)
    if len(rows) == limit:
        # Matches pushed above ones not yet read (see the module docstring).
        last_slot = rows[-1][-1]
        if newest_first:
            earliest = min(r[0] for r in rows)
            lo, hi = max(low, slot_of(earliest)), last_slot - 1
        else:
            latest = max(r[0] for r in rows)
            lo, hi = last_slot + 1, min(high, slot_of(latest) + int(push))
        if lo <= hi:
            rows += read(lo, hi, None)
    rows.sort(key=lambda r: (r[0], r[1]), reverse=newest_first)
    return [r[2:-1] for r in rows[:limit]]


def _statement(
    columns: Sequence[str], conditions: Sequence[str], newest_first: bool, limited: bool
) -> str:
    """Matches in slot order joined to their records; ``?``: query, slot bounds, filters."""
    # CROSS JOIN keeps FTS5 the outer loop, read in slot order: no sort, a LIMIT stops it.
    # Filter columns are unqualified (where_clause's); only `records` has them.
    where = " AND ".join(["records_fts MATCH ?", "f.rowid >= ?", "f.rowid <= ?", *conditions])
    selected = ", ".join(f"r.{c}" for c in columns)
    return (
        f"SELECT {selected}, f.rowid FROM records_fts AS f"  # noqa: S608
        " CROSS JOIN records_fts_keys AS k ON k.fts_rowid = f.rowid"
        " CROSS JOIN records AS r ON r.record_id = k.record_id"
        f" WHERE {where} ORDER BY f.rowid {'DESC' if newest_first else 'ASC'}"
        + (" LIMIT ?" if limited else "")
    )
