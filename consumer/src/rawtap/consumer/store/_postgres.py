"""PostgresSink: the production store (psycopg 3; bytea bodies, jsonb headers and metadata).

URL: ``postgresql://user@host:5432/db?schema=rawtap&partition=day&insert=copy``;
``schema`` (default ``public``), ``partition`` (``none`` or ``day``, chosen when the
store is created) and ``insert`` (``copy``, the default, or ``executemany``) are
rawtap's own and removed before the rest reaches libpq.

Writes are batched and idempotent: ``COPY`` (binary) into a per-connection
temporary staging table, then ``INSERT … SELECT … ON CONFLICT DO NOTHING`` into
``records``, all in one transaction (``insert=executemany`` sends the same
``INSERT … ON CONFLICT DO NOTHING`` per row, pipelined). The schema is created
and upgraded from the versioned files in ``migrations/postgresql/``, under an
advisory lock so that workers starting together migrate once; applied versions
are listed in ``rawtap_migrations``.

With ``partition=day``, ``records`` is partitioned by range of ``started_at``,
one partition per UTC day (``records_p20261125``), created on demand before a
batch that needs it; retention drops whole partitions and deletes row by row only
inside the one partition the cut-off falls in.
"""

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

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
from rawtap.shared import CodecError, ConfigError, Record, display_url, scrub_text

logger = logging.getLogger(__name__)

InsertMethod = Literal["copy", "executemany"]
Partitioning = Literal["none", "day"]

_PG_COLUMNS = (
    *RECORD_COLUMNS,
    "started_at",
    "request_headers",
    "response_headers",
    "metadata",
    *DERIVED_COLUMNS,
)
_PG_TYPES = (
    # RECORD_COLUMNS
    "text", "int2", "text", "int8", "text", "text", "text", "text", "text", "int8", "text",
    "bool", "int8", "int8", "int8", "int8", "int8", "bytea", "bytea", "bytea",
    # started_at, headers, metadata
    "timestamptz", "jsonb", "jsonb", "jsonb",
    # DERIVED_COLUMNS
    "text", "int4", "text", "text", "text", "int8", "int8", "int8", "int8", "text", "int8",
    "text", "jsonb", "text", "text",
)  # fmt: skip
_TOOL_CALLS = len(RECORD_COLUMNS) + 4 + DERIVED_COLUMNS.index("tool_calls")
_TEXT_INDEXES = tuple(i for i, t in enumerate(_PG_TYPES) if t == "text")
_COLUMN_LIST = ", ".join(_PG_COLUMNS)
_STAGE = "rawtap_stage"
# Column and table names below are constants of this module; values are bound parameters.
_INSERT_STAGED = (
    f"INSERT INTO records ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGE} "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
_INSERT_ROW = (
    f"INSERT INTO records ({_COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(_PG_COLUMNS))}) "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
_UPDATE_DERIVED = (
    f"UPDATE records SET {', '.join(f'{c} = %s' for c in DERIVED_COLUMNS)} WHERE record_id = %s"  # noqa: S608
)
_STORED = ", ".join(("record_id", *STORED_COLUMNS))
_PURGE_BATCH = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TS = datetime(1, 1, 2, tzinfo=UTC)
_MAX_TS = datetime(9999, 12, 30, tzinfo=UTC)
_PARTITION_MARKER = "/*rawtap:partition*/"
_OWN_PARAMS = ("schema", "partition", "insert")


DATA_ERROR_CLASSES = frozenset({"22", "23", "54"})
"""SQLSTATE classes that are a row's fault: data exception, integrity constraint
violation, program limit exceeded (an index entry, a value too large)."""


def is_data_error(error: psycopg.Error) -> bool:
    """True when PostgreSQL refused the rows themselves (dead-letter), False when the
    database, the connection or the schema is at fault (retry).

    Decided by the SQLSTATE class, not by psycopg's exception class (which files
    ``54000 program_limit_exceeded`` under OperationalError and ``42501
    insufficient_privilege`` under ProgrammingError). Everything outside
    :data:`DATA_ERROR_CLASSES` is retried: 08 connection, 40 serialization and
    deadlock, 53 resources (disk full), 55 lock not available, 57 operator
    intervention (shutdown, cancel), 58 system (I/O), XX internal, and 42 (an
    undefined table or a missing grant: rawtap binds every value, so no record
    causes those, and dead-lettering every record until an operator notices
    would be worse). Without a SQLSTATE the error was raised by psycopg itself:
    a value it cannot adapt is data, a lost connection is not.
    """
    code = error.sqlstate
    if code:
        return code[:2] in DATA_ERROR_CLASSES
    return isinstance(
        error,
        psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError,
    )


def ns_to_datetime(ns: int) -> datetime:
    """A wall-clock ns timestamp as an aware UTC datetime (truncated to µs, clamped)."""
    try:
        return _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return _MIN_TS if ns < 0 else _MAX_TS


def _scrub(value: Any) -> Any:
    """``value`` with NUL characters replaced (PostgreSQL text and jsonb cannot hold them)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _json_bytes(value: Any) -> bytes:
    out = orjson.dumps(value)
    if b"\\u0000" in out:
        out = orjson.dumps(_scrub(value))
    return out


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_json_bytes)


def _pg_row(record: Record, persisted_at_ns: int, derived: Derived | None) -> list[Any]:
    row = [
        *record_values(record, persisted_at_ns),
        ns_to_datetime(record.started_at_ns),
        _jsonb(record.request_headers),
        _jsonb(record.response_headers),
        _jsonb(record.metadata),
        *derived_values(derived),
    ]
    if row[_TOOL_CALLS] is not None:
        row[_TOOL_CALLS] = _jsonb(orjson.loads(row[_TOOL_CALLS]))
    for i in _TEXT_INDEXES:
        value = row[i]
        if value is not None and "\x00" in value:
            row[i] = value.replace("\x00", "\ufffd")
    return row


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """(libpq URL without rawtap's parameters, rawtap's parameters)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in pairs if k in _OWN_PARAMS}
    rest = [(k, v) for k, v in pairs if k not in _OWN_PARAMS]
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), own


class PostgresSink:
    """Records in a PostgreSQL schema; thread-safe (one connection, one lock).

    ``PostgresSink(conninfo, schema="rawtap", partition="day")`` or
    ``PostgresSink.from_url("postgresql://…?schema=rawtap&partition=day")``.
    ``partition`` matters only when the store is created; later opens use the
    layout the store has. ``migrate=False`` refuses to create or upgrade the schema;
    ``read_only=True`` (implies it) also makes every transaction read-only
    (``default_transaction_read_only``): the read commands open stores so.
    A lost connection raises :class:`SinkError` once and is reopened on the next call.
    """

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
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._stage_ready = False
        self._partitions: set[date] = set()
        self._closed = False
        self._label = f"PostgreSQL {display_url(conninfo)} (schema {schema})"
        with self._lock:
            conn = self._connection(ensure_schema=migrate)
            try:
                self._migrate(conn, apply=migrate)
            except psycopg.Error as e:
                self._drop_connection()
                raise SinkError(f"migrating {self._label} failed: {_one_line(e)}") from e
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

    def _connection(self, ensure_schema: bool = False) -> "psycopg.Connection[tuple[Any, ...]]":
        if self._closed:
            raise SinkError(f"{self._label}: the sink is closed")
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop_connection()
        try:
            conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout)),
                application_name="rawtap",
            )
        except psycopg.Error as e:
            raise SinkError(f"cannot connect to {self._label}: {_one_line(e)}") from e
        try:
            if ensure_schema:
                # IF NOT EXISTS still races with a concurrent creator; losing that race is fine.
                with contextlib.suppress(
                    psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema
                ):
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.schema)
                        )
                    )
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            if self._read_only:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as e:
            conn.close()
            raise SinkError(f"cannot use schema of {self._label}: {_one_line(e)}") from e
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
        return SinkError(f"{what} on {self._label} failed: {_one_line(error)}", transient=transient)

    # -- migrations ---------------------------------------------------------------------

    def _migrate(self, conn: "psycopg.Connection[tuple[Any, ...]]", apply: bool) -> list[str]:
        scripts = migration_scripts("postgresql")
        latest = scripts[-1][0]
        applied: list[str] = []
        with conn.transaction():
            exists = conn.execute("SELECT to_regclass('rawtap_migrations') IS NOT NULL").fetchone()
            if not (exists and exists[0]):
                if not apply:
                    raise SinkError(
                        f"{self._label} has no rawtap store; run `rawtap migrate` or start a worker"
                    )
            else:
                self._check_version(conn, latest, apply)
        if not apply:
            self._load_layout(conn)
            return applied
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('rawtap-migrate:' || current_schema()))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS rawtap_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS rawtap_settings"
                " (key text PRIMARY KEY, value text NOT NULL)"
            )
            current = self._check_version(conn, latest, apply)
            row = conn.execute(
                "SELECT value FROM rawtap_settings WHERE key = 'partition'"
            ).fetchone()
            layout = row[0] if row else (self._requested_partition or "none")
            if row is None:
                conn.execute(
                    "INSERT INTO rawtap_settings (key, value) VALUES ('partition', %s)", (layout,)
                )
            for version, name, script in scripts:
                if version <= current:
                    continue
                marker = "PARTITION BY RANGE (started_at)" if layout == "day" else ""
                conn.execute(script.replace(_PARTITION_MARKER, marker).encode())
                conn.execute(
                    "INSERT INTO rawtap_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(name)
        self._load_layout(conn)
        if self._requested_partition not in (None, self.partition):
            raise ConfigError(
                f"{self._label} was created with partition={self.partition}; the layout cannot "
                "be changed in place (see docs/store.md)"
            )
        return applied

    def _check_version(
        self, conn: "psycopg.Connection[tuple[Any, ...]]", latest: int, apply: bool
    ) -> int:
        row = conn.execute("SELECT coalesce(max(version), 0) FROM rawtap_migrations").fetchone()
        current = int(row[0]) if row else 0
        if current > latest:
            raise SinkError(
                f"{self._label} has schema version {current}, newer than this release "
                f"({latest}); upgrade rawtap"
            )
        if current < latest and not apply:
            raise SinkError(
                f"{self._label} has schema version {current}, this release needs {latest}; "
                "run `rawtap migrate`"
            )
        return current

    def _load_layout(self, conn: "psycopg.Connection[tuple[Any, ...]]") -> None:
        row = conn.execute("SELECT value FROM rawtap_settings WHERE key = 'partition'").fetchone()
        self.partition = "day" if row and row[0] == "day" else "none"

    @property
    def schema_version(self) -> int:
        """The highest migration applied to the store."""
        rows = self._query("SELECT coalesce(max(version), 0) FROM rawtap_migrations", ())
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
    ) -> int:
        """Insert ``records`` in one transaction, skipping ids already stored."""
        if derived is not None and len(derived) != len(records):
            raise ValueError("derived must have one entry per record")
        if not records:
            return 0
        rows = [
            _pg_row(r, persisted_at_ns, derived[i] if derived is not None else None)
            for i, r in enumerate(records)
        ]
        with self._lock:
            try:
                conn = self._connection()
                if self.partition == "day":
                    self._ensure_partitions(conn, {r.started_at_ns for r in records})
                if self.insert == "copy":
                    return self._copy(conn, rows)
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_INSERT_ROW, rows)
                    return max(cur.rowcount, 0)
            except psycopg.Error as e:
                raise self._fail("write", e) from e

    def _copy(self, conn: "psycopg.Connection[tuple[Any, ...]]", rows: list[list[Any]]) -> int:
        if not self._stage_ready:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
                "(LIKE records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._stage_ready = True
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {_STAGE} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_PG_TYPES)
                for row in rows:
                    copy.write_row(row)
            cur.execute(_INSERT_STAGED)
            return max(cur.rowcount, 0)

    def _ensure_partitions(
        self, conn: "psycopg.Connection[tuple[Any, ...]]", started: set[int]
    ) -> None:
        days = {ns_to_datetime(ns).date() for ns in started} - self._partitions
        if not days:
            return
        self._partitions |= self._existing_partitions(conn)
        for day in sorted(days - self._partitions):
            lower = datetime(day.year, day.month, day.day, tzinfo=UTC)
            statement = sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF records FOR VALUES FROM ({}) TO ({})"
            ).format(
                sql.Identifier(f"records_p{day:%Y%m%d}"),
                sql.Literal(lower),
                sql.Literal(lower + timedelta(days=1)),
            )
            # Another worker may create it at the same moment.
            with contextlib.suppress(psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
                conn.execute(statement)
            self._partitions.add(day)

    def _existing_partitions(self, conn: "psycopg.Connection[tuple[Any, ...]]") -> set[date]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'records'::regclass"
        ).fetchall()
        days = set()
        for (name,) in rows:
            if isinstance(name, str) and name.startswith("records_p") and len(name) == 17:
                try:
                    days.add(datetime.strptime(name[9:], "%Y%m%d").replace(tzinfo=UTC).date())
                except ValueError:
                    continue
        return days

    def partitions(self) -> list[date]:
        """The days that have a partition (empty for an unpartitioned store)."""
        if self.partition != "day":
            return []
        with self._lock:
            try:
                return sorted(self._existing_partitions(self._connection()))
            except psycopg.Error as e:
                raise self._fail("listing partitions", e) from e

    def set_derived(self, items: Sequence[tuple[str, Derived]]) -> int:
        """Replace the derived fields of the given record ids."""
        rows = []
        for record_id, d in items:
            values = derived_values(d)
            calls = DERIVED_COLUMNS.index("tool_calls")
            if values[calls] is not None:
                values[calls] = _jsonb(orjson.loads(values[calls]))
            rows.append(
                [*_scrub(values[:calls]), values[calls], *_scrub(values[calls + 1 :]), record_id]
            )
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
                    conn.execute(RECORD_PURGED.replace("?", "%s"), (before_ns,))
                if self.partition == "day":
                    for day in sorted(self._existing_partitions(conn)):
                        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
                        if (end - _EPOCH) // timedelta(seconds=1) * 1_000_000_000 > before_ns:
                            continue  # the partition holds rows at or after the cut-off
                        name = sql.Identifier(f"records_p{day:%Y%m%d}")
                        with conn.transaction():
                            row = conn.execute(
                                sql.SQL("SELECT count(*) FROM {}").format(name)
                            ).fetchone()
                            conn.execute(sql.SQL("DROP TABLE {}").format(name))
                        total += int(row[0]) if row else 0
                        self._partitions.discard(day)
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
                    write_accounting(cur.executemany, accounting, postgres=True)
            except psycopg.Error as e:
                raise self._fail("ledger write", e) from e

    def reconcile(self) -> list[ProducerBalance]:
        """Every producer's balance: accepted = stored + dead-lettered + dropped + missing."""
        return reconcile_rows(self._query)

    def ledger_counts(self) -> dict[str, int]:
        """Totals of the ledger (dead letters not stored later, trimmed ids)."""
        ((dead, trimmed),) = self._query(LEDGER_COUNTS, ())
        return {"dead_lettered": int(dead), "trimmed": int(trimmed)}

    # -- read side ------------------------------------------------------------------------

    def _query(self, query: str | sql.Composed, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(query, params).fetchall()
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

    def _where(self, query: RecordQuery) -> tuple[str, list[Any]]:
        where, params = where_clause(query, "%s")
        # Also bound the partition key, so that PostgreSQL prunes partitions.
        extra = []
        if query.since_ns is not None:
            extra.append("started_at >= %s")
            params.append(ns_to_datetime(query.since_ns))
        if query.until_ns is not None:
            extra.append("started_at <= %s")
            params.append(ns_to_datetime(query.until_ns))
        if extra:
            where = (
                f"{where} AND {' AND '.join(extra)}" if where else f"WHERE {' AND '.join(extra)}"
            )
        return where, params

    def get(self, record_id: str) -> Record | None:
        """The record with ``record_id``, or None."""
        stored = self.get_stored(record_id)
        return None if stored is None else stored.record

    def get_stored(self, record_id: str) -> StoredRecord | None:
        """The record with its derived fields and persist time, or None."""
        rows = self._query(f"SELECT {_STORED} FROM records WHERE record_id = %s", (record_id,))  # noqa: S608
        return stored_from_row(rows[0]) if rows else None

    def find_ids(self, prefix: str, limit: int = 2) -> list[str]:
        """Stored ids starting with ``prefix`` (at most ``limit``)."""
        rows = self._query(
            "SELECT record_id FROM records WHERE left(record_id, %s) = %s "
            "ORDER BY record_id LIMIT %s",
            (len(prefix), prefix, limit),
        )
        return [str(r[0]) for r in rows]

    def count(self, producer_id: str | None = None) -> int:
        """Number of stored records (of one producer, if given)."""
        return self.count_matching(RecordQuery(producer_id=producer_id))

    def count_matching(self, query: RecordQuery) -> int:
        """How many records match ``query``."""
        where, params = self._where(query)
        rows = self._query(f"SELECT count(*) FROM records {where}", params)  # noqa: S608
        return int(rows[0][0])

    def summaries(
        self, query: RecordQuery, limit: int = 50, newest_first: bool = True
    ) -> list[RecordSummary]:
        """Filter columns of matching records."""
        where, params = self._where(query)
        order = "DESC" if newest_first else "ASC"
        statement = (
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM records {where} "  # noqa: S608
            f"ORDER BY started_at {order}, started_at_ns {order}, record_id {order} LIMIT %s"
        )
        return [summary_from_row(r) for r in self._query(statement, [*params, limit])]

    def iter_records(
        self,
        query: RecordQuery,
        *,
        batch_size: int = 500,
        on_unreadable: OnUnreadable | None = None,
    ) -> Iterator[StoredRecord]:
        """Matching records oldest first, in pages (keyset on started_at_ns, record_id)."""
        where, params = self._where(query)
        glue = "AND" if where else "WHERE"
        after: tuple[datetime, int, str] | None = None
        while True:
            page_where, page_params = where, list(params)
            if after is not None:
                # The first condition lets the started_at index (and partition pruning) work.
                page_where = (
                    f"{where} {glue} started_at >= %s"
                    " AND (started_at, started_at_ns, record_id) > (%s, %s, %s)"
                )
                page_params += [after[0], *after]
            statement = (
                f"SELECT started_at, started_at_ns, {_STORED} FROM records {page_where} "  # noqa: S608
                "ORDER BY started_at, started_at_ns, record_id LIMIT %s"
            )
            rows = self._query(statement, [*page_params, batch_size])
            for row in rows:
                try:
                    yield stored_from_row(row[2:])
                except CodecError as e:
                    if on_unreadable is None:
                        raise
                    on_unreadable(str(row[2]), e)
            if len(rows) < batch_size:
                return
            after = (rows[-1][0], int(rows[-1][1]), str(rows[-1][2]))

    def iter_stored(self, producer_id: str | None = None) -> Iterator[tuple[Record, int]]:
        """Records (of one producer, if given) with their ``persisted_at_ns``, oldest first.

        The order of :meth:`iter_records` (start time, then record id), as on SQLite.
        """
        for stored in self.iter_records(RecordQuery(producer_id=producer_id)):
            yield stored.record, stored.persisted_at_ns

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


def _one_line(error: BaseException) -> str:
    # libpq messages can quote the conninfo they were given: never its password.
    return scrub_text(" ".join(str(error).split())) or type(error).__name__
