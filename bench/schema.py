"""Schema: what each part of rawtap's SQLite table costs a write, and 200 KB records.

**Per index.** The same pre-built rows (``bench/_bare.py``'s columns from the
benchmark's 2 KB entries, built before the clock starts) are written in batches
of 500, one transaction each, into fresh files: rawtap's table as its
migrations create it, and that table without one of its secondary indexes, one
variant per index, interleaved round by round. A figure's ratio is the rate
with the index over the rate without it: 0.95× means the index costs 5 % of
the write. Also the narrow table (the record's bytes alone) as the floor.

**200 KB records.** One worker process over a stream of 200 KB records, in MB/s
of bodies, against a bare ``executemany`` of the same bodies as
``(record_id, body)`` rows into SQLite in this process (no Redis, no decoding):
the floor of writing that many bytes at all; and the narrow bare loop of
``bench/_bare.py`` through Redis, the floor once 200 KB entries cross the stream.
"""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench._bare import NARROW_COLUMNS, NARROW_DDL, OWN_COLUMNS, narrow_row, own_row
from bench._common import BODY_BYTES, EntryFactory, Figure, interleave, rate_figure
from bench.worker import consume_rate

_BATCH = 500
_FILES = itertools.count()


def _schema(tmp: str) -> tuple[str, list[tuple[str, str]]]:
    """rawtap's ``records`` DDL and its secondary indexes (name, DDL), from a fresh store."""
    from rawtap.consumer import open_sink

    path = f"{tmp}/schema.db"
    open_sink(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    try:
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()[0]
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'records' AND sql IS NOT NULL ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return table, [(str(n), str(s)) for n, s in indexes]


def _writer(
    tmp: str, ddl: Sequence[str], sql: str, rows: Sequence[Sequence[Any]]
) -> Callable[[], float]:
    def run() -> float:
        path = f"{tmp}/v{next(_FILES)}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in ddl:
                conn.execute(statement)
            started = time.perf_counter()
            for i in range(0, len(rows), _BATCH):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, rows[i : i + _BATCH])
                conn.execute("COMMIT")
            return len(rows) / (time.perf_counter() - started)
        finally:
            conn.close()

    return run


def _insert(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(columns))})"
    )


def _index_figures(quick: bool) -> list[Figure]:
    n = 2_000 if quick else 20_000
    rounds = 1 if quick else 5
    entries = EntryFactory(BODY_BYTES).make(n)
    now = time.time_ns()
    own = [own_row(e, now) for e in entries]
    narrow = [narrow_row(e, now) for e in entries]
    with tempfile.TemporaryDirectory(prefix="rawtap-bench-schema-") as tmp:
        table, indexes = _schema(tmp)
        insert = _insert("records", OWN_COLUMNS)
        variants = {"all": _writer(tmp, [table, *(s for _, s in indexes)], insert, own)}
        for name, _ in indexes:
            others = [s for other, s in indexes if other != name]
            variants[name] = _writer(tmp, [table, *others], insert, own)
        variants["narrow"] = _writer(tmp, [NARROW_DDL], _insert("narrow", NARROW_COLUMNS), narrow)
        got = dict(zip(variants, interleave(list(variants.values()), rounds), strict=True))
    figures = [
        rate_figure(
            "schema", f"index {name}: writes with it vs without it", got["all"], got[name],
            "rawtap's table without this index", note=f"{n:,} pre-built 2 KB rows",
        )
        for name, _ in indexes
    ]  # fmt: skip
    figures.append(
        rate_figure(
            "schema", "rawtap's table vs the narrow table (rows pre-built, no Redis)", got["all"],
            got["narrow"], "(record_id, envelope, request_body, body), no other index",
        )
    )  # fmt: skip
    return figures


def _bare_blobs(entries: Sequence[dict[bytes, bytes]]) -> float:
    rows = [(e[b"rid"].decode(), e[b"body"]) for e in entries]
    with tempfile.TemporaryDirectory(prefix="rawtap-bench-blobs-") as tmp:
        ddl = "CREATE TABLE blobs (record_id TEXT PRIMARY KEY, body BLOB NOT NULL)"
        rate = _writer(tmp, [ddl], "INSERT OR IGNORE INTO blobs VALUES (?, ?)", rows)()
    return rate * len(entries[0][b"body"]) / 1e6


def _large_figures(redis_url: str, quick: bool, postgres_url: str | None) -> list[Figure]:
    size = 200_000
    n = 100 if quick else 1_500
    rounds = 1 if quick else 3
    entries = EntryFactory(size).make(n)

    def worker() -> float:
        rate = consume_rate("rawtap", redis_url, "sqlite", postgres_url, entries)
        return rate * size / 1e6

    def bare_through_redis() -> float:
        rate = consume_rate("bare-narrow", redis_url, "sqlite", postgres_url, entries)
        return rate * size / 1e6

    got = interleave([worker, lambda: _bare_blobs(entries), bare_through_redis], rounds)
    return [
        rate_figure(
            "schema", "worker → SQLite at 200 KB records, MB/s of bodies", got[0], got[1],
            "bare executemany of the same 200 KB bodies as (record_id, body), in-process",
            unit="MB/s", ratio_goal=0.8, note=f"{n:,} records per run",
        ),
        rate_figure(
            "schema", "worker → SQLite at 200 KB records vs the bare loop through Redis (the "
            "floor with the stream in the path)", got[0], got[2],
            "bench/_bare.py narrow loop: XREADGROUP, executemany of the bytes, XACK",
            unit="MB/s", ratio_goal=0.8, note=f"{n:,} records per run",
        ),
    ]  # fmt: skip


def run(redis_url: str, quick: bool, postgres_url: str | None, **_: Any) -> list[Figure]:
    """Per-index costs of the SQLite table, then 200 KB records against bare blob writes."""
    return _index_figures(quick) + _large_figures(redis_url, quick, postgres_url)
