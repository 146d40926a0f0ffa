"""Which PostgreSQL errors are a row's fault (dead-letter it) and which are the database's."""

import psycopg

from rawtap.shared import scrub_text

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


def one_line(error: BaseException) -> str:
    """The error's message on one line, for a :class:`SinkError`."""
    # libpq messages can quote the conninfo they were given: never its password.
    return scrub_text(" ".join(str(error).split())) or type(error).__name__
