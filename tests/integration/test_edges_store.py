"""No record blocks its shard, on both stores; entries the worker must refuse.

Faults are injected for real: values a store cannot index, triggers and
constraints that make the database itself raise each SQLSTATE class (or SQLite
result code), a killed connection, a read-only or full SQLite file, and forged
entries and reports written straight to the stream. Each test decides by
events and counts (rows stored, dead letters, retries), with generous bounds.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis
from psycopg import sql

from rawtap.consumer import (
    PostgresSink,
    RecordQuery,
    SinkError,
    SqliteSink,
    Store,
    Worker,
    open_sink,
)
from rawtap.consumer.store import FILTER_MAX_BYTES
from rawtap.consumer.store.postgres import is_data_error as pg_is_data_error
from rawtap.consumer.store.sqlite import is_data_error as sqlite_is_data_error
from rawtap.shared import (
    ProducerReport,
    Record,
    StreamNames,
    encode_entry,
    encode_envelope,
    make_record_id,
)
from tests.support.cli import run_cli
from tests.support.pipeline import wait_until, worker_thread
from tests.support.streams import xadd_entry, xrange_entries

I64_MAX = 2**63 - 1
CHAT = "https://api.openai.com/v1/chat/completions"


def _url(kind: str, tmp_path: Path, postgres_url: str) -> Iterator[str]:
    """A fresh store URL of ``kind``; a PostgreSQL schema is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/edges.db"
        return
    schema = f"rawtap_edges_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on."""
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store of ``kind`` (PostgreSQL in a schema of its own)."""
    postgres_url = request.getfixturevalue("postgres_url") if kind != "sqlite" else ""
    urls = _url(kind, tmp_path, postgres_url)
    url = next(urls)
    with open_sink(url) as s:
        yield s
    for _ in urls:  # drop the schema
        pass


def _sql(store: Store, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement written with ``?`` placeholders on either store."""
    if isinstance(store, PostgresSink):
        return store.execute(statement.replace("?", "%s"), params)
    assert isinstance(store, SqliteSink)
    return store.execute(statement, params)


def _url_of(store: Store) -> str:
    if isinstance(store, SqliteSink):
        return f"sqlite:///{store.path}"
    assert isinstance(store, PostgresSink)
    sep = "&" if "?" in store.conninfo else "?"
    return f"{store.conninfo}{sep}schema={store.schema}"


_counter = iter(range(10**9))


def _record(producer_id: str = "e" * 16, **fields: Any) -> Record:
    now = time.time_ns()
    seq = fields.pop("seq", next(_counter))
    return Record(
        record_id=fields.pop("record_id", make_record_id(now, producer_id, seq % 2**48)),
        producer_id=producer_id,
        seq=seq,
        provider=fields.pop("provider", "openai"),
        body=fields.pop("body", b"{}"),
        started_at_ns=fields.pop("started_at_ns", now),
        captured_at_ns=now,
        **fields,
    )


def _random_text(rng: random.Random, n: int) -> str:
    """``n`` random code points from all of Unicode but the surrogates, NUL included."""
    out: list[str] = []
    while len(out) < n:
        c = rng.randrange(0, 0x110000)
        if not 0xD800 <= c <= 0xDFFF:
            out.append(chr(c))
    return "".join(out)


def _worker(redis_url: str, prefix: str, store: Store, **kw: Any) -> Worker:
    return Worker(
        redis_url=redis_url,
        stream_prefix=prefix,
        consumer=kw.pop("consumer", "w-edges"),
        block_ms=50,
        sink=store,
        **kw,
    )


def _push(client: redis.Redis, prefix: str, *entries: dict[bytes, bytes]) -> list[bytes]:
    stream = StreamNames(prefix).shard(0)
    return [xadd_entry(client, stream, e) for e in entries]


def _letters(client: redis.Redis, prefix: str) -> list[dict[bytes, bytes]]:
    return [f for _, f in xrange_entries(client, StreamNames(prefix).dead_letters)]


def _run_until(worker: Worker, done: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Run ``worker`` until ``done``; return the seconds it took."""
    started = time.monotonic()
    with worker_thread(worker):
        wait_until(done, timeout, what)
    return time.monotonic() - started


# -- 1. values of any length and any bytes store ----------------------------------------


def test_values_of_any_length_and_bytes_store_and_stay_whole_in_the_envelope(
    store: Store, redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    rng = random.Random(3000)
    long_session = _random_text(rng, 3000)
    long_model = _random_text(rng, 3000)
    body = orjson.dumps(
        {
            "id": _random_text(rng, 3000),
            "object": "chat.completion",
            "model": long_model,
            "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "x" * 5000}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    )
    odd = _record(
        session_id=long_session,
        service=_random_text(rng, 3000),
        provider="openai",
        url=CHAT + "?q=" + _random_text(rng, 3000),
        body=body,
        status=200,
        metadata={_random_text(rng, 50): _random_text(rng, 3000)},
        response_headers=[("x-request-id", "".join(chr(rng.randrange(256)) for _ in range(3000)))],
    )
    after = [_record() for _ in range(5)]
    _push(redis_client, stream_prefix, encode_entry(odd), *(encode_entry(r) for r in after))
    worker = _worker(redis_url, stream_prefix, store)
    seconds = _run_until(worker, lambda: store.count() == 6, "all 6 records stored", 30)
    print(f"shard moved on after the odd record in {seconds:.2f}s")
    assert worker.stats.dead_lettered == 0
    assert worker.stats.sink_errors == 0
    stored = store.get_stored(odd.record_id)
    assert stored is not None
    assert stored.record == odd  # the envelope keeps every value whole
    assert stored.derived is not None
    # A derived filter value is a bounded copy too; the body it came from is whole.
    model = stored.derived.model
    assert model is not None
    assert long_model.startswith(model)
    assert FILTER_MAX_BYTES - 4 < len(model.encode()) <= FILTER_MAX_BYTES
    # The filter copies are bounded; a filter with the whole value still finds the record.
    (summary,) = store.summaries(RecordQuery(session_id=long_session))
    assert summary.record_id == odd.record_id
    assert summary.session_id is not None
    assert long_session.startswith(summary.session_id)
    assert len(summary.session_id.encode()) <= FILTER_MAX_BYTES
    assert store.count_matching(RecordQuery(model=long_model)) == 1


# -- 2. sink errors classified by what they are ----------------------------------------

# PostgreSQL faults the database raises for one record (its session_id says which):
# real ones where a schema change makes them real, a trigger's RAISE otherwise.
_PG_SETUP = """
CREATE TABLE edge_fault (code text NOT NULL);
CREATE FUNCTION edge_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE code text;
BEGIN
  IF NEW.session_id = 'poison-22' THEN
    PERFORM NEW.session_id::integer;  -- a real 22P02 invalid_text_representation
  END IF;
  SELECT f.code INTO code FROM edge_fault f LIMIT 1;
  IF code IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = 'injected fault ' || code;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER edge_fault BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION edge_fault();
ALTER TABLE records ADD CONSTRAINT edge_check CHECK (session_id IS DISTINCT FROM 'poison-23');
CREATE INDEX edge_url ON records (url);
"""

_SQLITE_SETUP = [
    "CREATE TABLE edge_fault (code TEXT NOT NULL)",
    "CREATE TABLE edge_int (x INTEGER PRIMARY KEY)",
    "CREATE TRIGGER edge_constraint BEFORE INSERT ON records WHEN NEW.session_id = "
    "'poison-constraint' BEGIN SELECT RAISE(ABORT, 'injected constraint fault'); END",
    "CREATE TRIGGER edge_mismatch BEFORE INSERT ON records WHEN NEW.session_id = "
    "'poison-mismatch' BEGIN INSERT INTO edge_int VALUES (NEW.session_id); END",
    "CREATE TRIGGER edge_toobig BEFORE INSERT ON records WHEN NEW.session_id = "
    "'poison-toobig' BEGIN SELECT zeroblob(length(NEW.session_id) * 200000000); END",
]


def _install_faults(store: Store) -> None:
    if isinstance(store, PostgresSink):
        store.execute(_PG_SETUP)
    else:
        for statement in _SQLITE_SETUP:
            _sql(store, statement)


PERMANENT = {
    "postgresql": {
        "22": ({"session_id": "poison-22"}, "invalid input syntax for type integer"),
        "23": ({"session_id": "poison-23"}, "edge_check"),
        "54": ({"url": "RANDOM"}, "index row"),
    },
    "sqlite": {
        "SQLITE_CONSTRAINT": ({"session_id": "poison-constraint"}, "injected constraint fault"),
        "SQLITE_MISMATCH": ({"session_id": "poison-mismatch"}, "datatype mismatch"),
        "SQLITE_TOOBIG": ({"session_id": "poison-toobig"}, "too big"),
    },
}


@pytest.mark.parametrize(
    ("kind", "fault"), [(kind, fault) for kind, faults in PERMANENT.items() for fault in faults]
)
def test_a_data_error_dead_letters_only_its_record_within_seconds(
    kind: str,
    fault: str,
    store: Store,
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
) -> None:
    fields, message = PERMANENT[kind][fault]
    if fields.get("url") == "RANDOM":  # a real index entry over 2,704 bytes
        fields = {"url": CHAT + "?q=" + _random_text(random.Random(54), 3000)}
    _install_faults(store)
    records = [_record() for _ in range(20)]
    poison = _record(**fields)
    records.insert(11, poison)
    _push(redis_client, stream_prefix, *(encode_entry(r) for r in records))
    worker = _worker(redis_url, stream_prefix, store, max_deliveries=1000)
    seconds = _run_until(worker, lambda: worker.stats.acked == 21, "the batch handled", timeout=30)
    print(f"{fault}: shard moved on in {seconds:.2f}s")
    assert store.count() == 20
    assert store.get(poison.record_id) is None
    assert worker.stats.sink_errors == 0  # never retried: bisected in the same delivery
    (letter,) = _letters(redis_client, stream_prefix)
    assert letter[b"f:rid"] == poison.record_id.encode()
    assert message in letter[b"error"].decode(), letter[b"error"]
    assert letter[b"deliveries"] == b"1"
    assert store.ledger_counts()["dead_lettered"] == 1


TRANSIENT_PG = ["08006", "40001", "40P01", "42501", "42P01", "53100", "55P03", "57014",
                "57P01", "58030", "XX000"]  # fmt: skip


def _set_pg_fault(store: Store, code: str | None) -> None:
    _sql(store, "DELETE FROM edge_fault")
    if code is not None:
        _sql(store, "INSERT INTO edge_fault (code) VALUES (?)", code)


def _sqlite_readonly(store: Store, on: bool) -> None:
    _sql(store, f"PRAGMA query_only = {int(on)}")


def _sqlite_full(store: Store, on: bool) -> None:
    if on:
        (pages,) = _sql(store, "PRAGMA page_count")[0]
        _sql(store, f"PRAGMA max_page_count = {int(pages)}")
    else:
        _sql(store, "PRAGMA max_page_count = 1073741823")


def _sqlite_error(store: Store, on: bool) -> None:
    # A schema changed under the worker: every insert runs a trigger whose table is gone.
    if on:
        _sql(store, "CREATE TABLE edge_gone (x)")
        _sql(store, "CREATE TRIGGER edge_error BEFORE INSERT ON records "
                    "BEGIN INSERT INTO edge_gone VALUES (1); END")  # fmt: skip
        _sql(store, "DROP TABLE edge_gone")
    else:
        _sql(store, "DROP TRIGGER edge_error")


SQLITE_TRANSIENT: dict[str, Callable[[Store, bool], None]] = {
    "SQLITE_READONLY": _sqlite_readonly,
    "SQLITE_FULL": _sqlite_full,
    "SQLITE_ERROR": _sqlite_error,
}


def _count_or_none(store: Store) -> int | None:
    """Rows stored, or None while the connection the test shares with the worker is down.

    The 08 case kills that connection: whichever of the worker and the test uses it
    first sees the loss; the worker reconnects, the test asks again.
    """
    try:
        return store.count()
    except SinkError:
        return None


@pytest.mark.parametrize(
    ("kind", "fault"),
    [("postgresql", f) for f in [*TRANSIENT_PG, "08-killed"]]
    + [("sqlite", f) for f in SQLITE_TRANSIENT],
)
def test_a_database_fault_is_retried_and_nothing_is_dead_lettered(
    kind: str,
    fault: str,
    store: Store,
    redis_url: str,
    stream_prefix: str,
    redis_client: redis.Redis,
) -> None:
    is_pg = kind == "postgresql"
    _install_faults(store)
    # Bodies that need new pages, so that a full SQLite file refuses every record.
    records = [_record(body=b"x" * 20_000) for _ in range(10)]
    worker = _worker(redis_url, stream_prefix, store, max_deliveries=1000)
    with worker_thread(worker):
        if fault == "08-killed":  # a real lost connection: the backend is terminated
            ((pid,),) = _sql(store, "SELECT pg_backend_pid()")
            assert isinstance(store, PostgresSink)
            with psycopg.connect(store.conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        elif is_pg:
            _set_pg_fault(store, fault)
        else:
            SQLITE_TRANSIENT[fault](store, True)
        _push(redis_client, stream_prefix, *(encode_entry(r) for r in records))
        if fault != "08-killed":
            wait_until(lambda: worker.stats.sink_errors >= 2, 30, "the worker to retry")
            assert store.count() == 0
            assert worker.stats.dead_lettered == 0
            if is_pg:
                _set_pg_fault(store, None)
            else:
                SQLITE_TRANSIENT[fault](store, False)
        wait_until(lambda: _count_or_none(store) == 10, 30, "every record stored after the fault")
    assert worker.stats.sink_errors >= 1
    assert worker.stats.dead_lettered == 0
    assert _letters(redis_client, stream_prefix) == []


def test_every_result_code_and_sqlstate_class_is_classified() -> None:
    """The mapping itself, for the codes no test can make a real database raise cheaply."""
    import sqlite3

    for code, data in [(5, False), (6, False), (10, False), (13, False), (14, False),
                       (11, False), (26, False), (1, False), (8, False),
                       (19, True), (1811, True), (20, True), (18, True)]:  # fmt: skip
        error = sqlite3.OperationalError("x")
        error.sqlite_errorcode = code
        assert sqlite_is_data_error(error) is data, code
    assert sqlite_is_data_error(sqlite3.ProgrammingError("Error binding parameter 1"))
    assert not sqlite_is_data_error(
        sqlite3.ProgrammingError("Cannot operate on a closed database.")
    )
    for state in ["22001", "22P05", "23505", "23514", "54000", "54001"]:
        assert pg_is_data_error(psycopg.errors.lookup(state)("x")), state
    for state in TRANSIENT_PG:
        assert not pg_is_data_error(psycopg.errors.lookup(state)("x")), state
    assert not pg_is_data_error(psycopg.OperationalError("connection lost"))
    assert pg_is_data_error(psycopg.DataError("cannot dump"))


# -- 3. no stored value breaks a read command --------------------------------------------


def test_odd_stored_rows_never_break_list_show_export_or_stats(
    store: Store,
    redis_url: str,
    stream_prefix: str,
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    edge = _record(
        seq=I64_MAX,
        started_at_ns=0,
        session_id=_random_text(rng, 3000),
        status=999,
        ended_ns=I64_MAX,
        first_byte_ns=I64_MAX,
        original_size=I64_MAX,
        error="\x1b[31mred\x00",
    )
    far = _record(producer_id="f" * 16, seq=0, started_at_ns=I64_MAX)
    plain = _record(producer_id="f" * 16, seq=1)
    future = _record(producer_id="f" * 16, seq=2)
    store.write([edge, far, plain, future], 1)
    envelope = orjson.loads(encode_envelope(future))
    envelope["schema_version"] = 99
    _sql(store, "UPDATE records SET envelope = ?, schema_version = 99 WHERE record_id = ?",
         orjson.dumps(envelope), future.record_id)  # fmt: skip
    _sql(store, "UPDATE records SET seq = -5 WHERE record_id = ?", plain.record_id)
    _sql(store, "INSERT INTO producer_progress VALUES (?, ?, ?, ?)", "f" * 16, I64_MAX, True, 0)
    _sql(store, "INSERT INTO producer_drops VALUES (?, ?, ?, ?)", "f" * 16, "odd", 0, I64_MAX)
    url = _url_of(store)
    env_args = ("--redis-url", redis_url, "--stream-prefix", stream_prefix)

    listed = run_cli(capsysbinary, "list", "--sink", url, "--limit", "10")
    assert listed.code == 0, listed.err
    assert edge.record_id.encode() in listed.out
    assert future.record_id.encode() in listed.out
    for record in (edge, far, plain):
        shown = run_cli(capsysbinary, "show", record.record_id, "--sink", url)
        assert shown.code == 0, shown.err
    shown = run_cli(capsysbinary, "show", future.record_id, "--sink", url)
    assert (shown.code, shown.err.count("\n")) == (1, 1)  # one line: "upgrade rawtap"
    assert "schema version 99" in shown.err
    exported = run_cli(capsysbinary, "export", "--sink", url)
    assert exported.code == 1  # documented: a row left out is named, exit 1
    assert len(exported.out.splitlines()) == 3  # every other row is exported
    assert exported.err.count("\n") == 1
    assert future.record_id in exported.err
    stats = run_cli(capsysbinary, "stats", "--sink", url, *env_args)
    assert stats.code == 5, stats.err  # read to the end: the odd ledger names dropped records
    assert "Traceback" not in stats.err
    assert "out of range" not in stats.err


# -- 4. entries the worker must refuse ---------------------------------------------------


def _forged(record: Record, **envelope_changes: Any) -> dict[bytes, bytes]:
    entry = encode_entry(record)
    envelope = orjson.loads(entry[b"env"])
    envelope.update(envelope_changes)
    entry[b"env"] = orjson.dumps(envelope)
    return entry


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "schema_version": ({"schema_version": 99}, "schema_version 99 is not supported"),
    "seq": ({"seq": 2**63}, "seq 9223372036854775808 is outside"),
    "size": ({"original_size": -1}, "original_size -1 is outside"),
    "started": ({"started_at_ns": -1}, "started_at_ns -1 is outside"),
    "ended": ({"ended_ns": 2**64 - 1}, "ended_ns 18446744073709551615 is outside"),
    "status": ({"status": 10**6}, "status 1000000 is not an HTTP status"),
    "headers": ({"response_headers": [["a", "b"]] * 20_000}, "response_headers has 20000"),
    "header_bytes": ({"request_headers": [["x", "y" * (2 << 20)]]}, "request_headers hold"),
    "chunk": ({"chunks": [[0, -2], [0, 4]]}, "chunk 0 (0 ns, -2 bytes) is out of range"),
    "producer_id": ({"producer_id": "p" * 300}, "producer_id is longer than 256 bytes"),
}


def test_out_of_range_envelopes_are_dead_lettered_with_a_reason(
    store: Store, redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    good = [_record() for _ in range(3)]
    forged = [_forged(_record(body=b"{}"), **changes) for changes, _ in REFUSED.values()]
    _push(redis_client, stream_prefix, encode_entry(good[0]), *forged,
          *(encode_entry(r) for r in good[1:]))  # fmt: skip
    worker = _worker(redis_url, stream_prefix, store)
    _run_until(worker, lambda: worker.stats.acked == len(forged) + 3, "every entry handled", 30)
    assert store.count() == 3
    assert worker.stats.dead_lettered == len(REFUSED)
    errors = [letter[b"error"].decode() for letter in _letters(redis_client, stream_prefix)]
    for (_changes, reason), error in zip(REFUSED.values(), errors, strict=True):
        assert reason in error, (reason, error)
        assert "\n" not in error
    assert store.ledger_counts()["dead_lettered"] == len(REFUSED)


# -- 5. producer reports are validated, never folded in blindly ------------------------


def _report_entry(
    producer_id: str, next_seq: int, dropped: Any, at_ns: int = 1
) -> dict[bytes, bytes]:
    env = {"type": "producer_report", "producer_id": producer_id, "next_seq": next_seq,
           "dropped": dropped, "at_ns": at_ns, "final": False}  # fmt: skip
    return {b"kind": b"report", b"env": json.dumps(env).encode()}  # orjson: 64-bit ints only


FORGED_REPORTS = {
    "reversed": (10, {"x": [[4, 0]]}, "reversed or negative"),
    "overlapping": (10, {"x": [[0, 4], [3, 9]]}, "out of order or overlaps"),
    "beyond_accepted": (5, {"x": [[0, 9]]}, "beyond the 5 records accepted"),
    "huge_next_seq": (461168601842738792400, {}, "next_seq 461168601842738792400 is outside"),
    "too_many_reasons": (10, {f"r{i}": [[i, i]] for i in range(10)} | {
        f"z{i}": [] for i in range(200)}, "drop reasons"),
}  # fmt: skip


def test_forged_reports_are_dead_lettered_counted_and_never_reconciled(
    store: Store, redis_url: str, stream_prefix: str, redis_client: redis.Redis
) -> None:
    entries = [
        _report_entry(f"forged-{name}", next_seq, dropped)
        for name, (next_seq, dropped, _) in FORGED_REPORTS.items()
    ]
    honest = ProducerReport(producer_id="honest", next_seq=10, dropped={"full": [(2, 3)]}, at_ns=1)
    entries.append(_report_entry("honest", 10, {"full": [[2, 3]]}))
    _push(redis_client, stream_prefix, *entries)
    worker = _worker(redis_url, stream_prefix, store)
    _run_until(worker, lambda: worker.stats.acked == len(entries), "every report handled", 30)
    assert worker.stats.reports == 1
    assert worker.stats.dead_lettered == len(FORGED_REPORTS)
    errors = [letter[b"error"].decode() for letter in _letters(redis_client, stream_prefix)]
    for (_n, _d, reason), error in zip(FORGED_REPORTS.values(), errors, strict=True):
        assert reason in error, (reason, error)
    balances = {b.producer_id: b for b in store.reconcile()}
    assert set(balances) == {"honest"}  # no forged figure reached the ledger
    assert balances["honest"].accepted == honest.next_seq
    assert balances["honest"].dropped == {"full": 2}
    assert store.ledger_counts()["dead_lettered"] == len(FORGED_REPORTS)
