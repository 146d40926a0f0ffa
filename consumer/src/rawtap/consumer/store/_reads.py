"""The read side both SQL stores share: one set of SELECTs over a :class:`Dialect`.

``rawtap list`` (``summaries``), ``show`` (``get_stored``, ``find_ids``),
``export``/``rederive``/``replay`` (``iter_records``), the worker's and the
tests' ``iter_stored``, counts and the ledger's figures are each one statement
here, bound to the sink's dialect. A sink subclasses :class:`SqlReads`, names
its dialect and runs a read its own way (``_query``: its lock, its connection,
its driver's errors turned into :class:`SinkError`).

Every read that returns records in order uses :attr:`Dialect.order` (start
time, then record id), so ``iter_stored``, ``iter_records`` and ``summaries``
agree with each other and across the two stores.
"""

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from rawtap.consumer.store._accounting import ProducerBalance
from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store._ledger import LEDGER_COUNTS
from rawtap.consumer.store._reconcile import reconcile_rows
from rawtap.consumer.store._rows import (
    CALL_FACTS_COLUMNS,
    FILTER_MAX_BYTES,
    STORED_COLUMNS,
    SUMMARY_COLUMNS,
    clamp_i64,
    facts_from_rows,
    filter_text,
    safe_text,
    stored_from_row,
    summary_from_row,
)
from rawtap.consumer.store._sink import (
    CallFacts,
    OnUnreadable,
    RecordQuery,
    RecordSummary,
    StoredRecord,
)
from rawtap.shared import CodecError, Record

_STORED = ", ".join(("record_id", *STORED_COLUMNS))
# Column names in the statements below are constants of this module; values are bound.
_GET_STORED = f"SELECT {_STORED} FROM records WHERE record_id = ?"  # noqa: S608
_FIND_IDS = (
    "SELECT record_id FROM records WHERE substr(record_id, 1, ?) = ? ORDER BY record_id LIMIT ?"
)


_WORD = re.compile(r"[^\W_]+")
"""A word of a text search: a run of letters and digits (``_`` separates, as in both indexes)."""

_NOTHING = "1 = 0"
"""A condition no row meets (a text search with no word in it)."""


def search_words(text: str | None) -> list[str] | None:
    """The words a text search looks for: None for no filter (None or blank), [] for none.

    Repeated words are looked for once. A word longer than the stored preview
    (:data:`FILTER_MAX_BYTES`) can be in no record, so the search finds nothing.
    """
    if text is None or not text.strip():
        return None
    words = list(dict.fromkeys(_WORD.findall(text)))
    if any(len(w) * 4 > FILTER_MAX_BYTES and len(w.encode()) > FILTER_MAX_BYTES for w in words):
        return []
    return words


def as_prefix(word: str) -> bool:
    """Whether a search word matches as a prefix: all but words of one or two ASCII
    characters, which match whole words (``re`` would be a prefix of most of a store)."""
    return len(word) > 2 or not word.isascii()


def where_clause(dialect: Dialect, query: RecordQuery) -> tuple[str, list[Any]]:
    """``WHERE …`` (or "") with ``?`` placeholders and its parameters for ``query``."""
    parts: list[str] = []
    params: list[Any] = []
    end_state = str(query.end_state) if query.end_state is not None else None
    for column, value in (
        ("session_id", query.session_id),
        ("provider", query.provider),
        ("model", query.model),
        ("status", query.status),
        ("end_state", end_state),
        ("producer_id", query.producer_id),
        ("service", query.service),
        ("call_id", query.call_id),
        ("stream", query.stream),
    ):
        if value is not None:
            parts.append(f"{column} = ?")
            # Cut like the stored copy, so a long value still finds its records.
            params.append(filter_text(value) if isinstance(value, str) else value)
    if query.record_id is not None:
        parts.append("record_id = ?")  # whole, unlike the filter copies
        params.append(query.record_id)
    for op, status in ((">=", query.status_min), ("<", query.status_max)):
        if status is not None:
            parts.append(f"status {op} ?")
            params.append(clamp_i64(status))
    bounds: list[tuple[str, str, int | None, Callable[[int], Any]]] = [
        ("started_at_ns", ">=", query.since_ns, int),
        ("started_at_ns", "<", query.until_ns, int),
    ]
    if dialect.time_key:
        # Also bound the time key, so that PostgreSQL prunes partitions. The key is
        # truncated to the µs: the upper bound keeps the µs it falls in (`<=`).
        key, to_key = dialect.time_key, dialect.key_value
        bounds += [(key, ">=", query.since_ns, to_key), (key, "<=", query.until_ns, to_key)]
    for column, op, ns, convert in bounds:
        if ns is not None:
            parts.append(f"{column} {op} ?")
            params.append(convert(ns))
    words = search_words(query.text)
    if words == [] or (words and dialect.text_query is None):
        parts.append(_NOTHING)
    elif words:
        assert dialect.text_query is not None  # for mypy: checked above
        parts.append(dialect.text_match)
        params.append(dialect.text_query(words))
    return ("WHERE " + " AND ".join(parts) if parts else ""), params


def order_by(dialect: Dialect, descending: bool, table: str = "") -> str:
    """``ORDER BY`` :attr:`Dialect.order`, oldest or newest first (columns of ``table``)."""
    direction = " DESC" if descending else ""
    prefix = f"{table}." if table else ""
    return "ORDER BY " + ", ".join(f"{prefix}{c}{direction}" for c in dialect.order)


def past_key(dialect: Dialect, where: str, descending: bool) -> str:
    """``where`` narrowed to the rows strictly past an order key (keyset paging, no OFFSET).

    One bound per order column (:func:`after_params` gives them); a time key is also
    bounded alone, which its index and partition pruning can use where a row
    comparison is not.
    """
    order = dialect.order
    glue = "AND" if where else "WHERE"
    op = "<" if descending else ">"
    lead = f"{order[0]} {op}= ? AND " if dialect.time_key else ""
    marks = ", ".join("?" * len(order))
    return f"{where} {glue} {lead}({', '.join(order)}) {op} ({marks})"


def summaries_statement(
    dialect: Dialect, where: str, newest_first: bool, after: bool = False
) -> str:
    """The ``rawtap list`` SELECT: summary columns in :attr:`Dialect.order`, then ``LIMIT ?``.

    With ``after``, past an order key (:func:`after_params`), as :func:`page_statement`.
    """
    if after:
        where = past_key(dialect, where, newest_first)
    order = order_by(dialect, newest_first)
    if dialect.late_rows:
        # The page's keys from an index alone, then its rows: not every candidate's row.
        keys = ", ".join(dialect.order)
        columns = ", ".join(f"r.{c}" for c in SUMMARY_COLUMNS)
        return dialect.bind(
            f"SELECT {columns} FROM (SELECT {keys} FROM records {where} {order} LIMIT ?)"  # noqa: S608
            " AS p CROSS JOIN records AS r ON r.record_id = p.record_id "
            + order_by(dialect, newest_first, "p")
        )
    columns = ", ".join(SUMMARY_COLUMNS)
    return dialect.bind(f"SELECT {columns} FROM records {where} {order} LIMIT ?")  # noqa: S608


def page_statement(dialect: Dialect, where: str, after: bool) -> str:
    """One page of ``iter_records``, oldest first: the order columns, then the stored columns.

    With ``after``, the page starts past a key (:func:`past_key`).
    """
    order = dialect.order
    if after:
        where = past_key(dialect, where, descending=False)
    columns = ", ".join((*order[:-1], _STORED))  # record_id ends the order, starts _STORED
    return dialect.bind(
        f"SELECT {columns} FROM records {where} {order_by(dialect, False)} LIMIT ?"  # noqa: S608
    )


def after_params(dialect: Dialect, after: tuple[Any, ...]) -> list[Any]:
    """The parameters of :func:`past_key`'s bound past ``after`` (an order key)."""
    return [after[0], *after] if dialect.time_key else list(after)


def page_after(after: tuple[int, str] | None) -> tuple[int, str] | None:
    """A page's ``after`` key as the stored copies are: 64-bit start time, safe record id."""
    if after is None:
        return None
    return clamp_i64(after[0]), safe_text(after[1]) or ""


def order_key(dialect: Dialect, started_at_ns: int, record_id: str) -> tuple[Any, ...]:
    """The :attr:`Dialect.order` key of a record (the time key first, if the dialect has one)."""
    if dialect.time_key:
        return (dialect.key_value(started_at_ns), started_at_ns, record_id)
    return (started_at_ns, record_id)


def facts_statement(dialect: Dialect, query: RecordQuery) -> tuple[str, list[Any]]:
    """``call_facts``' SELECT (newest first, then ``LIMIT ?``) and its parameters but the limit."""
    where, params = where_clause(dialect, query)
    statement = dialect.bind(
        f"SELECT {', '.join(CALL_FACTS_COLUMNS)} FROM records {where} "  # noqa: S608
        f"{order_by(dialect, True)} LIMIT ?"
    )
    return statement, params


def facet_statement(column: str) -> str:
    """The distinct non-NULL values of ``column``, in order, at most ``?`` of them.

    A loose index scan: each step is one ``min(column) WHERE column > previous``, a
    probe of the column's index, so the cost is the number of values, not of rows.
    """
    return (
        f"WITH RECURSIVE v(x, n) AS (SELECT min({column}), 1 FROM records"  # noqa: S608
        f" UNION ALL SELECT (SELECT min({column}) FROM records WHERE {column} > v.x), n + 1"
        " FROM v WHERE v.x IS NOT NULL AND n < ?)"
        " SELECT x FROM v WHERE x IS NOT NULL"
    )


FACET_COLUMNS = ("provider", "model", "service", "end_state")
"""The columns :meth:`SqlReads.facets` lists (each leads an index)."""


class SqlReads:
    """The Store's read methods for a SQL sink that names ``dialect`` and runs ``_query``."""

    dialect: ClassVar[Dialect]

    def _query(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read (already in the dialect's style); the sink's own."""
        raise NotImplementedError

    def get(self, record_id: str) -> Record | None:
        """The record with ``record_id``, or None."""
        stored = self.get_stored(record_id)
        return None if stored is None else stored.record

    def get_stored(self, record_id: str) -> StoredRecord | None:
        """The record with its derived fields and persist time, or None."""
        if "\x00" in record_id:  # no store holds one (PostgreSQL cannot even be asked)
            return None
        rows = self._query(self.dialect.bind(_GET_STORED), (record_id,))
        return stored_from_row(rows[0]) if rows else None

    def find_ids(self, prefix: str, limit: int = 2) -> list[str]:
        """Stored ids starting with ``prefix`` (at most ``limit``)."""
        if "\x00" in prefix:
            return []
        rows = self._query(self.dialect.bind(_FIND_IDS), (len(prefix), prefix, limit))
        return [str(r[0]) for r in rows]

    def count(self, producer_id: str | None = None) -> int:
        """Number of stored records (of one producer, if given)."""
        return self.count_matching(RecordQuery(producer_id=producer_id))

    def count_matching(self, query: RecordQuery) -> int:
        """How many records match ``query``."""
        where, params = where_clause(self.dialect, query)
        statement = self.dialect.bind(f"SELECT count(*) FROM records {where}")  # noqa: S608
        ((n,),) = self._query(statement, params)
        return int(n)

    def summaries(
        self,
        query: RecordQuery,
        limit: int = 50,
        newest_first: bool = True,
        after: tuple[int, str] | None = None,
    ) -> list[RecordSummary]:
        """Filter columns of matching records, newest (or oldest) first, past ``after``."""
        where, params = where_clause(self.dialect, query)
        statement = summaries_statement(self.dialect, where, newest_first, after is not None)
        after = page_after(after)
        if after is not None:
            key = order_key(self.dialect, after[0], after[1])
            params += after_params(self.dialect, key)
        return [summary_from_row(r) for r in self._query(statement, [*params, limit])]

    def call_facts(self, query: RecordQuery, limit: int = 20_000) -> list[CallFacts]:
        """The newest ``limit`` matching records' facts, newest first."""
        statement, params = facts_statement(self.dialect, query)
        return facts_from_rows(self._query(statement, [*params, limit]))

    def facets(self, limit: int = 200) -> dict[str, list[str]]:
        """Distinct provider, model, service and end_state values, sorted, ``limit`` each."""
        return {
            column: [
                str(r[0]) for r in self._query(self.dialect.bind(facet_statement(column)), (limit,))
            ]
            for column in FACET_COLUMNS
        }

    def iter_records(
        self,
        query: RecordQuery,
        *,
        batch_size: int = 500,
        on_unreadable: OnUnreadable | None = None,
    ) -> Iterator[StoredRecord]:
        """Matching records oldest first, in pages (keyset on :attr:`Dialect.order`)."""
        where, params = where_clause(self.dialect, query)
        first, following = (page_statement(self.dialect, where, after) for after in (False, True))
        keys = len(self.dialect.order)
        after: tuple[Any, ...] = ()
        while True:
            if not after:
                rows = self._query(first, [*params, batch_size])
            else:
                rows = self._query(
                    following, [*params, *after_params(self.dialect, after), batch_size]
                )
            for row in rows:
                try:
                    yield stored_from_row(row[keys - 1 :])
                except CodecError as e:
                    if on_unreadable is None:
                        raise
                    on_unreadable(str(row[keys - 1]), e)
            if len(rows) < batch_size:
                return
            after = tuple(rows[-1][:keys])

    def iter_stored(self, producer_id: str | None = None) -> Iterator[tuple[Record, int]]:
        """Records (of one producer, if given) with their ``persisted_at_ns``, oldest first.

        The order of :meth:`iter_records` (start time, then record id) on every store.
        """
        for stored in self.iter_records(RecordQuery(producer_id=producer_id)):
            yield stored.record, stored.persisted_at_ns

    def reconcile(self) -> list[ProducerBalance]:
        """Every producer's balance: accepted = stored + dead-lettered + dropped + missing."""
        return reconcile_rows(
            lambda statement, params: self._query(self.dialect.bind(statement), params)
        )

    def ledger_counts(self) -> dict[str, int]:
        """Totals of the ledger (dead letters not stored later, trimmed ids)."""
        ((dead, trimmed),) = self._query(self.dialect.bind(LEDGER_COUNTS), ())
        return {"dead_lettered": int(dead), "trimmed": int(trimmed)}
