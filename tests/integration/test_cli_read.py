"""The read-side CLI on both stores: list, show (--raw), export, purge, rederive, migrate, errors."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import orjson
import pytest

from rawtap.consumer import Derived, PostgresSink, RecordQuery, SqliteSink, open_sink
from rawtap.shared import Record
from tests.support.cli import run_cli
from tests.support.records import make_record
from tests.support.synthetic import anthropic, gemini, openai

DAY = 86_400 * 1_000_000_000


@pytest.fixture
def filled(store_url: str) -> tuple[str, list[Record]]:
    """A store holding one record per provider and mode, one gzip body and one binary body."""
    import random

    rng = random.Random(3)
    now = time.time_ns()
    records = []
    for i, (maker, stream) in enumerate(
        [(openai, False), (openai, True), (anthropic, False), (anthropic, True), (gemini, True)]
    ):
        s = maker(rng, stream)
        records.append(
            make_record(
                s.provider,
                s.body,
                chunks=s.chunks or None,
                url=s.url,
                request_body=s.request_body,
                session_id="sess-a" if i < 3 else "sess-b",
                started_at_ns=now - (10 - i) * 60_000_000_000,
            )
        )
    records.append(
        make_record(
            "openai",
            gzip.compress(b'{"id":"x","object":"chat.completion","model":"gpt-zip","choices":[]}'),
            url="https://api.openai.com/v1/chat/completions",
            headers=[("Content-Encoding", "gzip")],
            started_at_ns=now - 40 * DAY,
        )
    )
    records.append(make_record("gemini", bytes(range(256)), status=500, started_at_ns=now - 1000))
    from rawtap.consumer import derive

    with open_sink(store_url) as store:
        store.write(records, now, [derive(r) for r in records])
    return store_url, records


def test_list_filters_and_table(
    filled: tuple[str, list[Record]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    url, records = filled
    result = run_cli(capsysbinary, "list", "--sink", url)
    assert result.code == 0, result.err
    lines = result.out.decode().splitlines()
    assert lines[0].split()[:3] == ["ID", "STARTED", "(UTC)"]
    newest_first = sorted(records, key=lambda r: r.started_at_ns, reverse=True)
    assert [line.split()[0] for line in lines[1:]] == [r.record_id for r in newest_first]

    result = run_cli(
        capsysbinary, "list", "--sink", url, "--session", "sess-a", "--provider", "openai"
    )
    assert [line.split()[0] for line in result.out.decode().splitlines()[1:]] == [
        records[1].record_id,
        records[0].record_id,
    ]
    result = run_cli(
        capsysbinary, "list", "--sink", url, "--model", "claude-sonnet-4-5", "--oldest-first"
    )
    assert [line.split()[0] for line in result.out.decode().splitlines()[1:]] == [
        records[2].record_id,
        records[3].record_id,
    ]
    result = run_cli(capsysbinary, "list", "--sink", url, "--status", "500", "--since", "1h")
    assert result.out.decode().count("\n") == 2
    result = run_cli(
        capsysbinary, "list", "--sink", url, "--until", "30d", "--end-state", "complete"
    )
    assert [line.split()[0] for line in result.out.decode().splitlines()[1:]] == [
        records[5].record_id
    ]
    result = run_cli(capsysbinary, "list", "--sink", url, "--since", "2999-01-01")
    assert (result.code, result.out) == (0, b"")
    assert "no records match" in result.err


def test_show_decodes_and_raw_is_byte_exact(
    filled: tuple[str, list[Record]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    url, records = filled
    for record in records:
        raw = run_cli(capsysbinary, "show", record.record_id[:34], "--raw", "--sink", url)
        assert raw.code == 0, raw.err
        assert raw.out == record.body  # gzip stays gzip, binary stays binary

    shown = run_cli(capsysbinary, "show", records[5].record_id, "--sink", url)
    text = shown.out.decode()
    assert "gpt-zip" in text  # decoded and pretty-printed
    assert "(gzip)" in text
    assert "openai.chat v1" in text
    streamed = run_cli(capsysbinary, "show", records[3].record_id, "--sink", url).out.decode()
    assert "anthropic.messages v1" in streamed
    assert "event: message_start" in streamed
    assert "time to first token" in streamed
    binary = run_cli(capsysbinary, "show", records[6].record_id, "--sink", url).out.decode()
    assert "256 bytes of binary data" in binary

    as_json = run_cli(capsysbinary, "show", records[0].record_id, "--json", "--sink", url)
    doc = orjson.loads(as_json.out)
    assert doc["derived"]["parser"] == "openai.chat"
    del doc["derived"]
    assert Record.model_validate_json(orjson.dumps(doc)) == records[0]


def test_export_jsonl_round_trips_and_parquet_has_every_row(
    filled: tuple[str, list[Record]],
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
) -> None:
    url, records = filled
    result = run_cli(capsysbinary, "export", "--sink", url)
    assert result.code == 0, result.err
    exported = [Record.model_validate_json(line) for line in result.out.splitlines()]
    assert exported == sorted(records, key=lambda r: r.started_at_ns)

    out = tmp_path / "sess.jsonl"
    result = run_cli(
        capsysbinary, "export", "--sink", url, "--session", "sess-b", "-o", str(out), "--derived"
    )
    assert result.code == 0, result.err
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["record_id"] for line in lines] == [records[3].record_id, records[4].record_id]
    assert lines[0]["derived"]["parser"] == "anthropic.messages"

    import pyarrow.parquet as pq

    pq_path = tmp_path / "all.parquet"
    result = run_cli(capsysbinary, "export", "--sink", url, "-f", "parquet", "-o", str(pq_path))
    assert result.code == 0, result.err
    table = pq.read_table(pq_path)
    assert table.num_rows == len(records)
    rows = {row["record_id"]: row for row in table.to_pylist()}
    for record in records:
        assert rows[record.record_id]["body"] == record.body
    assert rows[records[0].record_id]["input_tokens"] is not None


def test_export_reports_unreadable_rows_with_one_line(
    filled: tuple[str, list[Record]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    url, records = filled
    with open_sink(url) as store:
        assert isinstance(store, PostgresSink | SqliteSink)  # the two that run raw SQL
        q = "UPDATE records SET envelope = %s WHERE record_id = %s"
        store.execute(
            q if url.startswith("postgresql") else q.replace("%s", "?"),
            (b"{", records[2].record_id),
        )
    result = run_cli(capsysbinary, "export", "--sink", url)
    assert result.code == 1
    assert len(result.out.splitlines()) == len(records) - 1
    assert result.err.strip().splitlines() == [
        f"rawtap: error: 1 stored record(s) could not be read and were left out "
        f"(first {records[2].record_id}: stored record {records[2].record_id} is corrupted: "
        "envelope is not JSON)"
    ]
    shown = run_cli(capsysbinary, "show", records[2].record_id, "--sink", url)
    assert shown.code == 1
    assert shown.err.count("\n") == 1
    assert "corrupted" in shown.err


def test_purge_and_rederive(
    filled: tuple[str, list[Record]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    url, records = filled
    with open_sink(url) as store:
        store.set_derived([(records[0].record_id, Derived(parser="openai.chat", parser_version=0))])
    result = run_cli(capsysbinary, "rederive", "--sink", url)
    assert result.code == 0, result.err
    assert (
        result.out.decode().strip() == f"examined {len(records)} records, updated 1, unparseable 0"
    )
    with open_sink(url) as store:
        stored = store.get_stored(records[0].record_id)
        assert stored is not None
        assert stored.derived is not None
        assert stored.derived.parser_version == 1
        assert stored.derived.input_tokens is not None

    result = run_cli(capsysbinary, "purge", "--sink", url, "--older-than", "30d")
    assert (result.code, result.out.decode().strip()) == (0, "deleted 1 records older than 30d")
    with open_sink(url) as store:
        assert store.get(records[5].record_id) is None
        assert store.count() == len(records) - 1


def test_migrate_creates_a_store(
    store_url: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    result = run_cli(capsysbinary, "list", "--sink", store_url)
    assert result.code == 1
    assert result.err.startswith("rawtap: error: ")
    assert result.err.count("\n") == 1
    result = run_cli(capsysbinary, "migrate", "--sink", store_url)
    assert result.code == 0, result.err
    assert "schema version" in result.out.decode()
    with open_sink(store_url, migrate=False) as store:
        assert store.count_matching(RecordQuery()) == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "ffff", "--sink", "sqlite:///{db}"], 1, "no record with id 'ffff'"),
        (["list", "--since", "yesterday", "--sink", "sqlite:///{db}"], 2, "bad time 'yesterday'"),
        (["purge", "--older-than", "soon", "--sink", "sqlite:///{db}"], 2, "bad duration 'soon'"),
        (["export", "-f", "parquet", "--sink", "sqlite:///{db}"], 2, "Parquet needs a file"),
        (
            ["list", "--end-state", "done", "--sink", "sqlite:///{db}"],
            2,
            "'--end-state': 'done' is not one of complete",
        ),
        (["list", "--sink", "mysql://x"], 2, "must start with sqlite:// or postgresql://"),
        (["list", "--sink", "postgresql://nobody@127.0.0.1:1/x"], 1, "cannot connect"),
    ],
)
def test_errors_are_one_line(
    args: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    db = tmp_path / "e.db"
    open_sink(f"sqlite:///{db}").close()
    result = run_cli(capsysbinary, *[a.format(db=db) for a in args])
    assert result.code == code, result.err
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("rawtap: error: ")
    assert message in result.err
