"""Which SQLite errors are a row's fault (dead-letter it) and which are the file's (retry)."""

import sqlite3

from rawtap.consumer.store._sink import SinkError

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


def sink_error(message: str, error: sqlite3.Error) -> SinkError:
    """A :class:`SinkError` for ``error``, transient unless the rows are at fault."""
    return SinkError(message, transient=not is_data_error(error))
