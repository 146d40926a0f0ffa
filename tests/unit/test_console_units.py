"""The console's parts without a server: bodies, filters, the guard, timeline and overview."""

from __future__ import annotations

import base64
import gzip
import zlib

import orjson
import pytest

from rawtap.consumer.console._body import DISPLAY_LIMIT, body_view, hex_dump, sse_events
from rawtap.consumer.console._filters import cursor, parse_cursor, parse_filters, status_range
from rawtap.consumer.console._guard import allowed_hosts, check_bind, is_loopback, token_matches
from rawtap.consumer.console._overview import build_overview, percentile
from rawtap.consumer.console._timeline import MARK_LIMIT, timeline
from rawtap.consumer.console._traces import check_template, trace_id, trace_link
from rawtap.consumer.store import CallFacts
from rawtap.shared import Chunk, ConfigError
from tests.support.records import make_record, sse


def test_json_is_pretty_and_raw_is_the_bytes() -> None:
    body = b'{"a":1,"b":[1,2]}'
    view = body_view(body, content_encoding=None, content_type="application/json", stream=False)
    assert view.kind == "json"
    assert view.pretty == orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    assert view.raw == body.decode()


def test_a_gzip_body_is_shown_decoded() -> None:
    body = gzip.compress(b'{"answer": "yes"}')
    view = body_view(body, content_encoding="gzip", content_type="application/json", stream=False)
    assert view.kind == "json"
    assert '"answer": "yes"' in view.pretty
    assert any("gzip" in n for n in view.notes)


def test_a_compression_bomb_costs_the_display_limit_only() -> None:
    bomb = zlib.compress(b"a" * (DISPLAY_LIMIT * 8), 9)
    view = body_view(bomb, content_encoding="deflate", content_type="text/plain", stream=False)
    assert len(view.raw) == DISPLAY_LIMIT
    assert any("Only the first" in n for n in view.notes)


def test_a_corrupt_encoding_falls_back_to_the_stored_bytes() -> None:
    view = body_view(b"not gzip at all", content_encoding="gzip", content_type=None, stream=False)
    assert view.raw == "not gzip at all"
    assert any("cannot be decoded" in n for n in view.notes)


def test_binary_is_hex() -> None:
    view = body_view(bytes(range(256)), content_encoding=None, content_type=None, stream=False)
    assert view.kind == "binary"
    assert view.raw_is_hex
    assert view.raw.splitlines()[0] == (
        "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  |................|"
    )
    assert len(view.raw.splitlines()) == 16


def test_hex_dump_is_bounded() -> None:
    lines = hex_dump(b"x" * 100, limit=32).splitlines()
    assert len(lines) == 3
    assert lines[-1].startswith("… 68 more bytes")


def test_event_streams_are_one_row_per_event() -> None:
    body = b"".join(sse(("message_start", {"a": 1}), (None, b"[DONE]"))) + b": keep-alive\n\n"
    events, left = sse_events(body)
    assert [(e.name, e.comment) for e in events] == [
        ("message_start", False), (None, False), (None, True)
    ]  # fmt: skip
    assert events[0].data == '{"a":1}'  # one line a row
    assert events[1].data == "[DONE]"
    assert left == 0
    crlf = b"data: 1\r\n\r\ndata: 2\r\n\r\n"
    assert [e.data for e in sse_events(crlf)[0]] == ["1", "2"]
    assert sse_events(b"data: x\n\n" * 10, limit=4)[1] == 6


def test_a_streamed_body_is_shown_as_events() -> None:
    body = b"data: {}\n\n"
    view = body_view(body, content_encoding=None, content_type="text/event-stream", stream=True)
    assert view.kind == "sse"
    assert len(view.events) == 1


@pytest.mark.parametrize(
    ("text", "expected"), [("404", (404, 405)), ("5xx", (500, 600)), (" 2XX ", (200, 300))]
)
def test_status_filters(text: str, expected: tuple[int, int]) -> None:
    assert status_range(text) == expected


def test_bad_filters_are_reported_and_dropped() -> None:
    f = parse_filters({"status": "oops", "since": "yesterday", "end_state": "x", "stream": "maybe",
                       "provider": "openai", "q": "hello"})  # fmt: skip
    assert len(f.problems) == 4
    assert f.query.provider == "openai"
    assert f.query.text == "hello"
    assert f.query.status_min is None
    assert f.query.since_ns is None
    assert "status" not in f.values


def test_filter_links_keep_the_other_filters() -> None:
    f = parse_filters({"provider": "openai", "q": "a&b"})
    assert f.link(before="1:x") == "?provider=openai&q=a%26b&before=1%3Ax"
    assert f.link(provider=None) == "?q=a%26b"


def test_cursors_round_trip_and_junk_is_ignored() -> None:
    assert parse_cursor(cursor(123, "id:with:colons")) == (123, "id:with:colons")
    assert parse_cursor("garbage") is None
    assert parse_cursor(None) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com", ""])  # noqa: S104
def test_anything_else_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match="without a token"):
        check_bind(host, None)
    check_bind(host, "x" * 16)


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        check_bind("127.0.0.1", "short")


def test_tokens_match_bearer_and_basic_only() -> None:
    token = "s3cret-token-1234"
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    assert token_matches(f"Bearer {token}", token)
    assert token_matches(f"Basic {basic}", token)
    assert not token_matches(f"Bearer {token}x", token)
    assert not token_matches("Basic !!!notbase64", token)
    assert not token_matches(token, token)
    assert not token_matches("", token)


def test_allowed_hosts() -> None:
    assert allowed_hosts("127.0.0.1", []) == frozenset({"localhost", "127.0.0.1", "::1"})
    assert allowed_hosts("0.0.0.0", []) is None  # noqa: S104
    hosts = allowed_hosts("0.0.0.0", ["console.internal"])  # noqa: S104
    assert hosts is not None
    assert "console.internal" in hosts


def test_traces_link_only_valid_ids() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert trace_id(tp) == "0af7651916cd43dd8448eb211c80319c"
    assert trace_link("http://j:16686/trace/{trace_id}", tp) == (
        "http://j:16686/trace/0af7651916cd43dd8448eb211c80319c"
    )
    assert trace_id("00-" + "0" * 32 + "-b7ad6b7169203331-01") is None
    assert trace_id("javascript:alert(1)") is None
    assert trace_link(None, tp) is None
    with pytest.raises(ValueError, match="trace_id"):
        check_template("javascript:{trace_id}")


def test_timeline_has_one_mark_per_chunk_and_marks_gaps() -> None:
    record = make_record(chunks=[b"a" * 10, b"b" * 20, b"c" * 5, b"d"])
    # chunk 4 arrives 900 ms after chunk 3: the one long gap
    record = record.model_copy(
        update={
            "chunks": [
                Chunk(1_000_000, 10),
                Chunk(2_000_000, 20),
                Chunk(3_000_000, 5),
                Chunk(903_000_000, 1),
            ]
        }
    )
    tl = timeline(record, ttft_ns=2_000_000)
    assert tl is not None
    assert len(tl.marks) == 4
    assert tl.marks[1].height > tl.marks[0].height > tl.marks[2].height  # height follows size
    assert [g.label for g in tl.gaps] == ["900 ms gap"]
    assert tl.ttft_x is not None
    assert timeline(make_record(body=b"{}"), None) is None


def test_a_huge_stream_is_binned() -> None:
    n = MARK_LIMIT * 3
    record = make_record(chunks=[b"x"] * n, chunk_step_ns=1000)
    tl = timeline(record, None)
    assert tl is not None
    assert tl.binned
    assert len(tl.marks) <= MARK_LIMIT
    assert tl.chunks == n


def _fact(t: int, provider: str = "openai", status: int = 200, ms: int = 100) -> CallFacts:
    return CallFacts(
        started_at_ns=t, provider=provider, model="m", status=status, end_state="complete",
        ended_ns=ms * 1_000_000, ttft_ns=None, input_tokens=10, output_tokens=5, cached_tokens=None,
    )  # fmt: skip


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([7.0], 0.95) == 7
    assert percentile([], 0.5) is None


def test_overview_buckets_and_totals() -> None:
    hour = 3600 * 10**9
    start = 1_800_000_000 * 10**9 // hour * hour
    facts = [_fact(start + i * 60 * 10**9, ms=i + 1) for i in range(60)]
    facts.append(_fact(start + 30 * 10**9, provider="anthropic", status=503))
    ov = build_overview(facts, start, start + hour)
    assert ov.calls == 61
    assert ov.errors == 1
    assert ov.input_tokens == 610
    assert ov.bucket_s == 300  # an hour in 12 five-minute buckets
    calls_chart = ov.charts[0]
    assert sum(1 for b in calls_chart.bars if "anthropic" in b.title) == 1
    assert {(m.provider, m.calls, m.errors) for m in ov.models} == {
        ("openai", 60, 0),
        ("anthropic", 1, 1),
    }
    assert not ov.capped


def test_a_capped_overview_says_what_it_covers() -> None:
    facts = [_fact(10**18 + i) for i in range(10)]
    ov = build_overview(facts, 0, 10**18 + 100, limit=10)
    assert ov.capped
    assert ov.covered_since_ns == 10**18


def test_docs_list_every_console_option_with_its_default() -> None:
    import re
    from pathlib import Path

    import typer

    from rawtap.consumer.cli._app import app
    from rawtap.consumer.cli._plugins import load_commands

    load_commands(app)
    command = typer.main.get_command(app).commands["console"]  # type: ignore[attr-defined]
    options = {p.opts[0]: p for p in command.params if p.opts and p.opts[0].startswith("--")}
    text = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text()
    section = text[text.index("## Options") : text.index("## Security")]
    rows = {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\| `(--[a-z-]+)[^`]*` \|[^|]*\|([^|]*)\|", section, re.M)
    }
    assert set(rows) == set(options)
    from rawtap.consumer.cli._cmd_console import DEFAULT_TRACE_URL
    from rawtap.consumer.console import DEFAULT_TRACE_URL as CONSOLE_DEFAULT

    assert DEFAULT_TRACE_URL == CONSOLE_DEFAULT  # the CLI keeps its own copy to import light
    for name, param in options.items():
        if param.default not in (None, [], ()) and name != "--sink":
            assert f"`{param.default}`" in rows[name], name


def test_an_uncompressed_body_is_cut_to_the_display_limit() -> None:
    body = b'{"text": "' + b"x" * (DISPLAY_LIMIT * 3) + b'"}'
    view = body_view(body, content_encoding=None, content_type="application/json", stream=False)
    assert len(view.raw) == DISPLAY_LIMIT
    assert len(view.pretty) <= DISPLAY_LIMIT
    assert any("Only the first" in n for n in view.notes)
    events = b"data: {}\n\n" * (DISPLAY_LIMIT // 5)
    sse_view = body_view(
        events, content_encoding=None, content_type="text/event-stream", stream=True
    )
    assert len(sse_view.raw) == DISPLAY_LIMIT


def test_json_nested_too_deep_to_indent_is_shown_as_text() -> None:
    deep = b"[" * 600 + b"]" * 600
    view = body_view(deep, content_encoding=None, content_type="application/json", stream=False)
    assert view.kind == "text"
    assert view.raw == deep.decode()
    events, _ = sse_events(b"data: " + deep + b"\n\n")
    assert events[0].data == deep.decode()


def test_a_range_of_any_length_has_at_most_48_buckets() -> None:
    from rawtap.consumer.console._overview import BUCKETS, bucket_seconds
    from rawtap.consumer.read import parse_time

    for span_s in (1.0, 3600.0, 86400.0 * 365, 86400.0 * 365 * 580):
        assert span_s / bucket_seconds(span_s) <= BUCKETS
    since = parse_time("10000000d")  # clamped to the 64-bit start, not an overflow
    ov = build_overview([_fact(10**18)], since, 10**18 + 1)
    assert len(ov.charts[0].x_axis.ticks) <= BUCKETS + 1
    assert all(len(c.bars) <= BUCKETS + 1 for c in ov.charts[:3])


def test_durations_too_long_are_clamped_or_refused() -> None:
    from rawtap.consumer.read import parse_time
    from rawtap.shared import parse_duration

    assert parse_time("10000000w") == -(2**63)
    with pytest.raises(ConfigError, match="too long"):
        parse_duration("1" + "0" * 400 + "d")
    f = parse_filters({"since": "1" + "0" * 400 + "d", "until": "10000000d"})
    assert len(f.problems) == 1
    assert f.query.until_ns == -(2**63)


def test_requests_from_other_sites_pages_are_refused() -> None:
    from rawtap.consumer.console._guard import cross_site

    def h(site: str, mode: str, dest: str) -> dict[str, str]:
        return {"sec-fetch-site": site, "sec-fetch-mode": mode, "sec-fetch-dest": dest}

    assert cross_site(h("cross-site", "no-cors", "image"))
    assert cross_site(h("cross-site", "cors", "empty"))
    assert cross_site(h("cross-site", "navigate", "iframe"))
    assert not cross_site(h("cross-site", "navigate", "document"))  # following a link
    assert not cross_site(h("same-origin", "cors", "empty"))
    assert not cross_site(h("none", "navigate", "document"))  # typed in the address bar
    assert not cross_site({})  # curl, scripts: no Sec-Fetch headers


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8600", "localhost"),
        ("[::1]:8600", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]evil.example", ""),
        ("localhost:80x", ""),
        ("a:b:c", "a:b:c"),
    ],
)
def test_host_headers_are_parsed_strictly(header: str, name: str) -> None:
    from rawtap.consumer.console._guard import _host_name

    assert _host_name(header) == name


def test_cursors_keep_ids_with_line_ends() -> None:
    assert parse_cursor(cursor(5, "a\nb\n")) == (5, "a\nb\n")
    assert parse_cursor("1" * 25 + ":x") is None  # beyond 64 bits


def test_an_unexpected_failure_is_a_page_with_the_security_headers(tmp_path: object) -> None:
    from pathlib import Path

    from starlette.testclient import TestClient

    from rawtap.consumer import open_sink
    from rawtap.consumer.console import ConsoleSettings, create_app
    from rawtap.consumer.store import RecordQuery, RecordSummary, SqliteSink

    class Failing(SqliteSink):
        """A real store whose listing breaks in a way no handler names."""

        def summaries(
            self,
            query: RecordQuery,
            limit: int = 50,
            newest_first: bool = True,
            after: tuple[int, str] | None = None,
        ) -> list[RecordSummary]:
            raise RuntimeError("<script>boom</script>")

    assert isinstance(tmp_path, Path)
    url = f"sqlite:///{tmp_path}/s.db"
    open_sink(url).close()
    store = Failing.from_url(url, migrate=False, read_only=True)
    try:
        client = TestClient(
            create_app(store, ConsoleSettings(sink_url=url)), raise_server_exceptions=False
        )
        got = client.get("/calls", headers={"host": "127.0.0.1"})
    finally:
        store.close()
    assert got.status_code == 500
    assert "script-src 'self'" in got.headers["content-security-policy"]
    assert "&lt;script&gt;boom" in got.text
    assert "<script>boom" not in got.text
