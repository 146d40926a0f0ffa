"""SqliteSink: the embedded default store (one file, WAL mode).

One table, ``records``: the columns people filter on, the JSON envelope
(every field but the bodies, exactly the shared schema) and the two bodies as
BLOBs. ``INSERT OR IGNORE`` on the ``record_id`` primary key makes writes
idempotent, so a redelivered entry never becomes a second row.

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

import orjson

from rawtap.consumer._accounting import Accounting, ProducerBalance
from rawtap.consumer._reconcile import reconcile_rows
from rawtap.consumer._sink import SinkError
from rawtap.shared import CodecError, Record, encode_envelope

_SCHEMA_VERSION = 2
_MIGRATIONS = {
    1: """
    CREATE TABLE IF NOT EXISTS records (
        record_id      TEXT PRIMARY KEY,
        schema_version INTEGER NOT NULL,
        producer_id    TEXT NOT NULL,
        seq            INTEGER NOT NULL,
        session_id     TEXT,
        service        TEXT,
        provider       TEXT NOT NULL,
        status         INTEGER,
        end_state      TEXT NOT NULL,
        stream         INTEGER NOT NULL,
        started_at_ns  INTEGER NOT NULL,
        captured_at_ns INTEGER NOT NULL,
        persisted_at_ns INTEGER NOT NULL,
        envelope       BLOB NOT NULL,
        request_body   BLOB NOT NULL,
        body           BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS records_started ON records (started_at_ns);
    CREATE INDEX IF NOT EXISTS records_session ON records (session_id, started_at_ns);
    CREATE INDEX IF NOT EXISTS records_provider ON records (provider, started_at_ns);
    CREATE INDEX IF NOT EXISTS records_producer ON records (producer_id, seq);
    """,
    2: """
    CREATE TABLE IF NOT EXISTS dead_letters (
        stream      TEXT NOT NULL,
        entry_id    TEXT NOT NULL,
        record_id   TEXT,
        producer_id TEXT,
        seq         INTEGER,
        error       TEXT NOT NULL,
        deliveries  INTEGER NOT NULL,
        dead_at_ns  INTEGER NOT NULL,
        PRIMARY KEY (stream, entry_id)
    );
    CREATE INDEX IF NOT EXISTS dead_letters_producer ON dead_letters (producer_id, seq);
    CREATE TABLE IF NOT EXISTS producer_progress (
        producer_id TEXT PRIMARY KEY,
        next_seq    INTEGER NOT NULL,
        final       INTEGER NOT NULL,
        reported_at_ns INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS producer_drops (
        producer_id TEXT NOT NULL,
        reason      TEXT NOT NULL,
        first_seq   INTEGER NOT NULL,
        last_seq    INTEGER NOT NULL,
        PRIMARY KEY (producer_id, reason, first_seq, last_seq)
    );
    CREATE TABLE IF NOT EXISTS trimmed (
        stream   TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        PRIMARY KEY (stream, entry_id)
    );
    """,
}

_INSERT = """
INSERT OR IGNORE INTO records (
    record_id, schema_version, producer_id, seq, session_id, service, provider, status,
    end_state, stream, started_at_ns, captured_at_ns, persisted_at_ns, envelope,
    request_body, body
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT = "SELECT envelope, request_body, body FROM records"


def path_from_url(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` / ``sqlite:////abs.db`` (``:memory:`` allowed)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SinkError(f"bad SQLite URL {url!r}: expected sqlite:///path.db")
    return url[len(prefix) :]


class SqliteSink:
    """Records in one SQLite file; safe to share between threads and worker processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
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
            self._migrate()
        except sqlite3.Error as e:
            raise SinkError(f"cannot open SQLite database {self.path!r}: {e}") from e
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> "SqliteSink":
        """Open the database a ``sqlite:///…`` URL names."""
        return cls(path_from_url(url))

    def _migrate(self) -> None:
        (current,) = self._conn.execute("PRAGMA user_version").fetchone()
        if current > _SCHEMA_VERSION:
            raise SinkError(
                f"database {self.path!r} has schema version {current}, newer than this "
                f"release ({_SCHEMA_VERSION}); upgrade rawtap"
            )
        for version in range(current + 1, _SCHEMA_VERSION + 1):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={version}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def write(self, records: Sequence[Record], persisted_at_ns: int) -> int:
        """Insert ``records`` in one transaction, skipping ids already stored."""
        rows = [
            (
                r.record_id,
                r.schema_version,
                r.producer_id,
                r.seq,
                r.session_id,
                r.service,
                r.provider,
                r.status,
                r.end_state.value,
                int(r.stream),
                r.started_at_ns,
                r.captured_at_ns,
                persisted_at_ns,
                encode_envelope(r),
                r.request_body,
                r.body,
            )
            for r in records
        ]
        with self._lock:
            conn = self._conn
            try:
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return conn.total_changes - before
            except sqlite3.Error as e:
                raise _sink_error(f"SQLite write to {self.path!r} failed: {e}", e) from e

    def write_accounting(self, accounting: Accounting) -> None:
        """Commit dead letters, producer reports and trimmed ids in one transaction (idempotent)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _write_accounting(conn, accounting)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise _sink_error(f"SQLite write to {self.path!r} failed: {e}", e) from e

    def reconcile(self) -> list[ProducerBalance]:
        """Every producer's balance: accepted = stored + dead-lettered + dropped + missing."""
        return reconcile_rows(self._query, "?")

    def ledger_counts(self) -> dict[str, int]:
        """Totals of the ledger tables (dead letters not later stored, trimmed ids)."""
        ((dead,),) = self._query(
            "SELECT count(*) FROM dead_letters d WHERE d.record_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM records r WHERE r.record_id = d.record_id)",
            (),
        )
        ((trimmed,),) = self._query("SELECT count(*) FROM trimmed", ())
        return {"dead_lettered": int(dead), "trimmed": int(trimmed)}

    def get(self, record_id: str) -> Record | None:
        """The record with ``record_id``, or None."""
        rows = self._query(f"{_SELECT} WHERE record_id = ?", (record_id,))
        return _to_record(rows[0]) if rows else None

    def count(self, producer_id: str | None = None) -> int:
        """Number of stored records (of one producer, if given)."""
        if producer_id is None:
            ((n,),) = self._query("SELECT count(*) FROM records", ())
        else:
            sql = "SELECT count(*) FROM records WHERE producer_id = ?"
            ((n,),) = self._query(sql, (producer_id,))
        return int(n)

    def iter_stored(self, producer_id: str | None = None) -> Iterator[tuple[Record, int]]:
        """Records (of one producer, if given) with their ``persisted_at_ns``, in capture order."""
        where, params = ("WHERE producer_id = ?", (producer_id,)) if producer_id else ("", ())
        # `where` is one of two constants; the values are bound parameters.
        sql = (
            f"SELECT envelope, request_body, body, persisted_at_ns FROM records {where} "  # noqa: S608
            "ORDER BY captured_at_ns, record_id"
        )
        for envelope, request_body, body, persisted_at_ns in self._query(sql, params):
            yield _to_record((envelope, request_body, body)), int(persisted_at_ns)

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise SinkError(f"SQLite read from {self.path!r} failed: {e}") from e

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


def _sink_error(message: str, error: sqlite3.Error) -> SinkError:
    # Locks, I/O and a full disk pass; constraint and data errors are the batch's fault.
    transient = isinstance(error, sqlite3.OperationalError)
    return SinkError(message, transient=transient)


def _write_accounting(conn: sqlite3.Connection, accounting: Accounting) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO dead_letters (stream, entry_id, record_id, producer_id, seq, "
        "error, deliveries, dead_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    for report in accounting.reports:
        conn.execute(
            "INSERT INTO producer_progress (producer_id, next_seq, final, reported_at_ns) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (producer_id) DO UPDATE SET "
            "next_seq = max(next_seq, excluded.next_seq), final = max(final, excluded.final), "
            "reported_at_ns = max(reported_at_ns, excluded.reported_at_ns)",
            (report.producer_id, report.next_seq, int(report.final), report.at_ns),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO producer_drops (producer_id, reason, first_seq, last_seq) "
            "VALUES (?, ?, ?, ?)",
            [
                (report.producer_id, reason, lo, hi)
                for reason, ranges in report.dropped.items()
                for lo, hi in ranges
            ],
        )
    conn.executemany(
        "INSERT OR IGNORE INTO trimmed (stream, entry_id) VALUES (?, ?)",
        [(accounting.stream, entry_id) for entry_id in accounting.trimmed],
    )


def _to_record(row: tuple[bytes, bytes, bytes]) -> Record:
    envelope, request_body, body = row
    try:
        data = orjson.loads(envelope)
        data["request_body"] = bytes(request_body)
        data["body"] = bytes(body)
        return Record.model_validate(data)
    except (orjson.JSONDecodeError, ValueError) as e:
        raise CodecError(f"stored row is not a valid record: {e}") from e
