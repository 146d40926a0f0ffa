"""No credential in any stored byte (docs/reliability.md).

Planted secrets travel as a provider would see them (bearer key echoed in a
compressed body, a custom ``x-custom-api-key`` header, a key in the URL path
that differs from the header key, Basic auth, a key split over two SSE deltas)
through the real tap, Redis, the spill journal, a worker into SQLite and
PostgreSQL, ``rawtap export`` / ``show``; then every byte of all of those, and
of the logs, is searched for each secret in every spelling a store could hold
it in (plain, hex, base64). Our own passwords (PostgreSQL, Redis) are planted in
the URLs given to the real CLI, and stdout/stderr/logs are searched too.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import psycopg
import pytest
from psycopg import sql

from rawtap.consumer import PostgresSink, SqliteSink, Worker
from rawtap.producer import Recorder
from rawtap.producer._redact import mask
from rawtap.shared import Record, decode_body, decode_entry, is_report
from rawtap.tools.fake_provider import FakeProvider
from tests.integration.conftest import with_params
from tests.support.cli import run_cli
from tests.support.pipeline import PROCESS_EXIT_S, drain, rawtap_command, worker_thread
from tests.support.services import free_port
from tests.support.tap import API_KEY, MESSAGES, raw_stream_bytes

pytestmark = pytest.mark.redis

CODINGS = ["gzip", "deflate", "br", "zstd"]

CUSTOM_KEY = "ck-planted-custom-header-7Qm2Zx9"
PATH_KEY = "sk-planted-path-key-differs-3hG8kLq"
BASIC_PASSWORD = "planted-basic-pw-5Tz"
SPLIT_KEY = "sk-planted-split-over-deltas-9Wd4"
PG_PASSWORD = "planted-pg-pw-2Rx7"
REDIS_PASSWORD = "planted-redis-pw-8Lk3"


def stream_records(client: Any, prefix: str) -> list[Record]:
    """The records (not the producer reports) in the streams under ``prefix``."""
    out = []
    for key in client.scan_iter(match=f"{prefix}:*"):
        for _id, fields in client.xrange(key):
            if not is_report(fields):
                out.append(decode_entry(fields))
    return sorted(out, key=lambda r: r.seq)


def spellings(secret: str) -> list[bytes]:
    """Every way a store or an export could hold ``secret``: plain, hex, base64 (3 phases)."""
    raw = secret.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        # Drop the characters that mix in the padding bytes or the following byte.
        start = (pad * 4 + 2) // 3
        forms.append(encoded[start : len(encoded) - 4])
    return forms


def assert_absent(where: str, data: bytes, secrets: list[str]) -> None:
    for secret in secrets:
        for form in spellings(secret):
            assert form not in data, f"{secret!r} found in {where} (as {form[:20]!r}…)"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeProvider) -> None:
    fake.clear()


# -- compressed bodies ----------------------------------------------------------------


def _httpx_call(recorder: Recorder, fake: FakeProvider, model: str, stream: bool) -> str:
    import httpx

    client = recorder.instrument(httpx.Client(), provider="openai")
    url = f"{fake.openai_base_url}/chat/completions"
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    headers = {"authorization": f"Bearer {API_KEY}", "accept-encoding": "zstd"}
    try:
        if not stream:
            return str(client.post(url, json=body, headers=headers).json()["model"])
        with client.stream("POST", url, json=body, headers=headers) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: {")]
        return str(orjson.loads(lines[0][6:])["model"])
    finally:
        client.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("coding", CODINGS)
def test_a_key_echoed_in_a_compressed_body_is_masked_and_the_rest_kept(
    coding: str,
    stream: bool,
    fake: FakeProvider,
    redis_url: str,
    stream_prefix: str,
    redis_client: Any,
) -> None:
    import openai

    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    model = f"{API_KEY}/fake-{coding}"  # the fake provider echoes the model in every body
    try:
        if coding == "zstd":  # httpx2 (under the SDKs) has no zstd decoder; httpx has
            seen = _httpx_call(recorder, fake, model, stream)
        else:
            client: Any = recorder.instrument(
                openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url)
            )
            if stream:
                chunks = list(
                    client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
                )
                seen = chunks[0].model
            else:
                seen = client.chat.completions.create(model=model, messages=MESSAGES).model
            client.close()
        assert recorder.flush(10)
    finally:
        recorder.close()
    assert seen == model  # the application got the provider's bytes, key and all
    fake.wait_idle()
    (ex,) = fake.exchanges
    assert ex.header("content-encoding") == coding  # the test means something:
    assert API_KEY.encode() in ex.decoded_body  # the key is in the body, compressed
    (record,) = stream_records(redis_client, stream_prefix)
    assert record.body_decoded_from == coding
    # (A br/zstd stream closed by the SDK after its last event leaves the frame's final
    # bytes unread by the tap: the tap sees terminal events in gzip/deflate only.)
    assert record.encoded_size is not None
    assert len(ex.body) - 8 <= record.encoded_size <= len(ex.body)
    received = ex.body[: record.encoded_size]
    assert record.header("content-encoding") is None
    assert record.masked >= 2  # the authorization header and the echo
    assert {"headers", "body"} <= set(record.masked_in)
    # Every byte the provider meant, except the masked spans.
    key = API_KEY.encode()
    assert record.body == decode_body(received, coding).replace(key, mask(key))
    assert record.decoded_body() == record.body
    if stream:
        assert len(record.chunks) >= len(ex.decoded_chunks)
        assert b"".join(record.chunk_bytes()) == record.body
    assert_absent("the Redis stream", raw_stream_bytes(redis_client, stream_prefix), [API_KEY])


def test_a_clean_compressed_body_is_stored_byte_exact(
    fake: FakeProvider, redis_url: str, stream_prefix: str, redis_client: Any
) -> None:
    import openai

    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    client: Any = recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url))
    try:
        client.chat.completions.create(model="fake-gzip", messages=MESSAGES)
        assert recorder.flush(10)
    finally:
        client.close()
        recorder.close()
    fake.wait_idle()
    (ex,) = fake.exchanges
    (record,) = stream_records(redis_client, stream_prefix)
    assert record.body == ex.body  # still gzip, as sent
    assert record.header("content-encoding") == "gzip"
    assert record.body_decoded_from is None
    assert record.masked_in == ["headers"]


# -- every stored byte ----------------------------------------------------------------


def _sse(*deltas: str) -> list[bytes]:
    out = []
    for i, delta in enumerate(deltas):
        doc = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}],
        }
        out.append(b"data: " + orjson.dumps(doc) + b"\n\n")
        if i == len(deltas) - 1:
            out.append(b"data: [DONE]\n\n")
    return out


def _make_traffic(fake: FakeProvider, recorder: Recorder) -> None:
    """One record per planted secret, through the real tap where a real client can send it."""
    import openai

    client: Any = recorder.instrument(openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url))
    list(
        client.chat.completions.create(model=f"{API_KEY}/fake-gzip", messages=MESSAGES, stream=True)
    )
    client.close()
    http = recorder.instrument(httpx2.Client(), provider="openai")
    http.post(  # a custom credential header, echoed in the request body
        f"{fake.url}/v1/chat/completions",
        headers={"x-custom-api-key": CUSTOM_KEY, "authorization": f"Bearer {API_KEY}"},
        json={"model": "fake-normal", "messages": MESSAGES, "user": CUSTOM_KEY},
    )
    http.get(  # a key in the path that differs from the header key
        f"{fake.url}/v1/keys/{PATH_KEY}/usage", headers={"authorization": f"Bearer {API_KEY}"}
    )
    http.post(  # Basic auth; the password comes back in the request body
        f"{fake.url}/v1/chat/completions",
        auth=("planted-user", BASIC_PASSWORD),
        json={"model": "fake-normal", "messages": MESSAGES, "user": BASIC_PASSWORD},
    )
    http.close()
    # A key the model echoes over two stream deltas: no stored byte holds it whole, the
    # derived text would join it.
    half = len(SPLIT_KEY) // 2
    recorder.record(
        "openai",
        None,
        stream=True,
        chunks=_sse("Your key is ", SPLIT_KEY[:half], SPLIT_KEY[half:], "."),
        url="https://api.openai.com/v1/chat/completions",
        request_headers=[("Authorization", f"Bearer {SPLIT_KEY}")],
        response_headers=[("Content-Type", "text/event-stream")],
        status=200,
    )


def _pg_bytes(postgres_url: str, schema: str) -> bytes:
    out = bytearray()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        assert tables
        for (table,) in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            for (row,) in conn.execute(query):
                out += row.encode() + b"\n"
    return bytes(out)


def _files_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_no_planted_secret_in_any_stored_byte(
    fake: FakeProvider,
    redis_url: str,
    postgres_url: str,
    stream_prefix: str,
    redis_client: Any,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [API_KEY, CUSTOM_KEY, PATH_KEY, BASIC_PASSWORD, SPLIT_KEY]
    db = tmp_path / "store.db"
    schema = f"rawtap_test_{uuid.uuid4().hex[:12]}"
    pg_url = with_params(postgres_url, schema=schema)
    sqlite_sink = SqliteSink(db)
    pg_sink = PostgresSink.from_url(pg_url)
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    # The same traffic into a journal: a recorder whose Redis is not there spills.
    spill = tmp_path / "journal"
    offline = Recorder(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        stream_prefix=stream_prefix,
        spill_dir=str(spill),
        close_timeout_s=0.2,
    )
    try:
        _make_traffic(fake, recorder)
        assert recorder.flush(10)
        _make_traffic(fake, offline)
        assert offline.flush(10)
        offline.close()
        assert offline.stats().spilled >= 5
        records = stream_records(redis_client, stream_prefix)
        assert len(records) == 5
        for sink, name in ((sqlite_sink, "w-sqlite"), (pg_sink, "w-pg")):
            worker = Worker(
                redis_url=redis_url,
                stream_prefix=stream_prefix,
                group=name,
                consumer=name,
                block_ms=50,
                sink=sink,
            )
            with worker_thread(worker):
                drain(sink, recorder.producer_id, 5)

        # The test means something: each secret was on the wire.
        wire = b"".join(
            ex.request.body
            + ex.decoded_body
            + str(ex.request.headers).encode()
            + ex.request.target.encode()
            for ex in fake.exchanges
        )
        for secret in (API_KEY, CUSTOM_KEY, PATH_KEY, BASIC_PASSWORD):
            assert secret.encode() in wire, secret
        by_url = {r.url: r for r in records}
        split = by_url["https://api.openai.com/v1/chat/completions"]
        assert split.masked_digests  # the consumer is told which windows to mask

        stored = {rec.record_id: rec for rec, _ in sqlite_sink.iter_stored()}
        for store in (sqlite_sink, pg_sink):
            got = store.get_stored(split.record_id)
            assert got is not None
            assert got.derived is not None
            assert got.derived.text == "Your key is [REDACTED]."
        assert any("[REDACTED]" in (r.url or "") for r in stored.values())

        exported = run_cli(capsysbinary, "export", "--sink", f"sqlite:///{db}", "--derived")
        assert exported.code == 0
        exported_pg = run_cli(capsysbinary, "export", "--sink", pg_url, "--derived")
        assert exported_pg.code == 0
        shown = b""
        for record_id in stored:
            for extra in ((), ("--raw",)):
                result = run_cli(capsysbinary, "show", record_id, "--sink", pg_url, *extra)
                assert result.code == 0, result.err
                shown += result.out + result.err.encode()

        places = {
            "the Redis streams": raw_stream_bytes(redis_client, stream_prefix),
            "the spill journal": _files_bytes(spill),
            "the SQLite files": b"".join(
                p.read_bytes() for p in tmp_path.glob("store.db*") if p.is_file()
            ),
            "the PostgreSQL schema": _pg_bytes(postgres_url, schema),
            "rawtap export (SQLite)": exported.out + exported.err.encode(),
            "rawtap export (PostgreSQL)": exported_pg.out + exported_pg.err.encode(),
            "rawtap show": shown,
            # rawtap's own logs (the host's HTTP library logs its URLs: not ours to mask).
            "rawtap's logs": "\n".join(
                r.getMessage() for r in caplog.records if r.name.startswith("rawtap")
            ).encode(),
        }
        assert len(places["the spill journal"]) > 1000
        for where, data in places.items():
            assert_absent(where, data, secrets)
        # Exports carry bodies in base64 of their own alignment: check the decoded records too.
        for line in exported.out.splitlines():
            doc = orjson.loads(line)
            doc.pop("derived", None)
            rec = Record.model_validate(doc)
            assert_absent("an exported record", rec.body + rec.request_body, secrets)
    finally:
        recorder.close()
        offline.close()
        sqlite_sink.close()
        pg_sink.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- our own passwords ----------------------------------------------------------------


def _pg_url_with_password(postgres_url: str, schema: str) -> str:
    scheme, _sep, rest = postgres_url.partition("://")
    hostpart = rest.rpartition("@")[2]
    user = rest.rpartition("@")[0].partition(":")[0] or "postgres"
    return with_params(f"{scheme}://{user}:{PG_PASSWORD}@{hostpart}", schema=schema)


def test_cli_never_prints_our_passwords(
    redis_url: str,
    postgres_url: str,
    stream_prefix: str,
    pg_schema: str,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    pg_url = _pg_url_with_password(postgres_url, pg_schema)  # trust auth: any password works
    outputs: dict[str, bytes] = {}
    result = run_cli(capsysbinary, "migrate", "--sink", pg_url)
    assert result.code == 0, result.err
    assert b"***" in result.out
    outputs["migrate"] = result.out + result.err.encode()
    result = run_cli(
        capsysbinary,
        "stats",
        "--sink",
        pg_url,
        "--redis-url",
        redis_url,
        "--stream-prefix",
        stream_prefix,
    )
    assert result.code == 0, result.err
    assert b"sink postgresql://" in result.out
    assert b":***@" in result.out
    outputs["stats"] = result.out + result.err.encode()
    # A store that cannot be reached: the error names it, without the password.
    dead_pg = _pg_url_with_password(f"postgresql://root@127.0.0.1:{free_port()}/test", "x")
    result = run_cli(capsysbinary, "list", "--sink", dead_pg)
    assert result.code != 0
    assert "127.0.0.1" in result.err
    outputs["list, store down"] = result.out + result.err.encode()
    # Redis given a password, and one that is not there. (Cluster URLs with several hosts:
    # test_redact.py; an unreachable cluster escapes `rawtap stats` as a traceback today.)
    host = redis_url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    for url in (
        f"redis://:{REDIS_PASSWORD}@{host}/0",
        f"redis://default:{REDIS_PASSWORD}@{host}/0",
        f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",
    ):
        result = run_cli(
            capsysbinary, "stats", "--redis-url", url, "--stream-prefix", stream_prefix
        )
        if "127.0.0.1:" in url and host not in url:  # nothing listens there
            assert result.code != 0, url
            assert "127.0.0.1" in result.err, url
        outputs[f"stats {url.partition(':')[0]}"] = result.out + result.err.encode()
    # The worker's start line and its logs, as a real process.
    env = {
        **os.environ,
        "RAWTAP_REDIS_URL": redis_url,
        "RAWTAP_STREAM_PREFIX": stream_prefix,
        "RAWTAP_SINK_URL": pg_url,
        "RAWTAP_BLOCK_MS": "50",
    }
    proc = subprocess.Popen(
        rawtap_command("worker", "--log-level", "debug"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    start_line = b""
    for line in proc.stderr:
        start_line += line
        if b"rawtap worker" in line and b"->" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=PROCESS_EXIT_S)
    assert b":***@" in start_line, start_line
    outputs["worker"] = start_line + out + err
    for where, data in outputs.items():
        for secret in (PG_PASSWORD, REDIS_PASSWORD):
            assert secret.encode() not in data, f"{secret} printed by {where}: {data[-300:]!r}"


def test_masking_runs_on_the_writer_thread_never_on_the_callers(
    fake: FakeProvider, redis_url: str, stream_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from rawtap.producer import _redact

    threads: list[str] = []
    real = _redact.redact_record

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(_redact, "redact_record", spy)
    recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
    client = recorder.instrument(httpx2.Client(), provider="openai")
    try:
        client.post(
            f"{fake.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {API_KEY}"},
            json={"model": "fake-gzip", "messages": MESSAGES},
        )
        assert recorder.flush(10)
    finally:
        client.close()
        recorder.close()
    assert threads == ["rawtap-writer"]  # once, and not on the caller's thread
