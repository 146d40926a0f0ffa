"""Opening a psycopg connection to a store's schema (created first when migrating)."""

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from rawtap.consumer.store._sink import SinkError
from rawtap.consumer.store.postgres._errors import one_line

Connection = psycopg.Connection[tuple[Any, ...]]
"""A connection whose rows are tuples (psycopg's default row factory)."""


def connect(
    conninfo: str,
    schema: str,
    label: str,
    *,
    timeout_s: float,
    ensure_schema: bool,
    read_only: bool,
) -> Connection:
    """An autocommit connection whose ``search_path`` is ``schema``.

    ``ensure_schema`` creates the schema if missing; ``read_only`` makes every
    transaction read-only. Failures raise :class:`SinkError` naming ``label``.
    """
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=max(1, int(timeout_s)),
            application_name="rawtap",
        )
    except psycopg.Error as e:
        raise SinkError(f"cannot connect to {label}: {one_line(e)}") from e
    try:
        if ensure_schema:
            # IF NOT EXISTS still races with a concurrent creator; losing that race is fine.
            with contextlib.suppress(
                psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema
            ):
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
    except psycopg.Error as e:
        conn.close()
        raise SinkError(f"cannot use schema of {label}: {one_line(e)}") from e
    return conn


@contextlib.contextmanager
def planned(conn: Connection, plan: str) -> Iterator[None]:
    """A transaction that first runs ``plan`` (``SET LOCAL …``), or nothing when it is empty."""
    if not plan:
        yield
        return
    with conn.transaction():
        conn.execute(plan.encode())
        yield
