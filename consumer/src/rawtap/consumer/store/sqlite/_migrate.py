"""Creating and upgrading a SQLite store from ``migrations/sqlite/`` (``PRAGMA user_version``)."""

import sqlite3
from collections.abc import Iterator

from rawtap.consumer.store._migrations import migration_scripts
from rawtap.consumer.store._sink import SinkError


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of the open database (``PRAGMA user_version``)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate_store(conn: sqlite3.Connection, path: str, *, apply: bool) -> list[str]:
    """Apply the pending migrations (or, without ``apply``, refuse a store that needs them).

    Each version is one ``BEGIN IMMEDIATE`` transaction, so processes opening the
    store together migrate it once. Returns the names of the files applied.
    """
    scripts = migration_scripts("sqlite")
    latest = scripts[-1][0]
    current = schema_version(conn)
    if current > latest:
        raise SinkError(
            f"database {path!r} has schema version {current}, newer than this "
            f"release ({latest}); upgrade rawtap"
        )
    if current < latest and not apply:
        raise SinkError(
            f"database {path!r} has schema version {current}, this release needs "
            f"{latest}; run `rawtap migrate --sink sqlite:///{path}`"
        )
    applied = []
    for version, name, sql in scripts:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if schema_version(conn) >= version:
                conn.execute("COMMIT")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


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
