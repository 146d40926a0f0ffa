"""SqliteSink: the embedded default store (one file, WAL mode).

One table, ``records``: the columns people filter on, the derived fields, the
JSON envelope (every field but the bodies, as the producer sent it) and the
two bodies as BLOBs. ``INSERT OR IGNORE`` on the ``record_id`` primary key makes
writes idempotent, so a redelivered entry never becomes a second row. The schema
is created and upgraded from the versioned files in ``migrations/sqlite/``,
tracked by ``PRAGMA user_version``.

Durability: WAL with ``synchronous=NORMAL`` survives a crash of the worker
process (the case that matters for ack-after-commit); a power loss may roll
back the last transactions, which are then still pending in Redis only if
they were not acknowledged. Use ``RAWTAP_SQLITE_SYNCHRONOUS=FULL`` to trade
throughput for power-loss durability.
"""

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store._accounting import Accounting
from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store._ledger import RECORD_PURGED, write_accounting
from rawtap.consumer.store._reads import (
    SqlReads,
    as_prefix,
    order_by,
    page_after,
    search_words,
    where_clause,
)
from rawtap.consumer.store._rows import (
    CALL_FACTS_COLUMNS,
    DERIVED_COLUMNS,
    RECORD_COLUMNS,
    SUMMARY_COLUMNS,
    check_parallel,
    derived_values,
    facts_from_rows,
    record_values,
    summary_from_row,
)
from rawtap.consumer.store._sink import CallFacts, RecordQuery, RecordSummary, SinkError
from rawtap.consumer.store.sqlite._errors import sink_error
from rawtap.consumer.store.sqlite._migrate import migrate_store, schema_version
from rawtap.consumer.store.sqlite._search import text_page
from rawtap.shared import Record


def fts5_query(words: Sequence[str]) -> str:
    """An FTS5 query for ``words``: each quoted, a prefix term (``"word"*``) where
    :func:`as_prefix`, all required. Quoted, a word is never an operator (``AND``)."""
    return " ".join(f'"{w}"*' if as_prefix(w) else f'"{w}"' for w in words)


DIALECT = Dialect(
    "sqlite",
    placeholder="?",
    greatest="max",
    late_rows=True,
    text_match="record_id IN (SELECT record_id FROM records_fts WHERE records_fts MATCH ?)",
    text_query=fts5_query,
)
"""SQLite's spelling of the shared SQL (no time key: ``started_at_ns`` is the index)."""

_ALL_COLUMNS = (*RECORD_COLUMNS, *DERIVED_COLUMNS)
# Column names are constants of this module; values are bound parameters.
_INSERT = f"INSERT OR IGNORE INTO records ({', '.join(_ALL_COLUMNS)}) VALUES "  # noqa: S608
_ROW = f"({', '.join('?' * len(_ALL_COLUMNS))})"
_ROWS_PER_INSERT = 256
"""Rows one INSERT statement carries (fewer where SQLite allows fewer bound values).

One statement for many rows, not one per row: SQLite opens a statement savepoint per
statement, and FTS5 flushes what it has pending at each (``records_fts``, filled by a
trigger): row by row, that doubled the cost of a write."""
_UPDATE_DERIVED = (
    f"UPDATE records SET {', '.join(f'{c} = ?' for c in DERIVED_COLUMNS)} WHERE record_id = ?"  # noqa: S608
)
_PURGE_BATCH = 5000
_IN_TIME_INDEX = frozenset(
    ("provider", "model", "status", "status_min", "status_max", "end_state", "since_ns", "until_ns")
)
"""RecordQuery fields whose columns the ``records_started`` index holds (migration 0005)."""


def _filters(query: RecordQuery) -> set[str]:
    """The fields of ``query`` that filter (are not None)."""
    return {f.name for f in fields(query) if getattr(query, f.name) is not None}


def path_from_url(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` / ``sqlite:////abs.db`` (``:memory:`` allowed)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SinkError(f"bad SQLite URL {url!r}: expected sqlite:///path.db")
    return url[len(prefix) :]


class SqliteSink(SqlReads):
    """Records in one SQLite file; safe to share between threads and worker processes.

    ``migrate=False`` opens an existing store without creating or upgrading it
    (a mistyped path is an error, not a new file). ``read_only=True`` (implies
    ``migrate=False``) also opens the file read-only (``mode=ro``), so nothing —
    not even the journal mode — is written: the read commands open stores so.
    """

    dialect: ClassVar[Dialect] = DIALECT

    def __init__(
        self, path: str | os.PathLike[str], *, migrate: bool = True, read_only: bool = False
    ) -> None:
        self.path = str(path)
        migrate = migrate and not read_only
        if not migrate and self.path != ":memory:" and not Path(self.path).is_file():
            raise SinkError(
                f"no SQLite store at {self.path!r}; check --sink, or create it with "
                f"`rawtap migrate --sink sqlite:///{self.path}`"
            )
        try:
            if read_only and self.path != ":memory:":
                uri = Path(self.path).resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
                )
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30.0
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
            synchronous = os.environ.get("RAWTAP_SQLITE_SYNCHRONOUS", "NORMAL").upper()
            if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
                raise SinkError(f"RAWTAP_SQLITE_SYNCHRONOUS={synchronous!r}: use NORMAL or FULL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            migrate_store(self._conn, self.path, apply=migrate)
        except sqlite3.Error as e:
            raise SinkError(f"cannot open SQLite database {self.path!r}: {e}") from e
        variables = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._rows_per_insert = max(1, min(_ROWS_PER_INSERT, variables // len(_ALL_COLUMNS)))
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, read_only: bool = False) -> "SqliteSink":
        """Open the database a ``sqlite:///…`` URL names."""
        return cls(path_from_url(url), migrate=migrate, read_only=read_only)

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (``PRAGMA user_version``)."""
        return schema_version(self._conn)

    def migrate(self) -> list[str]:
        """Apply pending migrations (already done at open unless ``migrate=False``)."""
        with self._lock:
            try:
                return migrate_store(self._conn, self.path, apply=True)
            except sqlite3.Error as e:
                raise SinkError(f"migrating {self.path!r} failed: {e}") from e

    # -- write side ------------------------------------------------------------------

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
        *,
        envelopes: Sequence[bytes] | None = None,
    ) -> int:
        """Insert ``records`` in one transaction, skipping ids already stored."""
        check_parallel(records, derived, envelopes)
        values: list[Any] = []
        for i, r in enumerate(records):
            values += record_values(r, persisted_at_ns, envelopes[i] if envelopes else None)
            values += derived_values(derived[i] if derived is not None else None)
        return self._write(self._inserts(values), "write")

    def _inserts(self, values: list[Any]) -> Iterator[tuple[str, Sequence[Any]]]:
        """Multi-row INSERTs of the rows ``values`` holds, one after the other."""
        width = len(_ALL_COLUMNS)
        step = self._rows_per_insert * width
        for start in range(0, len(values), step):
            chunk = values[start : start + step]
            yield _INSERT + ", ".join([_ROW] * (len(chunk) // width)), chunk

    def set_derived(self, items: Sequence[tuple[str, Derived]]) -> int:
        """Replace the derived fields of the given record ids."""
        rows = [(*derived_values(d), record_id) for record_id, d in items]
        return self._write(iter([(_UPDATE_DERIVED, rows)]), "derived-field update", many=True)

    def _write(
        self, statements: Iterator[tuple[str, Any]], what: str, *, many: bool = False
    ) -> int:
        """Run ``statements`` in one transaction; the rows they changed (``many``: executemany)."""
        changed = 0
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        run = conn.executemany if many else conn.execute
                        # The statement's own rows (the FTS triggers' writes are not counted).
                        changed += max(run(sql, params).rowcount, 0)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise sink_error(f"SQLite {what} to {self.path!r} failed: {e}", e) from e
        return changed

    def write_accounting(self, accounting: Accounting) -> None:
        """Commit dead letters, producer reports and trimmed ids in one transaction (idempotent)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    write_accounting(conn.executemany, accounting, DIALECT)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise sink_error(f"SQLite ledger write to {self.path!r} failed: {e}", e) from e

    def purge(self, before_ns: int) -> int:
        """Delete records that started before ``before_ns``, in batches (short write locks)."""
        sql = (
            "DELETE FROM records WHERE record_id IN (SELECT record_id FROM records "
            "WHERE started_at_ns < ? LIMIT ?)"
        )
        with self._lock:
            try:
                self._conn.execute(RECORD_PURGED, (before_ns,))
            except sqlite3.Error as e:
                raise SinkError(f"SQLite purge in {self.path!r} failed: {e}") from e
        total = 0
        while True:
            with self._lock:
                try:
                    deleted = self._conn.execute(sql, (before_ns, _PURGE_BATCH)).rowcount
                except sqlite3.Error as e:
                    raise SinkError(f"SQLite purge in {self.path!r} failed: {e}") from e
            total += deleted
            if deleted < _PURGE_BATCH:
                return total

    # -- reads (the statements are in store._reads; text pages in ._search) --------------

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
        after = page_after(after)
        rows = text_page(
            self._query, DIALECT, query, fts5_query(words), SUMMARY_COLUMNS, limit,
            newest_first, after,
        )  # fmt: skip
        return [summary_from_row(r) for r in rows]

    def call_facts(self, query: RecordQuery, limit: int = 20_000) -> list[CallFacts]:
        """The newest ``limit`` matching records' facts, newest first."""
        words = search_words(query.text)
        if words is None and _filters(query) <= _IN_TIME_INDEX:
            # The time index holds every column read and filtered: the wide rows stay unread
            # (the planner would take a filter's own index, then read 20,000 rows).
            where, params = where_clause(DIALECT, query)
            statement = (
                f"SELECT {', '.join(CALL_FACTS_COLUMNS)} FROM records "  # noqa: S608
                f"INDEXED BY records_started {where} {order_by(DIALECT, True)} LIMIT ?"
            )
            return facts_from_rows(self._query(statement, [*params, limit]))
        if not words:
            return super().call_facts(query, limit)
        rows = text_page(
            self._query, DIALECT, query, fts5_query(words), CALL_FACTS_COLUMNS, limit, True, None
        )
        return facts_from_rows(rows)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise SinkError(f"SQLite read from {self.path!r} failed: {e}") from e

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement on the store (for operators and tests); returns its rows."""
        return self._query(sql, params)

    def close(self) -> None:
        """Close the connection; idempotent."""
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
