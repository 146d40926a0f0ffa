"""The bare loops the worker is measured against: what a hand-written consumer would do.

A bare loop knows its data (OpenAI chat completions, the one shape the benchmark
sends) and checks nothing: ``XREADGROUP`` a batch, ``orjson.loads`` the envelope
and the body, pick the columns out of both by key, write the batch in one
transaction, ``XACK``. No validation, no derivation beyond the five keys it
reads, no dead letters, no retries. Two tables:

* **own**: rawtap's own ``records`` table, created by rawtap's migrations, every
  column the worker fills (checked against the table at start; the derived text
  cut to its 1,024-byte preview, as rawtap stores it), through the same
  kind of statement (SQLite ``executemany`` of ``INSERT OR IGNORE``; PostgreSQL a
  binary ``COPY`` straight into the table, with no staging and no conflict check);
* **narrow**: a table of only what a record cannot be rebuilt without —
  ``record_id`` (primary key), the envelope and the two bodies — with no other
  column and no other index: the floor of storing the bytes at all, so that own
  ÷ narrow is the cost of rawtap's schema (derived columns and filter indexes).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

NARROW_DDL = (
    "CREATE TABLE IF NOT EXISTS narrow (record_id TEXT PRIMARY KEY, envelope BLOB NOT NULL, "
    "request_body BLOB NOT NULL, body BLOB NOT NULL)"
)
NARROW_COLUMNS = ("record_id", "envelope", "request_body", "body")

OWN_COLUMNS = (
    "record_id", "schema_version", "producer_id", "seq", "session_id", "service", "provider",
    "method", "url", "status", "end_state", "stream", "started_at_ns", "ended_ns",
    "captured_at_ns", "persisted_at_ns", "body_size", "envelope", "request_body", "body",
    "parser", "parser_version", "model", "response_id", "request_id", "input_tokens",
    "output_tokens", "cached_tokens", "reasoning_tokens", "finish_reason", "ttft_ns", "text",
    "tool_calls", "provider_error", "parse_error", "text_chars", "call_id",
)  # fmt: skip
"""Every column rawtap's SQLite ``records`` table has (PostgreSQL adds ``started_at``, and
computes ``text_words`` itself)."""


def own_row(fields: dict[bytes, bytes], now_ns: int) -> list[Any]:
    """The values of :data:`OWN_COLUMNS` from one entry, read by key, nothing checked."""
    raw = fields[b"env"]
    body = fields[b"body"]
    env = orjson.loads(raw)
    doc = orjson.loads(body)
    usage = doc.get("usage") or {}
    choice = doc["choices"][0]
    headers = dict(env["response_headers"])
    text = choice["message"].get("content")
    return [
        env["record_id"], env["schema_version"], env["producer_id"], env["seq"],
        env["session_id"], env["service"], env["provider"], env["method"], env["url"],
        env["status"], env["end_state"], env["stream"], env["started_at_ns"], env["ended_ns"],
        env["captured_at_ns"], now_ns, len(body), raw, fields[b"req"], body,
        "openai.chat", 1, doc.get("model"), doc.get("id"), headers.get("x-request-id"),
        usage.get("prompt_tokens"), usage.get("completion_tokens"), None, None,
        choice.get("finish_reason"), None, text[:1024], None, None, None, len(text),
        env.get("call_id"),
    ]  # fmt: skip


def narrow_row(fields: dict[bytes, bytes], _now_ns: int) -> list[Any]:
    """The values of :data:`NARROW_COLUMNS`: the id from the entry, the three blobs."""
    return [fields[b"rid"].decode(), fields[b"env"], fields[b"req"], fields[b"body"]]


class SqliteWriter:
    """One transaction of ``executemany`` per batch into ``records`` or ``narrow``."""

    def __init__(self, path: str, table: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if table == "narrow":
            self.conn.execute(NARROW_DDL)
            columns = NARROW_COLUMNS
        else:
            have = tuple(r[1] for r in self.conn.execute("PRAGMA table_info(records)"))
            if set(have) != set(OWN_COLUMNS):
                raise RuntimeError(f"the bare loop's columns differ from the table's: {have}")
            columns = OWN_COLUMNS
        self.sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(columns))})"
        )

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` in one transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(self.sql, rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class PostgresWriter:
    """One binary ``COPY`` per batch straight into ``records`` (or ``narrow``), one transaction."""

    def __init__(self, url: str, table: str) -> None:
        import psycopg

        base, _, query = url.partition("?")
        schema = dict(p.split("=", 1) for p in query.split("&") if p)["schema"]
        self.conn = psycopg.connect(base, options=f"-c search_path={schema}")
        if table == "narrow":
            self.conn.execute(NARROW_DDL.replace("BLOB", "bytea"))
            self.conn.commit()
            columns: tuple[str, ...] = NARROW_COLUMNS
            self.types: tuple[str, ...] = ("text", "bytea", "bytea", "bytea")
        else:
            have = {
                r[0]
                for r in self.conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = 'records' AND is_generated = 'NEVER'",
                    (schema,),
                )
            }
            columns = (*OWN_COLUMNS, "started_at")
            if have != set(columns):
                raise RuntimeError(f"the bare loop's columns differ from the table's: {have}")
            self.types = _PG_TYPES
        self.copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        self.table = table

    def write(self, rows: Sequence[list[Any]]) -> None:
        """COPY ``rows`` and commit."""
        with self.conn.cursor() as cur, cur.copy(self.copy_sql) as copy:
            copy.set_types(self.types)
            for row in rows:
                copy.write_row(row)
        self.conn.commit()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


_PG_TYPES = (
    "text", "int2", "text", "int8", "text", "text", "text", "text", "text", "int8", "text",
    "bool", "int8", "int8", "int8", "int8", "int8", "bytea", "bytea", "bytea",
    "text", "int4", "text", "text", "text", "int8", "int8", "int8", "int8", "text", "int8",
    "text", "jsonb", "text", "text", "int8", "text", "timestamptz",
)  # fmt: skip


def pg_own_row(fields: dict[bytes, bytes], now_ns: int) -> list[Any]:
    """:func:`own_row` plus the partition key ``started_at`` (PostgreSQL's extra column)."""
    from datetime import UTC, datetime

    row = own_row(fields, now_ns)
    row.append(datetime.fromtimestamp(row[12] / 1e9, UTC))
    return row


def bare_loop(
    client: Any,
    stream: str,
    group: str,
    name: str,
    batch: int,
    make_row: Callable[[dict[bytes, bytes], int], list[Any]],
    writer: SqliteWriter | PostgresWriter,
    stopping: Callable[[], bool],
) -> int:
    """Read, write, acknowledge until ``stopping()``; the number of entries stored."""
    stored = 0
    while not stopping():
        reply = client.xreadgroup(group, name, {stream: ">"}, count=batch, block=100)
        if not reply:
            continue
        entries = reply[0][1]
        now = time.time_ns()
        writer.write([make_row(fields, now) for _, fields in entries])
        client.xack(stream, group, *[entry_id for entry_id, _ in entries])
        stored += len(entries)
    return stored
