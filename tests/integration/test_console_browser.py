"""``rawtap console`` in a real headless Chromium, over stores filled by the real pipeline.

Real SDKs call the fake provider through the tap, records go through Redis and a
worker into SQLite and PostgreSQL, and ``rawtap console`` serves the store as a
real process; Playwright drives Debian's Chromium (no browser download). Every
check compares what the page shows with what the store holds.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
from playwright.sync_api import Browser, Dialog, Page, sync_playwright
from psycopg import sql

from rawtap.consumer import Worker, open_sink
from rawtap.consumer.store import RecordQuery, Store
from rawtap.producer import Recorder
from rawtap.shared import Record
from rawtap.tools.fake_provider import FakeProvider
from tests.integration.conftest import with_params
from tests.support.console import CHROMIUM_ARGS, chromium_path, running_console
from tests.support.pipeline import PROCESS_EXIT_S, drain, rawtap_command, worker_thread

pytestmark = pytest.mark.redis

MSGS: Any = [{"role": "user", "content": "hi"}]
RARE_WORD = "xylophonequartz"
HOSTILE = (
    b'<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    b'<svg onload="window.__pwned = 3"></svg>'
)
HOSTILE_SESSION = "<script>window.__pwned=4</script>"
BINARY = bytes(range(256)) * 4
BIG = b'{"id": "big", "text": "' + b"big " * 900_000 + b'"}'
OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the bind the token test needs


@dataclass
class Filled:
    """A store filled through the pipeline, and what the tests look for in it."""

    url: str
    records: dict[str, Record]
    rare_id: str
    hostile_id: str
    binary_id: str
    retried: list[str]
    big_id: str


def _chat_body(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-console",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
    )


def _sdk_calls(url: str, recorder: Recorder) -> None:
    from anthropic import Anthropic
    from google import genai
    from google.genai import types
    from openai import OpenAI

    oa = recorder.instrument(
        OpenAI(api_key="sk-console-secret", base_url=url + "/v1", max_retries=2)
    )
    an = recorder.instrument(Anthropic(api_key="sk-ant-console", base_url=url, max_retries=0))
    gm = recorder.instrument(
        genai.Client(
            api_key="gm-console", http_options=types.HttpOptions(base_url=url, api_version="v1beta")
        )
    )
    try:
        with recorder.session("sess-console"):
            oa.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            with oa.chat.completions.create(
                model="gpt-4o-mini",
                messages=MSGS,
                stream=True,
                stream_options={"include_usage": True},
            ) as chunks:
                list(chunks)
            an.messages.create(model="claude-sonnet-5-5", max_tokens=50, messages=MSGS)
            with an.messages.stream(model="claude-sonnet-5-5", max_tokens=50, messages=MSGS) as s:
                s.get_final_message()
        gm.models.generate_content(model="gemini-2.5-flash", contents="hi")
        list(gm.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
        oa.chat.completions.create(model="fake-429-then-200", messages=MSGS)
        with pytest.raises(Exception, match="500"):
            oa.with_options(max_retries=0).chat.completions.create(model="fake-500", messages=MSGS)
    finally:
        oa.close()
        an.close()
        gm.close()


def _fill(url: str, redis_url: str) -> Filled:
    prefix = f"rawtap-console-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(redis_url=redis_url, stream_prefix=prefix)
    try:
        with open_sink(url) as store:
            worker = Worker(
                redis_url=redis_url, stream_prefix=prefix, sink_url=url, consumer="console",
                block_ms=50, sink=store,
            )  # fmt: skip
            with worker_thread(worker), FakeProvider() as fake:
                _sdk_calls(fake.url, recorder)
                assert recorder.record(
                    "openai",
                    _chat_body(f"the {RARE_WORD} answer"),
                    url=OPENAI_CHAT,
                    status=200,
                    method="POST",
                )
                assert recorder.record(
                    "openai", HOSTILE, {"note": "<b>bold</b>"},
                    session_id=HOSTILE_SESSION, status=200, url=OPENAI_CHAT + "?q=<script>",
                    response_headers=[("content-type", "text/html"), ("x-evil", "<script>window.__pwned=5</script>")],
                )  # fmt: skip
                assert recorder.record("openai", BIG, url=OPENAI_CHAT, status=200, method="POST")
                assert recorder.record(
                    "anthropic", BINARY, status=200,
                    response_headers=[("content-type", "application/octet-stream")],
                )  # fmt: skip
                recorder.flush()
                expected = len(fake.exchanges) + 4
                drain(store, recorder.producer_id, expected)
            records = {r.record_id: r for r, _ in store.iter_stored(recorder.producer_id)}
    finally:
        recorder.close()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    by_body = {r.body: r.record_id for r in records.values()}
    calls: dict[str, list[str]] = {}
    for r in records.values():
        if r.call_id:
            calls.setdefault(r.call_id, []).append(r.record_id)
    retried = next(ids for ids in calls.values() if len(ids) > 1)
    rare = next(i for i, r in records.items() if RARE_WORD.encode() in r.body)
    return Filled(url, records, rare, by_body[HOSTILE], by_body[BINARY], retried, by_body[BIG])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(
    request: pytest.FixtureRequest,
    redis_url: str,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Filled]:
    """A store of each kind, filled once for the module's tests."""
    if request.param == "sqlite":
        yield _fill(f"sqlite:///{tmp_path_factory.mktemp('console')}/store.db", redis_url)
        return
    schema = f"rawtap_console_{uuid.uuid4().hex[:10]}"
    try:
        yield _fill(with_params(postgres_url, schema=schema), redis_url)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def console_url(filled: Filled) -> Iterator[str]:
    """The base URL of ``rawtap console`` serving the filled store."""
    with running_console(filled.url) as console:
        yield console.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    executable = chromium_path()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own context: no cookies or storage from another test)."""
    context = browser.new_context()
    opened = context.new_page()
    yield opened
    context.close()


def _row_ids(page: Page) -> list[str]:
    return [str(row.get_attribute("data-record-id")) for row in page.locator("tr.call-row").all()]


def _store(filled: Filled) -> Store:
    return open_sink(filled.url, migrate=False, read_only=True)


def test_list_shows_the_records_newest_first(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "calls")
    with _store(filled) as store:
        newest = [s.record_id for s in store.summaries(RecordQuery(), limit=50)]
    assert _row_ids(page) == newest
    assert set(newest) == set(filled.records)  # under one page: every record is listed


def test_filters_narrow_the_list(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "calls")
    page.select_option("select[name=provider]", "anthropic")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**provider=anthropic**")
    shown = _row_ids(page)
    assert shown
    assert {filled.records[i].provider for i in shown} == {"anthropic"}
    assert set(shown) == {i for i, r in filled.records.items() if r.provider == "anthropic"}

    page.goto(console_url + "calls?status=5xx")
    assert set(_row_ids(page)) == {
        i for i, r in filled.records.items() if r.status is not None and r.status >= 500
    }
    page.goto(console_url + "calls?session=sess-console")
    assert set(_row_ids(page)) == {
        i for i, r in filled.records.items() if r.session_id == "sess-console"
    }


def test_search_finds_words_in_the_response_text(
    page: Page, filled: Filled, console_url: str
) -> None:
    page.goto(console_url + "calls")
    page.fill("input[name=q]", RARE_WORD[:9])  # a prefix of the word
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**q=**")
    assert _row_ids(page) == [filled.rare_id]
    for hostile in ('" * AND NEAR(', "a:b & !c", "'; DROP TABLE records; --"):
        page.goto(console_url + "calls?q=" + httpx.QueryParams({"q": hostile})["q"])
        assert page.locator("h1").inner_text() == "Calls"
        assert _row_ids(page) == []


def test_a_streamed_call_draws_one_mark_per_chunk(
    page: Page, filled: Filled, console_url: str
) -> None:
    streamed = [r for r in filled.records.values() if r.stream and r.chunks]
    assert len(streamed) >= 3  # OpenAI, Anthropic and Gemini streams
    for record in streamed:
        page.goto(console_url + "call?id=" + record.record_id)
        assert page.locator("svg#timeline rect.chunk").count() == len(record.chunks)
        assert page.locator("svg#timeline line.ttft").count() == 1
        events = page.locator("tr.sse-event").count()
        assert events == record.body.count(b"data:")  # one row per server-sent event


def test_a_script_in_a_body_executes_nothing(page: Page, filled: Filled, console_url: str) -> None:
    dialogs: list[str] = []

    def dismissed(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismissed)
    session = httpx.QueryParams({"s": HOSTILE_SESSION})["s"]
    for path in (
        f"call?id={filled.hostile_id}",
        f"calls?session={session}",
        f"session?id={session}",
    ):
        page.goto(console_url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__pwned") == "undefined", path
    assert dialogs == []
    assert HOSTILE_SESSION in page.locator("h1").inner_text()  # shown as text
    page.goto(console_url + f"calls?session={session}")
    assert filled.hostile_id in _row_ids(page)
    page.goto(console_url + "call?id=" + filled.hostile_id)
    assert HOSTILE.decode() in page.locator("div.body pre.pretty").inner_text()
    headers = page.locator("section.response table.headers").inner_text()
    assert "<script>window.__pwned=5</script>" in headers


def test_a_binary_body_shows_as_hex(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "call?id=" + filled.binary_id)
    body = page.locator("section.response div.body")
    assert body.get_attribute("data-kind") == "binary"
    assert body.locator("pre.hex").inner_text().startswith("00000000  00 01 02 03")


def test_retries_show_side_by_side(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "call?id=" + filled.retried[0])
    assert set(_row_ids(page)) == set(filled.retried)  # the attempts table lists each attempt


def test_a_session_lists_its_calls_in_order(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "session?id=sess-console")
    ids = _row_ids(page)
    want = sorted(
        (r for r in filled.records.values() if r.session_id == "sess-console"),
        key=lambda r: (r.started_at_ns, r.record_id),
    )
    assert ids == [r.record_id for r in want]


def test_overview_counts_what_the_store_holds(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "overview?since=1d")
    totals = page.locator("section.totals div").first.inner_text()
    assert totals.split()[0] == f"{len(filled.records):,}"
    assert page.locator("figure.chart rect.bar").count() > 0
    providers = {r.provider for r in filled.records.values()}
    listed = {
        row.locator("td").first.inner_text() for row in page.locator("table.models tbody tr").all()
    }
    assert listed == providers


def test_downloads_are_the_stored_bytes(filled: Filled, console_url: str) -> None:
    for record_id in (filled.binary_id, filled.hostile_id, filled.rare_id):
        got = httpx.get(console_url + "call/body", params={"id": record_id})
        assert got.status_code == 200
        assert got.content == filled.records[record_id].body
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")


def test_every_page_sends_a_policy_that_blocks_inline_script(
    filled: Filled, console_url: str
) -> None:
    for path in ("calls", "overview", f"call?id={filled.hostile_id}", "session?id=sess-console"):
        got = httpx.get(console_url + path)
        assert got.status_code == 200, path
        assert "script-src 'self'" in got.headers["content-security-policy"]
        assert got.headers["x-content-type-options"] == "nosniff"
        assert b"<script>window" not in got.content  # escaped in the HTML itself


def test_the_console_never_writes_the_store(
    tmp_path: Path, redis_url: str, browser: Browser
) -> None:
    store_file = tmp_path / "ro.db"
    filled = _fill(f"sqlite:///{store_file}", redis_url)
    before = hashlib.sha256(store_file.read_bytes()).hexdigest()
    with running_console(filled.url) as console:
        context = browser.new_context()
        page = context.new_page()
        for path in ("calls", "overview", f"call?id={filled.rare_id}", "calls?q=answer"):
            page.goto(console.url + path)
        context.close()
    assert hashlib.sha256(store_file.read_bytes()).hexdigest() == before
    # A WAL reader may create the -wal and -shm files SQLite reads through; no frame is written.
    wal = tmp_path / "ro.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_missing_store_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        rawtap_command("console", "--sink", f"sqlite:///{tmp_path}/none.db", "--port", "0"),
        check=False, capture_output=True, text=True, timeout=PROCESS_EXIT_S,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("rawtap: error:")
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])  # noqa: S104
def test_a_bind_beyond_loopback_needs_a_token(host: str, tmp_path: Path) -> None:
    done = subprocess.run(
        rawtap_command("console", "--sink", f"sqlite:///{tmp_path}/x.db", "--host", host, "--port", "0"),
        check=False, capture_output=True, text=True, timeout=PROCESS_EXIT_S,
        env={k: v for k, v in os.environ.items() if k != "RAWTAP_CONSOLE_TOKEN"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "without a token" in done.stderr


def test_a_token_guards_every_request(browser: Browser, filled: Filled) -> None:
    token = "t0ken-" + uuid.uuid4().hex
    with running_console(
        filled.url, "--host", ANY_ADDRESS, env={"RAWTAP_CONSOLE_TOKEN": token}
    ) as console:
        local = console.url.replace(ANY_ADDRESS, "127.0.0.1")
        for path in ("calls", "static/console.css", f"call/body?id={filled.rare_id}"):
            refused = httpx.get(local + path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic")
        assert (
            httpx.get(
                local + "calls", headers={"authorization": "Bearer wrong-" + token}
            ).status_code
            == 401
        )
        assert (
            httpx.get(local + "calls", headers={"authorization": f"Bearer {token}"}).status_code
            == 200
        )
        context = browser.new_context(http_credentials={"username": "rawtap", "password": token})
        page = context.new_page()
        page.goto(local + "calls")
        assert len(_row_ids(page)) == len(filled.records)
        context.close()


def test_a_foreign_host_header_is_refused(filled: Filled, console_url: str) -> None:
    # A page whose DNS name was rebound to 127.0.0.1 sends its own name as Host.
    got = httpx.get(console_url + "calls", headers={"host": "attacker.example"})
    assert got.status_code == 400
    assert httpx.get(console_url + "calls", headers={"host": "localhost"}).status_code == 200


def test_the_copied_commands_run(page: Page, filled: Filled, console_url: str) -> None:
    page.goto(console_url + "call?id=" + filled.rare_id)
    commands = {
        str(c.get_attribute("id")): c.inner_text() for c in page.locator("code.command").all()
    }
    assert set(commands) == {"cmd-show", "cmd-replay", "cmd-export"}
    for name in ("cmd-show", "cmd-export"):
        argv = shlex.split(commands[name])
        assert argv[0] == "rawtap"
        done = subprocess.run(
            rawtap_command(*argv[1:]), check=False, capture_output=True, timeout=PROCESS_EXIT_S
        )
        assert done.returncode == 0, done.stderr
        if name == "cmd-export":
            (line,) = done.stdout.splitlines()  # --record: this record alone
            assert orjson.loads(line)["record_id"] == filled.rare_id
        else:
            assert filled.rare_id.encode() in done.stdout
    assert f"--record {filled.rare_id}" in commands["cmd-replay"]
    with _store(filled) as store:  # what replay's --record filter reads
        assert [s.record_id for s in store.summaries(RecordQuery(record_id=filled.rare_id))] == [
            filled.rare_id
        ]
        assert store.count_matching(RecordQuery(record_id=filled.rare_id[:-1])) == 0  # whole id


def test_a_request_from_another_sites_page_is_refused(filled: Filled, console_url: str) -> None:
    image = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image"}
    for path in ("overview?since=100000w", "calls", "call/body?decoded=1&id=" + filled.rare_id):
        refused = httpx.get(console_url + path, headers=image)
        assert refused.status_code == 403, path
        assert "script-src 'self'" in refused.headers["content-security-policy"]
    link = {
        "sec-fetch-site": "cross-site",
        "sec-fetch-mode": "navigate",
        "sec-fetch-dest": "document",
    }
    assert httpx.get(console_url + "calls", headers=link).status_code == 200


def test_absurd_filters_answer_with_a_page(filled: Filled, console_url: str) -> None:
    for path in (
        "calls?since=10000000d", "calls?until=10000000w", "overview?since=100000w",
        "overview?since=1" + "0" * 400 + "d", "calls?status=999", "calls?before=" + "9" * 30 + ":x",
        "calls?before=-5:%0A", "call?id=%00", "session?id=%00", "calls?q=%00%00",
    ):  # fmt: skip
        got = httpx.get(console_url + path)
        assert got.status_code in (200, 404), (path, got.status_code, got.text[:300])
        assert "content-security-policy" in got.headers


def test_a_big_body_costs_the_page_its_display_limit(filled: Filled, console_url: str) -> None:
    from rawtap.consumer.console._body import DISPLAY_LIMIT

    record = filled.records[filled.big_id]
    assert len(record.body) > 3 * DISPLAY_LIMIT
    page = httpx.get(console_url + "call", params={"id": filled.big_id})
    assert page.status_code == 200
    assert len(page.content) < 2.5 * DISPLAY_LIMIT  # pretty and raw views, each cut
    assert b"Only the first 1,048,576 decoded bytes are shown" in page.content
    download = httpx.get(console_url + "call/body", params={"id": filled.big_id})
    assert download.content == record.body


def test_a_token_file_keeps_the_token_out_of_ps_and_environ(filled: Filled, tmp_path: Path) -> None:
    token = "file-" + uuid.uuid4().hex
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with running_console(
        filled.url, "--host", "127.0.0.1", "--token-file", str(token_file)
    ) as console:
        pid = console.process.pid
        for name in ("cmdline", "environ"):
            assert token.encode() not in Path(f"/proc/{pid}/{name}").read_bytes(), name
        assert httpx.get(console.url + "calls").status_code == 401
        assert (
            httpx.get(
                console.url + "calls", headers={"authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )


def test_an_ipv6_bind_prints_a_url_that_opens(filled: Filled) -> None:
    with running_console(filled.url, "--host", "::1") as console:
        assert console.url.startswith("http://[::1]:")
        assert httpx.get(console.url + "calls").status_code == 200
