"""Creating and upgrading a PostgreSQL store from ``migrations/postgresql/``.

Applied versions are rows of ``rawtap_migrations``; the layout chosen when the
store was created (``partition``) is a row of ``rawtap_settings``. Everything
runs under an advisory lock of the schema, so workers starting together
migrate once.
"""

from typing import Literal

from rawtap.consumer.store._migrations import migration_scripts
from rawtap.consumer.store._sink import SinkError
from rawtap.consumer.store.postgres._connect import Connection

Partitioning = Literal["none", "day"]

_PARTITION_MARKER = "/*rawtap:partition*/"
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM rawtap_migrations"
"""The highest migration applied to the store."""


def migrate_store(
    conn: Connection, label: str, requested: Partitioning | None, *, apply: bool
) -> list[str]:
    """Apply the pending migrations (or, without ``apply``, refuse a store that needs them).

    ``requested`` is the layout a new store gets. Returns the names of the files applied.
    """
    scripts = migration_scripts("postgresql")
    latest = scripts[-1][0]
    applied: list[str] = []
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass('rawtap_migrations') IS NOT NULL").fetchone()
        if not (exists and exists[0]):
            if not apply:
                raise SinkError(
                    f"{label} has no rawtap store; run `rawtap migrate` or start a worker"
                )
        else:
            _check_version(conn, label, latest, apply)
    if not apply:
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
            "CREATE TABLE IF NOT EXISTS rawtap_settings (key text PRIMARY KEY, value text NOT NULL)"
        )
        current = _check_version(conn, label, latest, apply)
        row = conn.execute("SELECT value FROM rawtap_settings WHERE key = 'partition'").fetchone()
        layout = row[0] if row else (requested or "none")
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
    return applied


def _check_version(conn: Connection, label: str, latest: int, apply: bool) -> int:
    row = conn.execute(SCHEMA_VERSION).fetchone()
    current = int(row[0]) if row else 0
    if current > latest:
        raise SinkError(
            f"{label} has schema version {current}, newer than this release "
            f"({latest}); upgrade rawtap"
        )
    if current < latest and not apply:
        raise SinkError(
            f"{label} has schema version {current}, this release needs {latest}; "
            "run `rawtap migrate`"
        )
    return current


def load_layout(conn: Connection) -> Partitioning:
    """The layout the store was created with."""
    row = conn.execute("SELECT value FROM rawtap_settings WHERE key = 'partition'").fetchone()
    return "day" if row and row[0] == "day" else "none"
