"""SqliteSink: the embedded default store (one file, WAL mode).

One table, ``records``: the columns people filter on, the derived fields, the
JSON envelope (every field but the bodies, exactly the shared schema) and the
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
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store._accounting import Accounting, ProducerBalance
from rawtap.consumer.store._ledger import LEDGER_COUNTS, RECORD_PURGED, write_accounting
from rawtap.consumer.store._reconcile import reconcile_rows
from rawtap.consumer.store._rows import (
    DERIVED_COLUMNS,
    RECORD_COLUMNS,
    STORED_COLUMNS,
    SUMMARY_COLUMNS,
    derived_values,
    migration_scripts,
    record_values,
    stored_from_row,
    summary_from_row,
    where_clause,
)
from rawtap.consumer.store._sink import (
    OnUnreadable,
    RecordQuery,
    RecordSummary,
    SinkError,
    StoredRecord,
)
from rawtap.shared import CodecError, Record

_ALL_COLUMNS = (*RECORD_COLUMNS, *DERIVED_COLUMNS)
# Column names are constants of this module; values are bound parameters.
_INSERT = (
    f"INSERT OR IGNORE INTO records ({', '.join(_ALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_ALL_COLUMNS))})"
)
_UPDATE_DERIVED = (
    f"UPDATE records SET {', '.join(f'{c} = ?' for c in DERIVED_COLUMNS)} WHERE record_id = ?"  # noqa: S608
)
_STORED = ", ".join(("record_id", *STORED_COLUMNS))
_PURGE_BATCH = 5000


def path_from_url(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` / ``sqlite:////abs.db`` (``:memory:`` allowed)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SinkError(f"bad SQLite URL {url!r}: expected sqlite:///path.db")
    return url[len(prefix) :]


class SqliteSink:
    """Records in one SQLite file; safe to share between threads and worker processes.

    ``migrate=False`` opens an existing store without creating or upgrading it
    (a mistyped path is an error, not a new file). ``read_only=True`` (implies
    ``migrate=False``) also opens the file read-only (``mode=ro``), so nothing —
    not even the journal mode — is written: the read commands open stores so.
    """

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
            self._migrate(apply=migrate)
        except sqlite3.Error as e:
            raise SinkError(f"cannot open SQLite database {self.path!r}: {e}") from e
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, read_only: bool = False) -> "SqliteSink":
        """Open the database a ``sqlite:///…`` URL names."""
        return cls(path_from_url(url), migrate=migrate, read_only=read_only)

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (``PRAGMA user_version``)."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, apply: bool) -> list[str]:
        scripts = migration_scripts("sqlite")
        latest = scripts[-1][0]
        current = self.schema_version
        if current > latest:
            raise SinkError(
                f"database {self.path!r} has schema version {current}, newer than this "
                f"release ({latest}); upgrade rawtap"
            )
        if current < latest and not apply:
            raise SinkError(
                f"database {self.path!r} has schema version {current}, this release needs "
                f"{latest}; run `rawtap migrate --sink sqlite:///{self.path}`"
            )
        applied = []
        for version, name, sql in scripts:
            if version <= current:
                continue
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if self.schema_version >= version:
                    self._conn.execute("COMMIT")
                    continue
                for statement in _statements(sql):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={version}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            applied.append(name)
        return applied

    def migrate(self) -> list[str]:
        """Apply pending migrations (already done at open unless ``migrate=False``)."""
        with self._lock:
            try:
                return self._migrate(apply=True)
            except sqlite3.Error as e:
                raise SinkError(f"migrating {self.path!r} failed: {e}") from e

    # -- write side ------------------------------------------------------------------

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
    ) -> int:
        """Insert ``records`` in one transaction, skipping ids already stored."""
        if derived is not None and len(derived) != len(records):
            raise ValueError("derived must have one entry per record")
        rows = [
            (
                *record_values(r, persisted_at_ns),
                *derived_values(derived[i] if derived is not None else None),
            )
            for i, r in enumerate(records)
        ]
        return self._write_rows(_INSERT, rows, "write")

    def set_derived(self, items: Sequence[tuple[str, Derived]]) -> int:
        """Replace the derived fields of the given record ids."""
        rows = [(*derived_values(d), record_id) for record_id, d in items]
        return self._write_rows(_UPDATE_DERIVED, rows, "derived-field update")

    def _write_rows(self, sql: str, rows: Sequence[tuple[Any, ...]], what: str) -> int:
        with self._lock:
            conn = self._conn
            try:
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return conn.total_changes - before
            except sqlite3.Error as e:
                raise _sink_error(f"SQLite {what} to {self.path!r} failed: {e}", e) from e

    def write_accounting(self, accounting: Accounting) -> None:
        """Commit dead letters, producer reports and trimmed ids in one transaction (idempotent)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    write_accounting(conn.executemany, accounting, postgres=False)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise _sink_error(f"SQLite ledger write to {self.path!r} failed: {e}", e) from e

    def reconcile(self) -> list[ProducerBalance]:
        """Every producer's balance: accepted = stored + dead-lettered + dropped + missing."""
        return reconcile_rows(self._query)

    def ledger_counts(self) -> dict[str, int]:
        """Totals of the ledger (dead letters not stored later, trimmed ids)."""
        ((dead, trimmed),) = self._query(LEDGER_COUNTS, ())
        return {"dead_lettered": int(dead), "trimmed": int(trimmed)}

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

    # -- read side -------------------------------------------------------------------

    def get(self, record_id: str) -> Record | None:
        """The record with ``record_id``, or None."""
        stored = self.get_stored(record_id)
        return None if stored is None else stored.record

    def get_stored(self, record_id: str) -> StoredRecord | None:
        """The record with its derived fields and persist time, or None."""
        rows = self._query(f"SELECT {_STORED} FROM records WHERE record_id = ?", (record_id,))  # noqa: S608
        return stored_from_row(rows[0]) if rows else None

    def find_ids(self, prefix: str, limit: int = 2) -> list[str]:
        """Stored ids starting with ``prefix`` (at most ``limit``)."""
        rows = self._query(
            "SELECT record_id FROM records WHERE substr(record_id, 1, ?) = ? "
            "ORDER BY record_id LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return [str(r[0]) for r in rows]

    def count(self, producer_id: str | None = None) -> int:
        """Number of stored records (of one producer, if given)."""
        return self.count_matching(RecordQuery(producer_id=producer_id))

    def count_matching(self, query: RecordQuery) -> int:
        """How many records match ``query``."""
        where, params = where_clause(query, "?")
        ((n,),) = self._query(f"SELECT count(*) FROM records {where}", tuple(params))  # noqa: S608
        return int(n)

    def summaries(
        self, query: RecordQuery, limit: int = 50, newest_first: bool = True
    ) -> list[RecordSummary]:
        """Filter columns of matching records."""
        where, params = where_clause(query, "?")
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM records {where} "  # noqa: S608
            f"ORDER BY started_at_ns {order}, record_id {order} LIMIT ?"
        )
        return [summary_from_row(r) for r in self._query(sql, (*params, limit))]

    def iter_records(
        self,
        query: RecordQuery,
        *,
        batch_size: int = 500,
        on_unreadable: OnUnreadable | None = None,
    ) -> Iterator[StoredRecord]:
        """Matching records oldest first, in pages (keyset on started_at_ns, record_id)."""
        where, params = where_clause(query, "?")
        glue = "AND" if where else "WHERE"
        after: tuple[int, str] | None = None
        while True:
            page_where, page_params = where, list(params)
            if after is not None:
                page_where = f"{where} {glue} (started_at_ns, record_id) > (?, ?)"
                page_params += list(after)
            sql = (
                f"SELECT started_at_ns, {_STORED} FROM records {page_where} "  # noqa: S608
                "ORDER BY started_at_ns, record_id LIMIT ?"
            )
            rows = self._query(sql, (*page_params, batch_size))
            for row in rows:
                try:
                    yield stored_from_row(row[1:])
                except CodecError as e:
                    if on_unreadable is None:
                        raise
                    on_unreadable(str(row[1]), e)
            if len(rows) < batch_size:
                return
            after = (int(rows[-1][0]), str(rows[-1][1]))

    def iter_stored(self, producer_id: str | None = None) -> Iterator[tuple[Record, int]]:
        """Records (of one producer, if given) with their ``persisted_at_ns``, oldest first.

        The order of :meth:`iter_records` (start time, then record id), as on PostgreSQL.
        """
        for stored in self.iter_records(RecordQuery(producer_id=producer_id)):
            yield stored.record, stored.persisted_at_ns

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
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


DATA_ERROR_CODES = frozenset({18, 19, 20})
"""Primary SQLite result codes that are a row's fault: SQLITE_TOOBIG (a value over
the length limit), SQLITE_CONSTRAINT (a constraint or a trigger's RAISE),
SQLITE_MISMATCH (a value of the wrong type for a typed column)."""


def is_data_error(error: sqlite3.Error) -> bool:
    """True when SQLite refused the rows themselves (dead-letter), False when the file,
    its locks or its schema are at fault (retry).

    Decided by the result code, not the exception class: SQLITE_BUSY and
    SQLITE_LOCKED (another writer), SQLITE_FULL, SQLITE_IOERR, SQLITE_CANTOPEN,
    SQLITE_READONLY, SQLITE_CORRUPT and SQLITE_NOTADB (the file), SQLITE_ERROR
    (a missing table, a schema changed under the worker) are retried: no record
    causes those, and dead-lettering every record would be worse. Without a result
    code the error was raised by the sqlite3 module itself (a value it cannot bind):
    that is the row's fault.
    """
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        if "closed" in str(error):  # "Cannot operate on a closed database": not the rows
            return False
        return (
            isinstance(error, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.ProgrammingError)
            or type(error) is sqlite3.InterfaceError
        )
    return code & 0xFF in DATA_ERROR_CODES


def _sink_error(message: str, error: sqlite3.Error) -> SinkError:
    return SinkError(message, transient=not is_data_error(error))


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration file (sqlite3 decides where each one ends)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise SinkError(f"migration ends with an incomplete statement: {buffer[:80]!r}")
