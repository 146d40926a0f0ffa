"""PostgresSink: the production store (psycopg 3; bytea bodies, day partitions).

URL: ``postgresql://user@host:5432/db?schema=rawtap&partition=day&insert=copy``;
``schema`` (default ``public``), ``partition`` (``none`` or ``day``, chosen when the
store is created) and ``insert`` (``copy``, the default, or ``executemany``) are
rawtap's own and removed before the rest reaches libpq.

Writes are batched and idempotent: a binary ``COPY`` straight into ``records``;
when a record of the batch is already stored (a redelivery: the ``COPY`` fails
on the primary key and is rolled back), that batch and the next few go through
a per-connection temporary staging table, ``INSERT … SELECT … ON CONFLICT DO
NOTHING`` into ``records``, all in one transaction (``insert=executemany`` sends the same
``INSERT … ON CONFLICT DO NOTHING`` per row, pipelined). The schema is created
and upgraded from the versioned files in ``migrations/postgresql/``, under an
advisory lock so that workers starting together migrate once; applied versions
are listed in ``rawtap_migrations``.

With ``partition=day``, ``records`` is partitioned by range of ``started_at``,
one partition per UTC day (``records_p20261125``), created on demand before a
batch that needs it; retention drops whole partitions and deletes row by row only
inside the one partition the cut-off falls in.
"""

import logging
import threading
from collections.abc import Sequence
from datetime import date
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import psycopg
from psycopg.rows import args_row

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store._accounting import Accounting
from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store._ledger import RECORD_PURGED, write_accounting
from rawtap.consumer.store._rows import DERIVED_COLUMNS, check_parallel
from rawtap.consumer.store._sink import SinkError
from rawtap.consumer.store.postgres._connect import Connection, connect, planned
from rawtap.consumer.store.postgres._dialect import DIALECT
from rawtap.consumer.store.postgres._errors import is_data_error, one_line
from rawtap.consumer.store.postgres._migrate import (
    SCHEMA_VERSION,
    Partitioning,
    load_layout,
    migrate_store,
)
from rawtap.consumer.store.postgres._partitions import DayPartitions, existing
from rawtap.consumer.store.postgres._search import TextSearchReads
from rawtap.consumer.store.postgres._url import split_url
from rawtap.consumer.store.postgres._values import (
    PG_COLUMNS,
    PG_TYPES,
    derived_row,
    ns_to_datetime,
    pg_row,
)
from rawtap.shared import ConfigError, Record, display_url

logger = logging.getLogger(__name__)

InsertMethod = Literal["copy", "executemany"]

_COLUMN_LIST = ", ".join(PG_COLUMNS)
_STAGE = "rawtap_stage"
# Column and table names below are constants of this module; values are bound parameters.
_INSERT_STAGED = (
    f"INSERT INTO records ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGE} "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
_COPY_DIRECT = f"COPY records ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_STAGED_AFTER_DUPLICATE = 8
"""Batches written through the staging table after one met a record already stored."""
_INSERT_ROW = (
    f"INSERT INTO records ({_COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(PG_COLUMNS))}) "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
_UPDATE_DERIVED = (
    f"UPDATE records SET {', '.join(f'{c} = %s' for c in DERIVED_COLUMNS)} WHERE record_id = %s"  # noqa: S608
)
_PURGE_BATCH = 10_000


class PostgresSink(TextSearchReads):
    """Records in a PostgreSQL schema; thread-safe (one connection, one lock).

    ``PostgresSink(conninfo, schema="rawtap", partition="day")`` or
    ``PostgresSink.from_url("postgresql://…?schema=rawtap&partition=day")``.
    ``partition`` matters only when the store is created; later opens use the
    layout the store has. ``migrate=False`` refuses to create or upgrade the schema;
    ``read_only=True`` (implies it) also makes every transaction read-only
    (``default_transaction_read_only``): the read commands open stores so.
    A lost connection raises :class:`SinkError` once and is reopened on the next call.
    """

    dialect: ClassVar[Dialect] = DIALECT

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        partition: Partitioning | None = None,
        insert: InsertMethod = "copy",
        migrate: bool = True,
        read_only: bool = False,
        connect_timeout_s: float = 10.0,
    ) -> None:
        migrate = migrate and not read_only
        if partition not in (None, "none", "day"):
            raise ConfigError(f"partition={partition!r}: use none or day")
        if insert not in ("copy", "executemany"):
            raise ConfigError(f"insert={insert!r}: use copy or executemany")
        if not schema:
            raise ConfigError("schema must not be empty")
        self.conninfo = conninfo
        self.schema = schema
        self.insert: InsertMethod = insert
        self._requested_partition = partition
        self.partition: Partitioning = "none"
        self._connect_timeout = connect_timeout_s
        self._read_only = read_only
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._stage_ready = False
        self._staged_batches = 0
        self._partitions = DayPartitions()
        self._closed = False
        self._label = f"PostgreSQL {display_url(conninfo)} (schema {schema})"
        with self._lock:
            conn = self._connection(ensure_schema=migrate)
            try:
                self._migrate(conn, apply=migrate)
            except psycopg.Error as e:
                self._drop_connection()
                raise SinkError(f"migrating {self._label} failed: {one_line(e)}") from e
            except BaseException:
                self._drop_connection()
                raise

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, read_only: bool = False) -> "PostgresSink":
        """Open the store a ``postgresql://…`` URL names (see the module docstring)."""
        conninfo, own = split_url(url)
        partition = own.get("partition")
        insert = own.get("insert", "copy")
        if partition not in (None, "none", "day"):
            raise ConfigError(f"sink URL: partition={partition!r}: use none or day")
        if insert not in ("copy", "executemany"):
            raise ConfigError(f"sink URL: insert={insert!r}: use copy or executemany")
        return cls(
            conninfo,
            schema=own.get("schema") or "public",
            partition=partition,  # type: ignore[arg-type]
            insert=insert,  # type: ignore[arg-type]
            migrate=migrate,
            read_only=read_only,
        )

    # -- connection -------------------------------------------------------------------

    def _connection(self, ensure_schema: bool = False) -> Connection:
        if self._closed:
            raise SinkError(f"{self._label}: the sink is closed")
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop_connection()
        conn = connect(
            self.conninfo,
            self.schema,
            self._label,
            timeout_s=self._connect_timeout,
            ensure_schema=ensure_schema,
            read_only=self._read_only,
        )
        self._conn = conn
        self._stage_ready = False
        return conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                logger.debug("closing a broken connection failed", exc_info=True)
            self._conn = None

    def _fail(self, what: str, error: psycopg.Error) -> SinkError:
        transient = not is_data_error(error)
        if isinstance(error, psycopg.OperationalError):
            self._drop_connection()  # reconnect on the next call
        return SinkError(f"{what} on {self._label} failed: {one_line(error)}", transient=transient)

    # -- migrations ---------------------------------------------------------------------

    def _migrate(self, conn: Connection, apply: bool) -> list[str]:
        applied = migrate_store(conn, self._label, self._requested_partition, apply=apply)
        self.partition = load_layout(conn)
        if apply and self._requested_partition not in (None, self.partition):
            raise ConfigError(
                f"{self._label} was created with partition={self.partition}; the layout cannot "
                "be changed in place (see docs/store.md)"
            )
        return applied

    @property
    def schema_version(self) -> int:
        """The highest migration applied to the store."""
        rows = self._query(SCHEMA_VERSION, ())
        return int(rows[0][0])

    def migrate(self) -> list[str]:
        """Apply pending migrations (already done at open unless ``migrate=False``)."""
        with self._lock:
            try:
                return self._migrate(self._connection(ensure_schema=True), apply=True)
            except psycopg.Error as e:
                raise self._fail("migrating", e) from e

    # -- write side ---------------------------------------------------------------------

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
        if not records:
            return 0
        rows = [
            pg_row(
                r,
                persisted_at_ns,
                derived[i] if derived is not None else None,
                envelopes[i] if envelopes else None,
            )
            for i, r in enumerate(records)
        ]
        with self._lock:
            try:
                conn = self._connection()
                if self.partition == "day":
                    self._partitions.ensure(conn, {r.started_at_ns for r in records})
                if self.insert == "copy":
                    return self._copy(conn, rows)
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_INSERT_ROW, rows)
                    return max(cur.rowcount, 0)
            except psycopg.Error as e:
                raise self._fail("write", e) from e

    def _copy(self, conn: Connection, rows: list[list[Any]]) -> int:
        if self._staged_batches == 0:
            try:
                # A record arrives once in all but a redelivery: COPY it straight in (half the
                # writes of staging), in a transaction of its own that a duplicate rolls back.
                with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_DIRECT) as copy:
                    copy.set_types(PG_TYPES)
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                # Redeliveries come in runs (a reclaim, a restart): stage the next batches.
                self._staged_batches = _STAGED_AFTER_DUPLICATE
        self._staged_batches -= 1
        return self._copy_staged(conn, rows)

    def _copy_staged(self, conn: Connection, rows: list[list[Any]]) -> int:
        if not self._stage_ready:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
                "(LIKE records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._stage_ready = True
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {_STAGE} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(PG_TYPES)
                for row in rows:
                    copy.write_row(row)
            cur.execute(_INSERT_STAGED)
            return max(cur.rowcount, 0)

    def partitions(self) -> list[date]:
        """The days that have a partition (empty for an unpartitioned store)."""
        if self.partition != "day":
            return []
        with self._lock:
            try:
                return sorted(existing(self._connection()))
            except psycopg.Error as e:
                raise self._fail("listing partitions", e) from e

    def set_derived(self, items: Sequence[tuple[str, Derived]]) -> int:
        """Replace the derived fields of the given record ids."""
        rows = [derived_row(record_id, d) for record_id, d in items]
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_UPDATE_DERIVED, rows)
                    return max(cur.rowcount, 0)
            except psycopg.Error as e:
                raise self._fail("derived-field update", e) from e

    def purge(self, before_ns: int) -> int:
        """Delete records that started before ``before_ns``.

        Whole day partitions older than the cut-off are dropped; rows are deleted
        one batch at a time only in the partition (or unpartitioned table) that
        holds the cut-off.
        """
        cutoff = ns_to_datetime(before_ns)
        total = 0
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    conn.execute(DIALECT.bind(RECORD_PURGED), (before_ns,))
                if self.partition == "day":
                    total += self._partitions.drop_before(conn, before_ns)
                statement = (
                    "DELETE FROM records WHERE (record_id, started_at) IN ("
                    " SELECT record_id, started_at FROM records"
                    " WHERE started_at <= %s AND started_at_ns < %s LIMIT %s)"
                )
                while True:
                    with conn.transaction():
                        deleted = conn.execute(
                            statement, (cutoff, before_ns, _PURGE_BATCH)
                        ).rowcount
                    total += max(deleted, 0)
                    if deleted < _PURGE_BATCH:
                        return total
            except psycopg.Error as e:
                raise self._fail("purge", e) from e

    def write_accounting(self, accounting: Accounting) -> None:
        """Commit dead letters, producer reports and trimmed ids in one transaction (idempotent)."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    write_accounting(cur.executemany, accounting, DIALECT)
            except psycopg.Error as e:
                raise self._fail("ledger write", e) from e

    # -- reads (the statements are in store._reads; text pages in ._search) -------------

    def _query(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._query_with(query, params, "")

    def _query_with(
        self, query: str, params: Sequence[Any], plan: str, make: Any = None
    ) -> list[Any]:
        """A read after ``plan`` (``SET LOCAL``s), rows ``make(*values)`` if given (binary)."""
        with self._lock:
            try:
                conn = self._connection()
                with planned(conn, plan):
                    cur = conn.cursor(binary=True, row_factory=args_row(make)) if make else conn
                    return cur.execute(query, params).fetchall()
            except psycopg.Error as e:
                raise self._fail("read", e) from e

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement in the store's schema (for operators and tests); returns rows."""
        with self._lock:
            try:
                cur = self._connection().execute(query, params)
                return cur.fetchall() if cur.description else []
            except psycopg.Error as e:
                raise self._fail("statement", e) from e

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._drop_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
