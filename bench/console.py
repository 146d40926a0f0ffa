"""Console: how long each page takes to answer on a store of 1,000,000 records.

A store is filled with ``bench/_console_store.py``'s realistic records (several
providers, models, services, sessions, statuses, streams; 1-2 KB bodies), then
``rawtap console`` runs as its own process over it, read-only, and one keep-alive
HTTP client asks for each page in rounds: the figure is the median time of a
whole response (headers and body, as a browser waits for it), and its baseline
the console's static stylesheet from the same server in the same rounds (the
HTTP floor: the server, the client and the loopback, no store). The goal is
200 ms a page. SQLite and PostgreSQL (when reachable) each get a store.

Filling 1,000,000 records takes a while (about 15 minutes a store on 2 cores):
``RAWTAP_BENCH_CONSOLE_STORES="SQLite=sqlite:////path.db,PostgreSQL=postgresql://…"``
measures stores filled before by ``python -m bench._console_store URL 1000000``
instead, and the figures say so.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx

from bench._common import Figure, postgres_schema, time_figure
from bench._console_store import COMMON_WORD, RARE_WORD, fill_store

RECORDS, QUICK_RECORDS = 1_000_000, 2_000
ROUNDS, QUICK_ROUNDS = 7, 2
GOAL_MS = 200.0
_URL = re.compile(r"rawtap console: (http://\S+/) ")


@contextlib.contextmanager
def _console(sink_url: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from rawtap.consumer.cli import main; main()",
         "console", "--sink", sink_url, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = _URL.search(line)
        if match is None:
            proc.kill()
            raise RuntimeError(f"console did not start: {line!r} {proc.communicate()[1]!r}")
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def _pages(sink_url: str) -> list[tuple[str, str]]:
    """The pages measured: (name, path), picked from what the store holds."""
    from rawtap.consumer import open_sink
    from rawtap.consumer.store import RecordQuery

    with open_sink(sink_url, migrate=False, read_only=True) as store:
        newest = store.summaries(RecordQuery(), limit=1)[0]
        deep = store.summaries(RecordQuery(), limit=1, newest_first=False)[0]
        streamed = store.summaries(RecordQuery(stream=True), limit=1)[0]
        session = next(s for s in store.summaries(RecordQuery(), limit=50) if s.session_id)
    return [
        ("calls, newest page", "/calls"),
        ("calls, by provider", "/calls?provider=anthropic"),
        ("calls, status 5xx", "/calls?status=5xx"),
        ("calls, model + end state", "/calls?model=gpt-4o-mini&end_state=closed_early"),
        ("calls, status 5xx + streamed", "/calls?status=5xx&stream=yes"),
        ("calls, status 5xx + not streamed", "/calls?status=5xx&stream=no"),
        ("calls, provider + service + 4xx", "/calls?provider=gemini&service=search&status=4xx"),
        ("calls, search a rare word", f"/calls?q={RARE_WORD}"),
        ("calls, search a common word", f"/calls?q={COMMON_WORD}"),
        (
            "calls, oldest page (keyset)",
            "/calls?" + urlencode({"before": f"{deep.started_at_ns + 1}:~"}),
        ),
        ("one call, streamed", "/call?" + urlencode({"id": streamed.record_id})),
        ("one call, newest", "/call?" + urlencode({"id": newest.record_id})),
        ("session", "/session?" + urlencode({"id": session.session_id or ""})),
        ("overview, last 24 h", "/overview"),
        ("overview, last 30 d", "/overview?since=30d"),
        ("overview, last 30 d, a common word", f"/overview?since=30d&q={COMMON_WORD}"),
    ]


def _measure(base: str, pages: list[tuple[str, str]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, _ in [*pages, ("floor", "")]}
    with httpx.Client(base_url=base.rstrip("/"), timeout=120) as client:
        for _, path in pages:  # warm the server's caches and the store's pages once
            client.get(path).raise_for_status()
        for _ in range(rounds):
            for name, path in [*pages, ("floor", "/static/console.css")]:
                t = time.perf_counter()
                client.get(path).raise_for_status()
                times[name].append((time.perf_counter() - t) * 1000)
    return times


def _store_figures(
    kind: str, sink_url: str, n: int, rounds: int, *, fill: bool = True
) -> list[Figure]:
    t = time.monotonic()
    if fill:
        fill_store(sink_url, n)
    else:
        from rawtap.consumer import open_sink
        from rawtap.consumer.store import RecordQuery

        with open_sink(sink_url, migrate=False, read_only=True) as store:
            n = store.count_matching(RecordQuery())
    filled_s = time.monotonic() - t
    pages = _pages(sink_url)
    with _console(sink_url) as base:
        times = _measure(base, pages, rounds)
    figures = []
    for name, _ in pages:
        figures.append(
            time_figure(
                "console",
                f"{kind} {n:,} records: {name}",
                times[name],
                times["floor"],
                "static file from the same server",
                unit="ms",
                goal=GOAL_MS,
                extra={
                    "fill_s": round(filled_s, 1) if fill else None,
                    "store": "filled in this run" if fill else "filled before the run",
                    "max_ms": round(max(times[name]), 1),
                },
            )
        )
    return figures


def run(redis_url: str, quick: bool, postgres_url: str | None) -> list[Figure]:
    """Fill a store of each kind, serve it, time every page."""
    del redis_url
    n = QUICK_RECORDS if quick else int(os.environ.get("RAWTAP_BENCH_CONSOLE_RECORDS", RECORDS))
    rounds = QUICK_ROUNDS if quick else ROUNDS
    figures: list[Figure] = []
    given = os.environ.get("RAWTAP_BENCH_CONSOLE_STORES", "")
    if given and not quick:
        for item in given.split(","):
            kind, _, url = item.partition("=")
            figures += _store_figures(kind.strip(), url.strip(), 0, rounds, fill=False)
        return figures
    with tempfile.TemporaryDirectory() as tmp:
        figures += _store_figures("SQLite", f"sqlite:///{tmp}/console.db", n, rounds)
    if postgres_url is not None:
        with postgres_schema(postgres_url) as url:
            figures += _store_figures("PostgreSQL", url, n, rounds)
    return figures
