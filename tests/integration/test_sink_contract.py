"""The sink contract: every store (SQLite, PostgreSQL, PostgreSQL by day) passes the same tests."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from rawtap.consumer import (
    Derived,
    PostgresSink,
    RecordQuery,
    SinkError,
    SqliteSink,
    Store,
    ToolCall,
    derive,
    open_sink,
)
from rawtap.consumer.store import FILTER_MAX_BYTES
from rawtap.shared import SCHEMA_VERSION, CodecError, ConfigError
from tests.support.records import make_record, sse

DAY = 86_400 * 1_000_000_000
CHAT = "https://api.openai.com/v1/chat/completions"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_sink(store_url) as s:
        yield s


def _execute(store: Store, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """Run SQL written with ``?`` placeholders on either store."""
    if isinstance(store, PostgresSink):
        return store.execute(statement.replace("?", "%s"), params)
    assert isinstance(store, SqliteSink)
    return store.execute(statement, params)


def _chat_body(text: str, tokens: tuple[int, int]) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]},
        }
    )


def test_writes_are_idempotent_and_round_trip_byte_exact(store: Store) -> None:
    records = [
        make_record(body=_chat_body("hé", (3, 1)), url=CHAT, session_id="s1", metadata={"k": [1]}),
        make_record(
            body=gzip.compress(_chat_body("zip", (5, 2))),
            url=CHAT,
            headers=[("Content-Encoding", "gzip"), ("set-cookie", "a"), ("Set-Cookie", "b")],
        ),
        make_record("gemini", bytes(range(256)) * 3, status=200),  # binary
        make_record("anthropic", chunks=[*sse(("ping", {"type": "ping"})), b"\xff\x00tail"]),
        make_record("openai", b"", status=None, end_state="transport_error", error="refused"),
    ]
    derived = [derive(r) for r in records]
    assert store.write(records, 111, derived) == len(records)
    assert store.write(records, 222, derived) == 0  # a redelivered batch adds nothing
    assert store.write([*records[:2], make_record()], 333, None) == 1
    assert store.count() == len(records) + 1
    for record, d in zip(records, derived, strict=True):
        stored = store.get_stored(record.record_id)
        assert stored is not None
        assert stored.record == record  # every field, bodies byte for byte
        assert stored.derived == d
        assert stored.persisted_at_ns == 111
    assert store.get("0" * 40) is None
    gz = store.get_stored(records[1].record_id)
    assert gz is not None
    assert gz.derived is not None
    assert (gz.derived.text, gz.derived.input_tokens) == ("zip", 5)


def test_a_duplicate_anywhere_in_a_batch_adds_nothing_and_fresh_batches_follow(
    store: Store,
) -> None:
    # PostgreSQL COPYs a batch straight in and, when that meets a stored record, stages
    # that batch and a few more: every path must count only the new rows.
    again = make_record()
    assert store.write([again, again], 1) == 1  # the same record twice in one batch
    for _ in range(12):  # longer than any run of staged batches
        fresh = [make_record() for _ in range(3)]
        assert store.write([fresh[0], again, *fresh[1:]], 1) == 3
        assert store.write([make_record()], 1) == 1
    assert store.count() == 1 + 12 * 4


@pytest.mark.parametrize("text", ["long " * 1000, "naïve 😀 " * 700, "x" * 1024, "nul\x00" * 400])
def test_a_long_text_is_stored_as_a_preview_and_read_back_whole(store: Store, text: str) -> None:
    record = make_record(body=_chat_body(text, (1, 1)), url=CHAT)
    derived = derive(record)
    assert derived.text == text
    store.write([record], 1, [derived])
    query = "SELECT text, text_chars FROM records WHERE record_id = ?"
    assert isinstance(store, SqliteSink | PostgresSink)
    if isinstance(store, PostgresSink):
        query = query.replace("?", "%s")
    row = store.execute(query, (record.record_id,))
    preview, chars = row[0]
    assert chars == len(text)
    assert len(preview.encode("utf-8")) <= FILTER_MAX_BYTES  # not the response twice
    safe = text.replace("\x00", "\ufffd")  # as every stored text copy, short or long
    expected = derived.model_copy(update={"text": safe})
    stored = store.get_stored(record.record_id)
    assert stored is not None
    assert stored.derived is not None
    assert stored.derived.text == safe  # derived again from the stored body
    assert stored.derived == expected
    # rederive's path (set_derived) stores the same preview and reads back the same
    assert store.set_derived([(record.record_id, derived)]) == 1
    again = store.get_stored(record.record_id)
    assert again is not None
    assert again.derived == expected
    # a row made by an older parser version keeps its preview until `rawtap rederive`
    older = derived.model_copy(update={"parser_version": 0})
    assert store.set_derived([(record.record_id, older)]) == 1
    stale = store.get_stored(record.record_id)
    assert stale is not None
    assert stale.derived is not None
    assert stale.derived.text == preview


def test_derived_fields_are_stored_and_replaced(store: Store) -> None:
    record = make_record(body=_chat_body("x", (1, 1)), url=CHAT)
    store.write([record], 1)
    stored = store.get_stored(record.record_id)
    assert stored is not None
    assert stored.derived is None  # never derived
    fresh = Derived(
        parser="openai.chat",
        parser_version=1,
        model="m",
        input_tokens=2**40,
        text="nul\x00ok",
        tool_calls=[ToolCall(id="c", name="f", arguments='{"a":"\\u0000"}')],
    )
    assert store.set_derived([(record.record_id, fresh)]) == 1
    again = store.get_stored(record.record_id)
    assert again is not None
    assert again.derived is not None
    assert again.derived.tool_calls == fresh.tool_calls
    assert again.derived.input_tokens == 2**40
    assert again.derived.model == "m"
    assert store.set_derived([(record.record_id, Derived())]) == 1
    cleared = store.get_stored(record.record_id)
    assert cleared is not None
    assert cleared.derived == Derived()  # derived, no parser applied: not "never derived"


def test_queries_filter_order_and_count(store: Store) -> None:
    base = time.time_ns() - 10 * DAY
    specs = [
        ("openai", "s1", 200, "complete", _chat_body("a", (1, 1))),
        ("openai", "s2", 429, "complete", b'{"error":{"message":"slow down","type":"rate"}}'),
        ("anthropic", "s1", 200, "closed_early", b""),
        ("gemini", None, 500, "error", b"oops"),
    ]
    records = [
        make_record(p, body, url=CHAT if p == "openai" else None, session_id=s, status=st,
                    end_state=es, started_at_ns=base + i * DAY,
                    request_body=b'{"model":"gpt-4o"}' if p == "openai" else b"")
        for i, (p, s, st, es, body) in enumerate(specs)
    ]  # fmt: skip
    store.write(records, 5, [derive(r) for r in records])
    ids = [r.record_id for r in records]

    def listed(**filters: Any) -> list[str]:
        return [s.record_id for s in store.summaries(RecordQuery(**filters), limit=100)]

    assert listed() == ids[::-1]  # newest first
    assert [s.record_id for s in store.summaries(RecordQuery(), newest_first=False)] == ids
    assert listed(session_id="s1") == [ids[2], ids[0]]
    assert listed(provider="openai") == [ids[1], ids[0]]
    assert listed(model="gpt-4o") == [ids[1], ids[0]]  # derived from the request for errors too
    assert listed(status=429) == [ids[1]]
    assert listed(end_state="closed_early") == [ids[2]]
    assert listed(since_ns=base + DAY, until_ns=base + 3 * DAY) == [ids[2], ids[1]]
    assert listed(since_ns=base + DAY + 1) == [ids[3], ids[2]]
    assert store.count_matching(RecordQuery(provider="openai", status=200)) == 1
    assert len(store.summaries(RecordQuery(), limit=2)) == 2
    first = store.summaries(RecordQuery(status=200, provider="openai"))[0]
    assert (first.input_tokens, first.output_tokens, first.model) == (1, 1, "gpt-4o")
    assert first.body_size == len(specs[0][4])
    assert store.find_ids(ids[0][:30], limit=5) == sorted(
        i for i in ids if i.startswith(ids[0][:30])
    )


def test_iter_records_pages_oldest_first(store: Store) -> None:
    base = time.time_ns() - DAY
    records = [
        make_record(started_at_ns=base + (i * 7919 % 23) * 1000, provider="p") for i in range(23)
    ]
    store.write(records, 1)
    got = [s.record for s in store.iter_records(RecordQuery(), batch_size=5)]
    assert got == sorted(records, key=lambda r: r.started_at_ns)
    assert [s.record.record_id for s in store.iter_records(RecordQuery(provider="none"))] == []


def test_iter_stored_follows_start_order_on_every_store(store: Store) -> None:
    # Captured in the opposite order to the one they started in: both stores must
    # agree on one order (they drifted: SQLite read capture order, PostgreSQL start).
    base = time.time_ns() - DAY
    records = [
        make_record(started_at_ns=base + i * 1000).model_copy(
            update={"captured_at_ns": base + (50 - i) * 1000}
        )
        for i in range(20)
    ]
    store.write(records, 1)
    producer = records[0].producer_id
    got = [r.record_id for r, _ in store.iter_stored(producer)]
    assert got == [
        s.record.record_id for s in store.iter_records(RecordQuery(producer_id=producer))
    ]
    assert got == [r.record_id for r in sorted(records, key=lambda r: r.started_at_ns)]


def test_purge_deletes_exactly_what_is_older(store: Store) -> None:
    now = time.time_ns()
    cutoff = now - 2 * DAY - 12_345
    offsets = [-5 * DAY, -3 * DAY, -1, 0, 1, DAY, 2 * DAY]  # relative to the cut-off
    records = [make_record(started_at_ns=cutoff + o) for o in offsets]
    store.write(records, 1)
    assert store.purge(cutoff) == 3
    left = sorted(s.record.started_at_ns - cutoff for s in store.iter_records(RecordQuery()))
    assert left == [0, 1, DAY, 2 * DAY]
    assert store.purge(cutoff) == 0
    if isinstance(store, PostgresSink) and store.partition == "day":
        # Days wholly before the cut-off went as whole partitions; later ones stay.
        days = store.partitions()
        assert _day(cutoff - 3 * DAY) not in days
        assert all(d >= _day(cutoff) for d in days)
        assert _day(cutoff + 2 * DAY) in days


def _day(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, UTC).date()


def test_unreadable_rows_are_reported_not_fatal(store: Store) -> None:
    good, corrupt, future = make_record(), make_record(), make_record()
    store.write([good, corrupt, future], 1)
    _execute(
        store,
        "UPDATE records SET envelope = ? WHERE record_id = ?",
        b"\x00not json",
        corrupt.record_id,
    )
    newer = orjson.loads(
        _execute(store, "SELECT envelope FROM records WHERE record_id = ?", future.record_id)[0][0]
    )
    newer["schema_version"] = SCHEMA_VERSION + 1
    _execute(
        store,
        "UPDATE records SET envelope = ? WHERE record_id = ?",
        orjson.dumps(newer),
        future.record_id,
    )

    with pytest.raises(CodecError, match="corrupted"):
        store.get_stored(corrupt.record_id)
    with pytest.raises(CodecError, match=r"schema version 2.*upgrade rawtap"):
        store.get_stored(future.record_id)
    bad: list[str] = []
    readable = list(
        store.iter_records(RecordQuery(), on_unreadable=lambda rid, _e: bad.append(rid))
    )
    assert [s.record for s in readable] == [good]
    assert sorted(bad) == sorted([corrupt.record_id, future.record_id])
    with pytest.raises(CodecError):
        list(store.iter_records(RecordQuery()))
    assert len(store.summaries(RecordQuery())) == 3  # the listing still shows every row


def test_odd_values_never_make_a_batch_fail(store: Store) -> None:
    odd = make_record(
        body=b"\x00" * 10,
        status=2**64 - 1,  # the envelope is orjson: values up to u64 can arrive
        session_id="nul\x00session",
        metadata={"nul\x00key": "v\x00", "n": 2**64 - 1},
        headers=[("x-odd", "\x00")],
        error="err\x00",
        seq=2**63 + 5,
    )
    fine = make_record()
    d = Derived(parser="openai.chat", parser_version=1, input_tokens=2**64 - 1, text="\x00")
    assert store.write([odd, fine], 1, [d, None]) == 2
    stored = store.get_stored(odd.record_id)
    assert stored is not None
    assert stored.record == odd  # the envelope keeps every value exactly


def test_a_newer_store_is_refused(store_url: str) -> None:
    with open_sink(store_url) as store:
        if isinstance(store, SqliteSink):
            store.execute("PRAGMA user_version = 99")
        else:
            _execute(store, "INSERT INTO rawtap_migrations (version, name) VALUES (99, 'future')")
    with pytest.raises(SinkError, match="newer than this release"):
        open_sink(store_url)


def test_read_only_open_needs_an_existing_store(store_url: str) -> None:
    with pytest.raises(SinkError, match=r"rawtap migrate|no SQLite store|no rawtap store"):
        open_sink(store_url, migrate=False)
    open_sink(store_url).close()
    with open_sink(store_url, migrate=False) as store:
        assert store.count() == 0


def test_concurrent_opens_migrate_once(store_url: str) -> None:
    errors: list[BaseException] = []

    def open_close() -> None:
        try:
            open_sink(store_url).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with open_sink(store_url) as store:
        assert store.count() == 0


def test_postgres_layout_cannot_be_switched(postgres_url: str, pg_schema: str) -> None:
    from tests.integration.conftest import with_params

    with open_sink(with_params(postgres_url, schema=pg_schema)) as store:
        assert isinstance(store, PostgresSink)
        assert store.partition == "none"
    with pytest.raises(ConfigError, match="created with partition=none"):
        open_sink(with_params(postgres_url, schema=pg_schema, partition="day"))
    with open_sink(with_params(postgres_url, schema=pg_schema, insert="executemany")) as store:
        records = [make_record(), make_record()]
        assert store.write(records, 1) == 2
        assert store.write(records, 1) == 0


def test_postgres_outage_is_a_sink_error_then_recovers(postgres_url: str, pg_schema: str) -> None:
    from tests.integration.conftest import with_params

    with open_sink(with_params(postgres_url, schema=pg_schema)) as store:
        assert isinstance(store, PostgresSink)
        store.write([make_record()], 1)
        (pid,) = store.execute("SELECT pg_backend_pid()")[0]
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(SinkError):
            store.write([make_record()], 1)
        assert store.write([make_record()], 1) == 1  # reconnected by itself
        assert store.count() == 2


def test_sqlite_v1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    from rawtap.consumer.store._migrations import migration_scripts
    from rawtap.shared import encode_envelope

    path = tmp_path / "old.db"
    record = make_record(body=b"abc", url=CHAT)
    conn = sqlite3.connect(path)
    conn.executescript(migration_scripts("sqlite")[0][2])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (record.record_id, 1, record.producer_id, record.seq, None, None, record.provider, 200,
         "complete", 0, record.started_at_ns, record.captured_at_ns, 7, encode_envelope(record),
         b"", b"abc"),
    )  # fmt: skip
    conn.commit()
    conn.close()
    with SqliteSink(path) as store:
        assert store.schema_version == len(migration_scripts("sqlite"))
        stored = store.get_stored(record.record_id)
        assert stored is not None
        assert stored.record == record
        assert stored.derived is None
        summary = store.summaries(RecordQuery())[0]
        assert summary.body_size == 3
        assert store.execute("SELECT url, method FROM records") == [(CHAT, "POST")]


def test_ledger_accepts_what_garbage_entries_carry_and_reconciles(store: Store) -> None:
    from rawtap.consumer.store import Accounting, DeadLetter
    from rawtap.shared import ProducerReport

    records = [make_record("openai", b"{}", seq=s) for s in (0, 1, 3)]
    store.write(records, 1)
    ledger = Accounting(
        stream="s:{0}",
        reports=[
            ProducerReport(
                producer_id="ab" * 8, next_seq=6, at_ns=1, dropped={"journal_full": [(4, 4)]}
            )
        ],
        dead=[
            DeadLetter(
                "s:{0}", "1-0", "bad\x00error", 2, 1, record_id="r\x00", producer_id="ab" * 8, seq=2
            ),
            DeadLetter("s:{0}", "2-0", "huge seq", 1, 1, producer_id="g" * 16, seq=2**64 - 1),
        ],
        trimmed=["3-0"],
    )
    store.write_accounting(ledger)
    store.write_accounting(ledger)  # idempotent
    assert store.ledger_counts() == {"dead_lettered": 2, "trimmed": 1}
    (balance,) = [b for b in store.reconcile() if b.producer_id == "ab" * 8]
    assert (balance.accepted, balance.stored, balance.dead_lettered) == (6, 3, 1)
    assert balance.dropped == {"journal_full": 1}
    assert balance.missing == [(5, 5)]
    assert balance.balanced


def test_retention_is_accounted_as_purged_not_lost(store: Store) -> None:
    from rawtap.consumer.store import Accounting
    from rawtap.shared import ProducerReport

    old, new = 1_000_000_000, 5_000_000_000_000_000_000
    records = [make_record("openai", b"{}", seq=s, started_at_ns=old + s) for s in (0, 1, 3)]
    records += [make_record("openai", b"{}", seq=s, started_at_ns=new + s) for s in (2, 4)]
    store.write(records, 1)
    store.write_accounting(
        Accounting("s:{0}", reports=[ProducerReport(producer_id="ab" * 8, next_seq=5, at_ns=1)])
    )
    assert store.purge(new) == 3
    (balance,) = store.reconcile()
    assert (balance.stored, balance.purged, balance.missing) == (2, 3, [])
    assert balance.lost == 0
    assert balance.balanced


def test_an_envelope_as_received_is_stored_as_is(store: Store) -> None:
    from rawtap.shared import decode_entry, encode_entry

    record = make_record(body=_chat_body("hi", (1, 1)), url=CHAT, metadata={"b": 1, "a": 2})
    fields = encode_entry(record)
    # What a producer of another release might send: same fields, other key order and spacing.
    received = orjson.dumps(
        dict(reversed(orjson.loads(fields[b"env"]).items())), option=orjson.OPT_INDENT_2
    )
    decoded = decode_entry({**fields, b"env": received})
    assert decoded == record
    assert store.write([decoded], 1, None, envelopes=[received]) == 1
    ((stored_envelope,),) = _execute(
        store, "SELECT envelope FROM records WHERE record_id = ?", record.record_id
    )
    assert bytes(stored_envelope) == received  # not re-encoded
    stored = store.get_stored(record.record_id)
    assert stored is not None
    assert stored.record == record
    with pytest.raises(ValueError, match="one entry per record"):
        store.write([make_record()], 1, None, envelopes=[])
