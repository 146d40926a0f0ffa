"""Dialect: what differs between SQLite's and PostgreSQL's SQL, for the SQL both share.

The shared statements (the read side in :mod:`._reads`, the ledger in :mod:`._ledger`)
are written once with ``?`` placeholders and SQLite's spelling; a Dialect turns
them into its database's. What stays apart is named here, so that a reader of a
shared statement sees every way it can differ:

- the placeholder (``?`` for sqlite3, ``%s`` for psycopg);
- the name of the two-argument maximum (``max`` vs ``GREATEST``);
- a *time key*: a column derived from ``started_at_ns`` that filters and orders
  go through first, so that PostgreSQL prunes its day partitions and uses the
  ``started_at`` index (SQLite has none). The key is ``started_at_ns`` truncated
  to the µs, so it orders as ``started_at_ns`` does and the order of records is
  the same on both stores;
- whether a page is picked before its rows are read (:attr:`Dialect.late_rows`);
- full-text search over the derived ``text``: SQLite's FTS5 table (``MATCH``) or
  PostgreSQL's GIN index over a ``tsvector`` expression (``@@``), each with its
  own query syntax, which only :attr:`Dialect.text_query` writes.

What a row's values look like when fetched (jsonb comes back parsed, text as a
string) is absorbed by :mod:`._rows`, which accepts both.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Dialect:
    """One database's spelling of the shared SQL."""

    name: str
    """The dialect's folder under ``migrations/``."""
    placeholder: str
    """How a bound parameter is written: ``?`` or ``%s``."""
    greatest: str
    """The function that returns the larger of two values."""
    time_key: str | None = None
    """A column holding ``started_at_ns`` in another form, filtered and ordered on first."""
    time_key_value: Callable[[int], Any] | None = None
    """``started_at_ns`` → the time key's value (given when ``time_key`` is)."""
    late_rows: bool = False
    """Pick a page's records by their keys first, then read their rows: SQLite sorts
    whole rows, and a row's later columns sit behind its bodies (overflow pages)."""
    text_match: str = ""
    """The condition "the record's derived text holds these words", with one ``?``."""
    text_query: Callable[[Sequence[str]], str] | None = None
    """Words (runs of letters and digits, never empty) → the ``?`` of :attr:`text_match`:
    every word must match, each as the prefix of a word of the text."""

    def bind(self, statement: str) -> str:
        """``statement``, written with ``?`` placeholders, in this dialect's style.

        Only for statements of rawtap's own: none holds a literal ``?`` or ``%``.
        """
        if self.placeholder == "?":
            return statement
        return statement.replace("?", self.placeholder)

    @property
    def order(self) -> tuple[str, ...]:
        """The columns records are ordered by, oldest first: the key of every page."""
        lead = (self.time_key,) if self.time_key else ()
        return (*lead, "started_at_ns", "record_id")

    def key_value(self, ns: int) -> Any:
        """The time key's value for a wall-clock ns (only when ``time_key`` is set)."""
        if self.time_key_value is None:
            raise ValueError(f"dialect {self.name} has no time key")
        return self.time_key_value(ns)
