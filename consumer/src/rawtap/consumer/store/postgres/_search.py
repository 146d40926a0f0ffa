"""Text search on PostgreSQL: the newest rows checked one by one, or the GIN index.

A GIN index finds every match of a search but in no order: for a common word that is
most of the store, read and sorted to show 50. Checking the newest rows one by one
(their stored ``text_words``, a few µs each) finds a common word's page at once but
reads the whole store for a rare one; and the planner cannot tell the two apart (a
prefix query's selectivity is a guess). So a page is read in two ways, in the
store's order (start time, then record id):

1. *windows*: the next candidates (rows matching every other filter, read through
   the filters' own indexes) checked for the words, :data:`WINDOW` at first, more
   while the matches seen are at least :data:`MIN_SHARE` of the rows read;
2. past the last candidate read, *the index*: every remaining match from the GIN
   index (index scans and sequential scans switched off for that statement), sorted,
   the first needed kept. A word rarer than ``MIN_SHARE`` has few matches to sort.

What stays slow: a word about as common as ``MIN_SHARE`` on an unpartitioned store
of millions of rows (thousands of matches to read and sort); with day partitions the
newest partitions answer first.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store._reads import (
    SqlReads,
    after_params,
    as_prefix,
    facts_statement,
    order_by,
    order_key,
    page_after,
    past_key,
    search_words,
    where_clause,
)
from rawtap.consumer.store._rows import (
    CALL_FACTS_COLUMNS,
    FACTS_BUILDER,
    SUMMARY_COLUMNS,
    as_call_facts,
    facts_from_rows,
    summary_from_row,
)
from rawtap.consumer.store._sink import CallFacts, RecordQuery, RecordSummary

WINDOW = 1_000
"""Candidates checked in the first window."""
MAX_WINDOW = 20_000
"""The most candidates one window checks."""
MIN_SHARE = 0.01
"""The share of matches among the candidates read below which the GIN index is used."""

_BITMAP_ONLY = "SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off"

MATCH = "text_words @@ to_tsquery('simple', ?)"
"""A row's text holds the words (``?``: a ``to_tsquery`` text)."""

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one read on the store: statement (``?`` placeholders bound), parameters → rows."""


def tsquery(words: Sequence[str]) -> str:
    """A ``to_tsquery`` text for ``words``: each a prefix (``word:*``) where :func:`as_prefix`,
    all required (``&``). Words are runs of letters and digits: none can be query syntax."""
    return " & ".join(f"{w}:*" if as_prefix(w) else w for w in words)


class TextSearchReads(SqlReads):
    """The Store's reads, with pages of a text search read by :func:`text_page`."""

    def _query(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read (already in the dialect's style); the sink's own."""
        raise NotImplementedError

    def _query_with(
        self, query: str, params: Sequence[Any], plan: str, make: Any = None
    ) -> list[Any]:
        """Run one read after ``plan`` (``SET LOCAL``s), rows made by ``make``; the sink's own."""
        raise NotImplementedError

    def _query_indexed(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One read planned with index and sequential scans off: bitmap scans (GIN)."""
        return self._query_with(statement, params, _BITMAP_ONLY)

    def summaries(
        self,
        query: RecordQuery,
        limit: int = 50,
        newest_first: bool = True,
        after: tuple[int, str] | None = None,
    ) -> list[RecordSummary]:
        """Filter columns of matching records, newest (or oldest) first, past ``after``."""
        words = search_words(query.text)
        if not words:
            return super().summaries(query, limit, newest_first, after)
        rows = text_page(
            self._query, self._query_indexed, self.dialect, query, tsquery(words),
            SUMMARY_COLUMNS, limit, newest_first, page_after(after),
        )  # fmt: skip
        return [summary_from_row(r) for r in rows]

    def call_facts(self, query: RecordQuery, limit: int = 20_000) -> list[CallFacts]:
        """The newest ``limit`` matching records' facts, newest first."""
        words = search_words(query.text)
        if words is None:
            # Rows made straight into objects (binary values, no tuple between): 20,000 of
            # them are most of this read's time.
            statement, params = facts_statement(self.dialect, query)
            return as_call_facts(self._query_with(statement, [*params, limit], "", FACTS_BUILDER))
        if not words:
            return []
        rows = text_page(
            self._query, self._query_indexed, self.dialect, query, tsquery(words),
            CALL_FACTS_COLUMNS, limit, True, None,
        )  # fmt: skip
        return facts_from_rows(rows)


def text_page(
    run: Run,
    run_indexed: Run,
    dialect: Dialect,
    query: RecordQuery,
    tsquery: str,
    columns: Sequence[str],
    limit: int,
    newest_first: bool,
    after: tuple[int, str] | None,
) -> list[tuple[Any, ...]]:
    """``columns`` of the first ``limit`` records matching ``query`` and ``tsquery``.

    In the store's order, strictly past ``after`` (``(started_at_ns, record_id)``).
    ``run_indexed`` runs a statement with index and sequential scans switched off.
    """
    if limit <= 0:
        return []
    base, params = where_clause(dialect, replace(query, text=None))
    keys = dialect.order
    order = order_by(dialect, newest_first)
    cursor = None if after is None else order_key(dialect, after[0], after[1])
    found: list[tuple[Any, ...]] = []
    read = hits = 0
    size = WINDOW
    while True:
        where = base if cursor is None else past_key(dialect, base, newest_first)
        bound = [] if cursor is None else after_params(dialect, cursor)
        picked = ", ".join(f"CASE WHEN c.hit THEN c.{col} END" for col in columns)
        statement = dialect.bind(
            f"SELECT c.hit, {', '.join(f'c.{k}' for k in keys)}, {picked} FROM ("  # noqa: S608
            f"SELECT {', '.join(dict.fromkeys((*keys, *columns)))}, {MATCH} AS hit "
            f"FROM records {where} {order} LIMIT ?) AS c {order_by(dialect, newest_first, 'c')}"
        )
        rows = run(statement, [tsquery, *params, *bound, size])
        found += [r[1 + len(keys) :] for r in rows if r[0]]
        if len(found) >= limit or len(rows) < size:
            return found[:limit]
        read, hits = read + len(rows), hits + sum(1 for r in rows if r[0])
        cursor = tuple(rows[-1][1 : 1 + len(keys)])
        needed = limit - len(found)
        if hits < MIN_SHARE * read:
            break
        size = min(MAX_WINDOW, max(WINDOW, int(2 * needed * read / hits)))
    where = past_key(dialect, base, newest_first)
    statement = dialect.bind(
        f"SELECT {', '.join(columns)} FROM records {where} AND {MATCH} {order} LIMIT ?"  # noqa: S608
    )
    rest = run_indexed(statement, [*params, *after_params(dialect, cursor), tsquery, needed])
    return found + rest
