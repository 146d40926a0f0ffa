"""The console's read layer, on every store: filters, text search, keyset pages, facets, facts.

Parametrised like the sink contract (SQLite, PostgreSQL, PostgreSQL by day); every
store must answer the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, date, datetime, timedelta
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
    derive,
    open_sink,
)
from rawtap.consumer.store import CallFacts
from rawtap.shared import Record
from tests.support.records import make_record, sse

DAY = 86_400 * 1_000_000_000
CHAT = "https://api.openai.com/v1/chat/completions"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_sink(store_url) as s:
        yield s


def _chat(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    )


def _said(text: str, **fields: Any) -> Record:
    """A chat completion whose derived text is ``text``."""
    return make_record(body=_chat(text), url=CHAT, **fields)


def _write(store: Store, records: Sequence[Record]) -> list[str]:
    store.write(records, 1, [derive(r) for r in records])
    return [r.record_id for r in records]


def _found(store: Store, text: str | None = None, **filters: Any) -> list[str]:
    rows = store.summaries(RecordQuery(text=text, **filters), limit=1000)
    return sorted(s.record_id for s in rows)


def _execute(store: Store, statement: str, *params: object) -> list[tuple[Any, ...]]:
    if isinstance(store, PostgresSink):
        return store.execute(statement.replace("?", "%s"), params)
    assert isinstance(store, SqliteSink)
    return store.execute(statement, params)


def test_each_filter_narrows_to_its_records(store: Store) -> None:
    base = time.time_ns() - DAY
    specs = [  # service, call_id, status, stream
        ("api", "c1", 200, False),
        ("api", "c1", 503, False),
        ("batch", "c2", 429, False),
        ("batch", None, 200, True),
        (None, "c3", None, False),
        ("api", "c4", 400, False),
    ]
    records = []
    for i, (service, call_id, status, stream) in enumerate(specs):
        details: dict[str, Any] = {"chunks": sse((None, {"i": i}))} if stream else {}
        records.append(
            make_record(
                body=b"" if stream else b"{}", service=service, call_id=call_id,
                status=status, started_at_ns=base + i, session_id=f"s{i % 2}",
                end_state="transport_error" if status is None else "complete", **details,
            )
        )  # fmt: skip
    ids = _write(store, records)

    def only(*indexes: int) -> list[str]:
        return sorted(ids[i] for i in indexes)

    assert _found(store, service="api") == only(0, 1, 5)
    assert _found(store, service="batch") == only(2, 3)
    assert _found(store, call_id="c1") == only(0, 1)
    assert _found(store, call_id="nope") == []
    assert _found(store, status_min=400) == only(1, 2, 5)  # no status: in no range
    assert _found(store, status_min=400, status_max=500) == only(2, 5)
    assert _found(store, status_max=429) == only(0, 3, 5)  # the upper bound is exclusive
    assert _found(store, status_min=429, status_max=430) == only(2)  # the lower one inclusive
    assert _found(store, stream=True) == only(3)
    assert _found(store, stream=False) == only(0, 1, 2, 4, 5)
    assert _found(store, service="api", status_min=500, session_id="s1") == only(1)
    assert _found(store, end_state="transport_error") == only(4)
    assert _found(store, status_min=2**70) == []  # out of 64 bits: clamped, never an error
    assert store.count_matching(RecordQuery(service="api", stream=False)) == 3
    newest = store.summaries(RecordQuery(service="batch"))[0]
    assert (newest.record_id, newest.service, newest.method, newest.call_id) == (
        ids[3], "batch", "POST", None,
    )  # fmt: skip
    first = store.summaries(RecordQuery(call_id="c1"), newest_first=False)[0]
    assert (first.call_id, first.url, first.finish_reason) == ("c1", None, None)


def test_a_summary_carries_the_derived_fields_the_console_shows(store: Store) -> None:
    record = _said("hello there", call_id="call-9", service="svc")
    _write(store, [record])
    (summary,) = store.summaries(RecordQuery())
    assert (summary.service, summary.method, summary.url, summary.call_id) == (
        "svc", "POST", CHAT, "call-9",
    )  # fmt: skip
    assert (summary.finish_reason, summary.model, summary.ttft_ns) == ("stop", "gpt-4o", 1_000_000)


def test_text_search_matches_every_word_as_a_prefix_whatever_the_case(store: Store) -> None:
    texts = [
        "Rate limited: please retry after 20s",
        "The weather in Paris is sunny",
        "see https://example.com/docs?q=1 or mail ops@corp.io",
        "snake_case_name and v1.2.3 and 3.14159",
        "<script>alert('x')</script> &amp; more",
        "Ünïcode café DÉJÀ vu 東京タワー",
    ]
    ids = _write(store, [_said(t) for t in texts])
    assert _found(store, "rate lim") == [ids[0]]  # prefixes, both required
    assert _found(store, "RATE Limited PLEASE") == [ids[0]]  # any case
    assert _found(store, "rate sunny") == []  # every word must match
    assert _found(store, "ret") == [ids[0]]
    assert _found(store, "etry") == []  # a prefix, not any substring
    assert _found(store, "ra") == []  # one or two ASCII characters: whole words only
    assert _found(store, "or") == [ids[2]]
    assert _found(store, "v1 3") == [ids[3]]
    assert _found(store, "Ün") == [ids[5]]  # not ASCII: a prefix still
    assert _found(store, "example") == [ids[2]]  # punctuation separates words
    assert _found(store, "com docs") == [ids[2]]
    assert _found(store, "corp") == [ids[2]]
    assert _found(store, "case name") == [ids[3]]  # "_" separates words too
    assert _found(store, "snake_case") == [ids[3]]
    assert _found(store, "14159") == [ids[3]]
    assert _found(store, "script alert") == [ids[4]]  # markup is text like any other
    assert _found(store, "amp") == [ids[4]]
    assert _found(store, "café") == [ids[5]]
    assert _found(store, "ünï") == [ids[5]]  # case folds beyond ASCII
    assert _found(store, "déjà") == [ids[5]]
    assert _found(store, "東京") == [ids[5]]
    if isinstance(store, SqliteSink):
        assert _found(store, "cafe deja") == [ids[5]]  # SQLite also ignores diacritics
    assert _found(store, "the  the the") == [ids[1]]  # a repeated word counts once
    assert _found(store, None) == sorted(ids)
    assert _found(store, "   ") == sorted(ids)  # blank: no filter
    assert store.count_matching(RecordQuery(text="rate retry")) == 1
    assert store.count_matching(RecordQuery(text="!!")) == 0


@pytest.mark.parametrize(
    ("text", "finds"),
    [
        ('"', []),
        ("*", []),
        ("!", []),
        (":", []),
        ("&", []),
        ("'", []),
        ("\x00", []),
        ("-- ; () [] {} <> | ~ ^ $ #", []),  # only punctuation: no word, no match
        ('"quoted"', ["quoted"]),
        ("AND", ["and"]),  # an FTS operator is a plain word here
        ("OR", ["or"]),
        ("NOT", ["not"]),
        ("NEAR(", ["near"]),
        ("near(a b", []),  # every word must match
        ("col:name", ["col"]),  # a column filter in FTS5, a weight in tsquery: words here
        ("a&b|c!d", ["abc"]),
        ("x*", ["x"]),
        ("it's", ["its"]),
        ("nul\x00word", ["nul"]),
        ("\ud800lone", ["lone"]),  # a lone surrogate separates like punctuation
        ("w" * 10_240, []),  # longer than any stored text can hold
        ("quoted " * 1_500, ["quoted"]),  # 10 KB of words
    ],
)
def test_hostile_search_text_never_raises_and_matches_as_documented(
    store: Store, text: str, finds: list[str]
) -> None:
    corpus = {
        "quoted": 'he "quoted" it',
        "and": "salt AND pepper",
        "or": "or else",
        "not": "NOT this",
        "near": "nearby things",
        "col": "column name",
        "abc": "a b c d",
        "x": "x marks",
        "its": "it s fine",
        "nul": "nul word",
        "lone": "lonely",
    }
    ids = dict(zip(corpus, _write(store, [_said(t) for t in corpus.values()]), strict=True))
    assert _found(store, text) == sorted(ids[k] for k in finds)
    assert len(store.summaries(RecordQuery(text=text), after=(2**70, "\x00"))) == len(finds)
    store.call_facts(RecordQuery(text=text))
    store.count_matching(RecordQuery(text=text))


def test_a_rederived_record_is_found_by_its_new_text_only(store: Store) -> None:
    record = _said("original wording")
    other = _said("original too")
    _write(store, [record, other])
    assert _found(store, "original") == sorted([record.record_id, other.record_id])
    new = derive(record).model_copy(update={"text": "replacement phrase"})
    assert store.set_derived([(record.record_id, new)]) == 1
    assert _found(store, "replacement") == [record.record_id]
    assert _found(store, "wording") == []
    assert _found(store, "original") == [other.record_id]
    assert store.set_derived([(record.record_id, new)]) == 1  # the same text again
    assert _found(store, "replacement") == [record.record_id]
    assert store.set_derived([(record.record_id, Derived())]) == 1  # no text at all
    assert _found(store, "replacement") == []
    back = derive(record)
    assert store.set_derived([(record.record_id, back)]) == 1
    assert _found(store, "wording") == [record.record_id]


def test_purged_records_leave_the_search(store: Store) -> None:
    now = time.time_ns()
    old = [_said(f"vintage item {i}", started_at_ns=now - 3 * DAY + i) for i in range(4)]
    new = [_said(f"vintage fresh {i}", started_at_ns=now - i) for i in range(3)]
    _write(store, [*old, *new])
    assert len(_found(store, "vintage")) == 7
    assert store.purge(now - DAY) == 4
    assert _found(store, "vintage") == sorted(r.record_id for r in new)
    assert _found(store, "item") == []
    if isinstance(store, SqliteSink):  # the FTS table holds exactly the stored texts
        assert store.execute("SELECT count(*) FROM records_fts") == [(3,)]
        assert store.execute("SELECT count(*) FROM records_fts_keys") == [(3,)]


def _key(record: Record) -> tuple[int, str]:
    return (record.started_at_ns, record.record_id)


def _pages(store: Store, query: RecordQuery, size: int, newest_first: bool) -> list[list[str]]:
    pages: list[list[str]] = []
    after: tuple[int, str] | None = None
    while True:
        rows = store.summaries(query, limit=size, newest_first=newest_first, after=after)
        if not rows:
            return pages
        pages.append([r.record_id for r in rows])
        after = (rows[-1].started_at_ns, rows[-1].record_id)


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize("text", [None, "paged"])
def test_keyset_pages_return_every_record_once_in_order(
    store: Store, newest_first: bool, text: str | None
) -> None:
    base = time.time_ns() - DAY
    # Several records share a start time (to the ns), in both the list and the search;
    # written out of order, in two batches, with records that do not match between.
    starts = [base + 5, base + 5, base + 5, base + 1, base + 9, base + 9, base + 2, base + 7]
    matching = [_said(f"paged item {i}", started_at_ns=s) for i, s in enumerate(starts)]
    others = [_said("unrelated", started_at_ns=base + 5) for _ in range(3)]
    _write(store, [*matching[4:], *others[:1]])
    _write(store, [*others[1:], *matching[:4]])
    query = RecordQuery(text=text)
    expected = sorted(matching if text else [*matching, *others], key=_key)
    if newest_first:
        expected.reverse()
    pages = _pages(store, query, 3, newest_first)
    assert [len(p) for p in pages] == ([3, 3, 2] if text else [3, 3, 3, 2])
    assert [rid for page in pages for rid in page] == [r.record_id for r in expected]


def test_call_id_lookup_returns_every_attempt(store: Store) -> None:
    base = time.time_ns() - DAY
    attempts = [
        make_record(call_id="call-42", attempt=n, status=s, started_at_ns=base + n)
        for n, s in enumerate((429, 500, 200))
    ]
    _write(store, [*attempts, make_record(call_id="call-43"), make_record()])
    rows = store.summaries(RecordQuery(call_id="call-42"), newest_first=False)
    assert [r.record_id for r in rows] == [a.record_id for a in attempts]
    assert [r.status for r in rows] == [429, 500, 200]


def test_facets_list_the_distinct_values_sorted(store: Store) -> None:
    records = [
        make_record("openai", service="b-svc", end_state="complete"),
        make_record("anthropic", service="a-svc", end_state="error"),
        make_record("openai", service=None, end_state="complete"),
        make_record("gemini", service="b-svc", end_state="closed_early"),
    ]
    models = ["m2", "m1", None, "m2"]
    derived = [Derived(parser_version=0, model=m) for m in models]
    store.write(records, 1, derived)
    assert store.facets() == {
        "provider": ["anthropic", "gemini", "openai"],
        "model": ["m1", "m2"],
        "service": ["a-svc", "b-svc"],
        "end_state": ["closed_early", "complete", "error"],
    }
    assert store.facets(limit=2)["provider"] == ["anthropic", "gemini"]
    assert store.facets(limit=1)["end_state"] == ["closed_early"]


def test_facets_of_an_empty_store_are_empty(store: Store) -> None:
    assert store.facets() == {"provider": [], "model": [], "service": [], "end_state": []}


def test_call_facts_are_the_newest_first_up_to_the_cap(store: Store) -> None:
    base = time.time_ns() - DAY
    records = [_said(f"fact {i}", started_at_ns=base + i * 1000) for i in range(7)]
    _write(store, records)
    facts = store.call_facts(RecordQuery(), limit=5)
    assert [f.started_at_ns for f in facts] == [base + i * 1000 for i in (6, 5, 4, 3, 2)]
    assert facts[0] == CallFacts(
        started_at_ns=base + 6000, provider="openai", model="gpt-4o", status=200,
        end_state="complete", ended_ns=6_000_000, ttft_ns=1_000_000, input_tokens=3,
        output_tokens=2, cached_tokens=None,
    )  # fmt: skip
    assert type(facts[0]) is CallFacts
    with pytest.raises(FrozenInstanceError):
        facts[0].status = 500  # type: ignore[misc]
    assert len(store.call_facts(RecordQuery(provider="openai"))) == 7
    assert store.call_facts(RecordQuery(provider="gemini")) == []
    assert [f.started_at_ns for f in store.call_facts(RecordQuery(text="fact"), limit=2)] == [
        base + 6000, base + 5000,
    ]  # fmt: skip
    assert [f.name for f in fields(CallFacts)] == [
        "started_at_ns", "provider", "model", "status", "end_state", "ended_ns", "ttft_ns",
        "input_tokens", "output_tokens", "cached_tokens",
    ]  # fmt: skip


def test_a_read_only_store_reads_but_cannot_write(store_url: str) -> None:
    with open_sink(store_url) as store:
        _write(store, [_said("readable text")])
    with open_sink(store_url, read_only=True) as store:
        assert len(store.summaries(RecordQuery(text="readable"))) == 1
        assert store.facets()["provider"] == ["openai"]
        assert len(store.call_facts(RecordQuery())) == 1
        with pytest.raises(SinkError):
            store.write([_said("more")], 1)
        assert store.count() == 1


def test_searches_past_a_page_and_a_time_bound_stay_exact(store: Store) -> None:
    # Many matches, some sharing their start time, written newest first: the stores read
    # matches in time order and stop after a page; a page must still be exactly the next.
    base = time.time_ns() - DAY
    records = [
        _said(f"bulk {'rare' if i % 25 == 0 else 'common'} word", started_at_ns=base + (i // 3))
        for i in range(300)
    ]
    for i in range(0, 300, 60):
        _write(store, records[::-1][i : i + 60])
    ordered = sorted(records, key=_key, reverse=True)
    for text in ("common", "rare"):
        wanted = {r.record_id for i, r in enumerate(records) if (i % 25 == 0) == (text == "rare")}
        expected = [r.record_id for r in ordered if r.record_id in wanted]
        pages = _pages(store, RecordQuery(text=text), 7, True)
        assert [rid for page in pages for rid in page] == expected
        until = base + 50
        bounded = [
            r.record_id for r in ordered if r.record_id in wanted and r.started_at_ns < until
        ]
        got = store.summaries(RecordQuery(text=text, until_ns=until), limit=1000)
        assert [r.record_id for r in got] == bounded
        oldest = store.summaries(RecordQuery(text=text, since_ns=base + 20), limit=5,
                                 newest_first=False)  # fmt: skip
        assert [r.record_id for r in oldest] == [
            rid for rid in expected[::-1] if _start(records, rid) >= base + 20
        ][:5]


def _start(records: Sequence[Record], record_id: str) -> int:
    return next(r.started_at_ns for r in records if r.record_id == record_id)


@pytest.mark.parametrize("window", [3, 1_000])
def test_postgres_text_pages_by_windows_and_by_the_index_agree(
    postgres_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    from rawtap.consumer.store.postgres import _search
    from tests.integration.conftest import with_params

    monkeypatch.setattr(_search, "WINDOW", window)
    base = time.time_ns() - DAY
    # Common near the top, rare (under MIN_SHARE) further down, none in between.
    texts = ["often seen"] * 40 + ["filler"] * 400 + ["seldom often"] * 3 + ["filler"] * 60
    records = [_said(t, started_at_ns=base - i) for i, t in enumerate(texts)]
    with open_sink(with_params(postgres_url, schema=pg_schema)) as store:
        _write(store, records)
        for word, size in (("often", 10), ("seldom", 2), ("often", 100)):
            expected = [r.record_id for r in records if word in (derive(r).text or "")]
            assert [rid for page in _pages(store, RecordQuery(text=word), size, True)
                    for rid in page] == expected  # fmt: skip


def test_a_schema_4_store_is_migrated_and_backfilled(store_url: str) -> None:
    from rawtap.consumer.store import _migrations

    scripts = _migrations.migration_scripts
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    four = [s for s in scripts(dialect) if s[0] <= 4]
    records = [
        _said("legacy text with zebra", call_id="call-old", session_id="s"),
        _said("another legacy", call_id=None),
        make_record(body=b"", call_id="call-bin", status=None, end_state="transport_error"),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_migrations, "migration_scripts", lambda _d: four)
        import rawtap.consumer.store.postgres._migrate as pg_migrate
        import rawtap.consumer.store.sqlite._migrate as sqlite_migrate

        patch.setattr(pg_migrate, "migration_scripts", lambda _d: four)
        patch.setattr(sqlite_migrate, "migration_scripts", lambda _d: four)
        with open_sink(store_url) as old:
            assert old.schema_version == 4  # type: ignore[attr-defined]
            _insert_schema_4(old, records)
    with open_sink(store_url) as store:
        assert store.schema_version == 5  # type: ignore[attr-defined]
        assert _found(store, "zebra") == [records[0].record_id]
        assert _found(store, "legacy") == sorted(r.record_id for r in records[:2])
        assert _found(store, call_id="call-old") == [records[0].record_id]
        assert _found(store, call_id="call-bin") == [records[2].record_id]
        assert store.count_matching(RecordQuery(call_id="call-old")) == 1
        for record in records:
            stored = store.get_stored(record.record_id)
            assert stored is not None
            assert stored.record == record
        new = _said("zebra crossing")
        _write(store, [new])  # the write path fills what the migration added
        assert _found(store, "zebra") == sorted([records[0].record_id, new.record_id])
        store.purge(2**62)
        assert _found(store, "zebra") == []


def _day(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, UTC).date()


def _insert_schema_4(store: Store, records: Sequence[Record]) -> None:
    """Rows as a schema-4 release wrote them (no call_id column)."""
    from rawtap.consumer.store._rows import (
        DERIVED_COLUMNS,
        RECORD_COLUMNS,
        derived_values,
        record_values,
    )

    columns = [c for c in RECORD_COLUMNS if c != "call_id"]
    if isinstance(store, PostgresSink) and store.partition == "day":
        for day in {_day(r.started_at_ns) for r in records}:
            start = datetime.combine(day, datetime.min.time(), UTC)
            store.execute(
                f"CREATE TABLE records_p{day:%Y%m%d} PARTITION OF records "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
            )
    for record in records:
        values = record_values(record, 1)[: len(columns)]
        names, row = [*columns, *DERIVED_COLUMNS], [*values, *derived_values(derive(record))]
        if isinstance(store, PostgresSink):
            from rawtap.consumer.store.postgres._values import json_text, ns_to_datetime

            names.append("started_at")
            row.append(ns_to_datetime(record.started_at_ns))
            calls = names.index("tool_calls")
            row[calls] = None if row[calls] is None else json_text(row[calls])
        marks = ", ".join("?" * len(names))
        statement = f"INSERT INTO records ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
        _execute(store, statement, *row)


def test_a_record_committed_by_the_worker_is_found_by_its_text(
    redis_url: str, stream_prefix: str, sink_url: str
) -> None:
    from rawtap.consumer import Worker
    from rawtap.producer import Recorder
    from tests.support.pipeline import drain, worker_thread

    with open_sink(sink_url) as store:
        worker = Worker(
            redis_url=redis_url, stream_prefix=stream_prefix, sink_url=sink_url,
            consumer="w-search", block_ms=50, sink=store,
        )  # fmt: skip
        recorder = Recorder(redis_url=redis_url, stream_prefix=stream_prefix)
        with worker_thread(worker):
            recorder.record("openai", _chat("The answer mentions a capybara twice"), None,
                            "sess-search", status=200, url=CHAT, call_id="call-w")  # fmt: skip
            recorder.record("openai", _chat("nothing of note"), None, "sess-search",
                            status=200, url=CHAT)  # fmt: skip
            drain(store, recorder.producer_id, 2)
        recorder.close()
        (found,) = store.summaries(RecordQuery(text="capyb"))
        assert (found.session_id, found.call_id) == ("sess-search", "call-w")
        assert [s.record_id for s in store.summaries(RecordQuery(call_id="call-w"))] == [
            found.record_id
        ]
        assert len(store.summaries(RecordQuery(session_id="sess-search"))) == 2
