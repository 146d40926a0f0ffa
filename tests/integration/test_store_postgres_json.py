"""PostgreSQL keeps headers and metadata once, in the envelope; ``records_json`` serves SQL users.

docs/store.md promises ``metadata->>'endpoint'`` in plain SQL. Schema 3 dropped
the jsonb copies of schema 1 (they were a second encoding of what the envelope
holds); these tests hold the promise on the view, on both layouts, and through
an upgrade of a store written by the previous schema.
"""

from __future__ import annotations

import orjson
import psycopg
import pytest
from psycopg import sql

from rawtap.consumer import PostgresSink, derive, open_sink
from rawtap.consumer.store._migrations import migration_scripts
from rawtap.consumer.store.postgres import split_url
from rawtap.shared import Record, encode_envelope
from tests.integration.conftest import with_params
from tests.support.records import make_record

CHAT = "https://api.openai.com/v1/chat/completions"
_COPIES = ("request_headers", "response_headers", "metadata")


def _record() -> Record:
    return make_record(
        body=b'{"id": "x"}',
        url=CHAT,
        headers=[
            ("set-cookie", "a"),
            ("Set-Cookie", "b"),
            ("x-odd", "nul\x00here"),
            ("x-two", "\x00\x00"),  # side by side: both replaced
            ("x-text", "\\u0000"),  # a backslash and the text u0000: no NUL at all
            ("x-both", "\\\x00"),  # a backslash, then a NUL
        ],
        metadata={"endpoint": "chat", "tags": ["a", "b"], "n": 3},
        request_headers=[("content-type", "application/json")],
    )


@pytest.mark.parametrize("partition", ["none", "day"])
def test_headers_and_metadata_are_stored_once_and_queried_through_records_json(
    postgres_url: str, pg_schema: str, partition: str
) -> None:
    record = _record()
    with open_sink(with_params(postgres_url, schema=pg_schema, partition=partition)) as store:
        assert isinstance(store, PostgresSink)
        assert store.write([record], 1, [derive(record)]) == 1
        columns = {
            row[0]
            for row in store.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = 'records'",
                (pg_schema,),
            )
        }
        assert columns.isdisjoint(_COPIES)  # no second copy of what the envelope holds
        ((endpoint, tags, request_headers, response_headers),) = store.execute(
            "SELECT metadata->>'endpoint', metadata->'tags', request_headers, response_headers"
            " FROM records_json WHERE record_id = %s",
            (record.record_id,),
        )
        stored = store.get_stored(record.record_id)
    assert endpoint == "chat"
    assert tags == ["a", "b"]
    assert request_headers == [["content-type", "application/json"]]
    # Order and duplicates kept; jsonb cannot hold U+0000, so the view shows U+FFFD ...
    assert response_headers == [
        ["set-cookie", "a"],
        ["Set-Cookie", "b"],
        ["x-odd", "nul\ufffdhere"],
        ["x-two", "\ufffd\ufffd"],
        ["x-text", "\\u0000"],
        ["x-both", "\\\ufffd"],
    ]
    # ... while the record itself keeps the NUL.
    assert stored is not None
    assert stored.record == record


def test_a_schema_2_store_upgrades_and_its_rows_read_the_same(
    postgres_url: str, pg_schema: str
) -> None:

    record = _record()
    conninfo, _ = split_url(with_params(postgres_url, schema=pg_schema))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        conn.execute(
            "CREATE TABLE rawtap_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("CREATE TABLE rawtap_settings (key text PRIMARY KEY, value text NOT NULL)")
        conn.execute("INSERT INTO rawtap_settings VALUES ('partition', 'none')")
        for version, name, script in migration_scripts("postgresql")[:2]:
            conn.execute(script.replace("/*rawtap:partition*/", "").encode())
            conn.execute("INSERT INTO rawtap_migrations (version, name) VALUES (%s, %s)",
                         (version, name))  # fmt: skip
        # A row as a schema-2 worker wrote it: the jsonb copies filled.
        conn.execute(
            "INSERT INTO records (record_id, started_at, schema_version, producer_id, seq,"
            " provider, url, status, end_state, stream, started_at_ns, captured_at_ns,"
            " persisted_at_ns, body_size, request_headers, response_headers, metadata,"
            " envelope, request_body, body) VALUES (%s, to_timestamp(%s / 1e9), 1, %s, %s,"
            " %s, %s, %s, %s, false, %s, %s, 1, %s, '[]', '[]', '{}', %s, %s, %s)",
            (
                record.record_id, record.started_at_ns, record.producer_id, record.seq,
                record.provider, record.url, record.status, record.end_state.value,
                record.started_at_ns, record.captured_at_ns, len(record.body),
                encode_envelope(record), record.request_body, record.body,
            ),
        )  # fmt: skip

    with open_sink(with_params(postgres_url, schema=pg_schema)) as store:  # migrates to the last
        assert isinstance(store, PostgresSink)
        assert store.execute("SELECT max(version) FROM rawtap_migrations") == [
            (len(migration_scripts("postgresql")),)
        ]
        stored = store.get_stored(record.record_id)
        assert stored is not None
        assert stored.record == record
        assert store.execute(
            "SELECT metadata->>'endpoint' FROM records_json WHERE record_id = %s",
            (record.record_id,),
        ) == [("chat",)]
        newer = make_record(url=CHAT, metadata={"endpoint": "new"})
        assert store.write([newer], 2, None) == 1  # a schema-3 write beside the old row
        assert store.count() == 2


def test_fields_an_envelope_leaves_out_read_as_on_the_record(
    postgres_url: str, pg_schema: str
) -> None:
    record = make_record(url=CHAT)
    sparse = {
        k: v
        for k, v in orjson.loads(encode_envelope(record)).items()
        if k not in ("request_headers", "response_headers", "metadata")
    }
    with open_sink(with_params(postgres_url, schema=pg_schema)) as store:
        assert isinstance(store, PostgresSink)
        assert store.write([record], 1, None, envelopes=[orjson.dumps(sparse)]) == 1
        rows = store.execute("SELECT request_headers, response_headers, metadata FROM records_json")
    assert rows == [([], [], {})]
