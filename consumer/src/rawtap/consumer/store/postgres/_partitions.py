"""Day partitions of ``records`` (``partition=day``): created on demand, dropped by retention.

One partition per UTC day of ``started_at``, named ``records_p20261125``. A
worker creates the ones a batch needs before writing it; retention drops the
ones wholly before the cut-off instead of deleting their rows.
"""

import contextlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from rawtap.consumer.store.postgres._connect import Connection
from rawtap.consumer.store.postgres._values import EPOCH, ns_to_datetime


class DayPartitions:
    """The day partitions of one store, with the days known to exist remembered.

    Not thread-safe: the sink calls it under its lock.
    """

    def __init__(self) -> None:
        self._known: set[date] = set()

    def ensure(self, conn: Connection, started_ns: Iterable[int]) -> None:
        """Create the partitions records starting at ``started_ns`` need, if missing."""
        days = {ns_to_datetime(ns).date() for ns in started_ns} - self._known
        if not days:
            return
        self._known |= existing(conn)
        for day in sorted(days - self._known):
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
            self._known.add(day)

    def drop_before(self, conn: Connection, before_ns: int) -> int:
        """Drop every partition whose day ends at or before ``before_ns``; rows dropped."""
        total = 0
        for day in sorted(existing(conn)):
            end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            if (end - EPOCH) // timedelta(seconds=1) * 1_000_000_000 > before_ns:
                continue  # the partition holds rows at or after the cut-off
            name = sql.Identifier(f"records_p{day:%Y%m%d}")
            with conn.transaction():
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
                conn.execute(sql.SQL("DROP TABLE {}").format(name))
            total += int(row[0]) if row else 0
            self._known.discard(day)
        return total


def existing(conn: Connection) -> set[date]:
    """The days that have a partition now."""
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
