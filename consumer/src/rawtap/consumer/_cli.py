"""The ``rawtap`` command line.

Every failure is one line on stderr (``rawtap: error: …``) and a non-zero
exit: 1 for a runtime failure (Redis down, sink unusable), 2 for bad usage or
settings (usage errors included: click runs without its boxes and multi-line
messages). Tracebacks are only shown with ``--debug``. Stored strings are
printed through :func:`printable`, so no control character reaches the terminal.
"""

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, cast

import redis
import typer

# typer vendors click (typer._click): its exceptions are what the parser raises.
from typer._click import exceptions as click_errors

from rawtap.consumer._demo import run_demo
from rawtap.consumer.cli._logs import LOG_FORMATS, LOG_LEVELS, setup_logging
from rawtap.consumer.cli._terminal import printable
from rawtap.consumer.read import (
    ExportReport,
    PipelineFigures,
    StatsExit,
    document,
    error_document,
    export_jsonl,
    export_parquet,
    format_time,
    gather,
    iter_matching,
    parse_time,
    render_show,
    resolve_record,
    totals,
    verdict,
)
from rawtap.consumer.read import (
    rederive as run_rederive,
)
from rawtap.consumer.store import (
    ProducerBalance,
    RecordQuery,
    RecordSummary,
    SinkError,
    Store,
    open_sink,
    purge_older_than,
)
from rawtap.consumer.worker import (
    Worker,
    connect,
    describe,
    get_dead_letter,
    list_dead_letters,
    requeue,
)
from rawtap.shared import (
    ConfigError,
    EndState,
    RawtapError,
    StreamNames,
    WorkerSettings,
    display_url,
    load_settings,
    parse_duration,
    scrub_text,
)

app = typer.Typer(
    name="rawtap",
    help="Record every byte LLM providers send back: workers, inspection and a demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click output: one-line errors (see main) and help without boxes or <bool>.
    rich_markup_mode=None,
)


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _setting(*decls: str, field: str, help: str, **kw: Any) -> Any:
    """An option overriding a WorkerSettings field: help shows its default and variable."""
    info = WorkerSettings.model_fields[field]
    default = "hostname-pid" if info.default_factory is not None else info.default
    return typer.Option(
        *decls, help=f"{help} [env: RAWTAP_{field.upper()}]", show_default=_shown(default), **kw
    )


def _choice(*values: str) -> Callable[[str | None], str | None]:
    """A parser-time check of a choice option (any case): one line listing the allowed values."""

    def check(value: str | None) -> str | None:
        if value is None or value.lower() in values:
            return None if value is None else value.lower()
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")

    return check


RedisUrl = Annotated[str | None, _setting("--redis-url", field="redis_url", help="Redis URL.")]
Prefix = Annotated[
    str | None, _setting("--stream-prefix", field="stream_prefix", help="Stream key prefix.")
]
Group = Annotated[str | None, _setting("--group", field="group", help="Consumer group.")]
SinkUrl = Annotated[
    str | None,
    _setting(
        "--sink", field="sink_url", help="Store URL: sqlite:///path.db or postgresql://host/db."
    ),
]
ShardCount = Annotated[
    int | None,
    _setting(
        "--shard-count",
        field="shards",
        help="Shard streams producers write (rawtap:{0} ...), as they are configured.",
    ),
]
Cluster = Annotated[
    bool | None,
    _setting(
        "--cluster/--no-cluster",
        field="cluster",
        help="Use the Redis Cluster client (implied by redis+cluster:// URLs).",
    ),
]

_debug = False


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"rawtap: error: {_one_line(scrub_text(message))}", err=True)
    sys.exit(code)


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def _say(text: str, *, err: bool = False) -> None:
    """Print human-readable output, escaping control characters stored strings may hold."""
    typer.echo(printable(text, keep_newlines=True), err=err)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors.", show_default="off")
    ] = False,
) -> None:
    global _debug  # noqa: PLW0603 - one process-wide switch set by the root option
    _debug = debug


@app.command()
def worker(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    group: Group = None,
    sink: SinkUrl = None,
    consumer: Annotated[
        str | None,
        _setting("--consumer", field="consumer", help="Stable consumer name."),
    ] = None,
    batch_size: Annotated[
        int | None,
        _setting("--batch-size", field="batch_size", help="Entries per read and commit."),
    ] = None,
    block_ms: Annotated[
        int | None, _setting("--block-ms", field="block_ms", help="Blocking read time (ms).")
    ] = None,
    shard_count: ShardCount = None,
    shards: Annotated[
        str | None,
        _setting(
            "--shards",
            field="read_shards",
            help="Read only these shards, e.g. 0-3 or 0,2,5 (unset: all).",
        ),
    ] = None,
    cluster: Cluster = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            callback=_choice(*LOG_LEVELS),
            envvar="RAWTAP_LOG_LEVEL",
            show_envvar=True,
            show_default=True,
            help="Log this level and above.",
        ),
    ] = "info",
    log_format: Annotated[
        str | None,
        _setting(
            "--log-format",
            field="log_format",
            callback=_choice(*LOG_FORMATS),
            help="text, or json (one object per line).",
        ),
    ] = None,
) -> None:
    """Consume the shard streams into the sink until SIGTERM/SIGINT (then exit 0).

    A Redis that does not answer yet is waited for (backoff up to 5 s, logged once).
    """
    settings = load_settings(
        WorkerSettings,
        redis_url=redis_url,
        stream_prefix=stream_prefix,
        group=group,
        sink_url=sink,
        consumer=consumer,
        batch_size=batch_size,
        block_ms=block_ms,
        shards=shard_count,
        read_shards=shards,
        cluster=cluster,
        log_format=log_format,
    )
    setup_logging(log_level, settings.log_format)
    sink_obj = open_sink(settings.sink_url)
    names = StreamNames(settings.stream_prefix)
    logging.getLogger("rawtap.consumer").info(
        "rawtap worker %s: %s -> %s (group %s)",
        settings.consumer,
        ", ".join(names.shard(k) for k in settings.assigned_shards),
        display_url(settings.sink_url),
        settings.group,
    )
    with sink_obj:
        # The worker connects itself: it waits for a Redis that is down at start.
        Worker(settings, sink=sink_obj).run(handle_signals=True)


@app.command()
def stats(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    sink: SinkUrl = None,
    shard_count: ShardCount = None,
    cluster: Cluster = None,
    lag_warn: Annotated[
        int,
        typer.Option(
            "--lag-warn",
            min=1,
            show_default=True,
            help="Name shards with at least this many unread.",
        ),
    ] = 10_000,
    stall_s: Annotated[
        float,
        typer.Option(
            "--stall-s",
            min=0,
            show_default=True,
            help="Name shards with unread entries nobody read for this long (s).",
        ),
    ] = 30.0,
    max_lag: Annotated[
        int | None,
        typer.Option(
            "--max-lag",
            min=0,
            show_default="unset",
            help="Exit 6 when a shard has more than this many entries unread.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", show_default="off", help="One JSON object (see docs/cli.md)."),
    ] = False,
) -> None:
    """Show each shard's length, lag and pending, dead letters, and rows in the store.

    Exit codes: 0 ok, 3 Redis unreachable, 4 store missing/unreachable, 5 records lost,
    6 a shard over --max-lag (2: bad usage). The store is opened read-only.
    """
    settings = load_settings(
        WorkerSettings,
        redis_url=redis_url,
        stream_prefix=stream_prefix,
        sink_url=sink,
        shards=shard_count,
        cluster=cluster,
    )
    names = StreamNames(settings.stream_prefix)
    shown_redis = display_url(settings.redis_url)
    with_store = sink is not None or "RAWTAP_SINK_URL" in os.environ
    shown_store = display_url(settings.sink_url) if with_store else None

    def give_up(code: StatsExit, message: str) -> NoReturn:
        if as_json:
            doc = error_document(code, scrub_text(message), shown_redis, shown_store)
            typer.echo(json.dumps(doc))
        _fail(message, int(code))

    balances: list[ProducerBalance] | None = None
    client = connect(settings, name="rawtap-cli")
    try:
        try:
            figures = gather(client, names.shards(settings.shards), names.dead_letters, None)
        except redis.RedisError as e:
            give_up(StatsExit.REDIS_UNREACHABLE, describe(e, settings.redis_url))
    finally:
        client.close()
    if with_store:
        try:
            with open_sink(settings.sink_url, read_only=True) as store:
                figures = PipelineFigures(figures.shards, figures.dead_letters, store.count())
                balances = store.reconcile()
        except SinkError as e:
            give_up(StatsExit.STORE_UNAVAILABLE, str(e))
    lagging = {
        shard.shard: why
        for shard in figures.shards
        if (why := shard.lagging(lag_warn, int(stall_s * 1000))) is not None
    }
    code = verdict(figures, balances, max_lag)
    if as_json:
        doc = document(
            redis=shown_redis,
            stream_prefix=settings.stream_prefix,
            store=shown_store,
            figures=figures,
            balances=balances,
            lagging=lagging,
            code=code,
        )
        typer.echo(json.dumps(doc))
    else:
        _print_stats(figures, balances, lagging, shown_redis, shown_store, names)
    if code != StatsExit.OK:
        sys.exit(int(code))


def _print_stats(
    figures: PipelineFigures,
    balances: list[ProducerBalance] | None,
    lagging: dict[int, str],
    shown_redis: str,
    shown_store: str | None,
    names: StreamNames,
) -> None:
    _say(f"redis {shown_redis} (stream prefix {names.prefix})")
    _say(
        f"store {shown_store} (read-only)"
        if shown_store is not None
        else "store: none given (--sink or RAWTAP_SINK_URL to count and reconcile)"
    )
    if len(figures.shards) > 1:
        _say(
            f"{len(figures.shards)} shards: length {figures.length}, unread {figures.backlog}, "
            f"pending {figures.pending}"
        )
    for shard in figures.shards:
        _say(
            f"stream {shard.stream}: length {shard.length}, unread {shard.backlog}, "
            f"pending {shard.pending}"
        )
        if shard.trimmed_before_delivery:
            _say(
                f"  WARNING: {shard.trimmed_before_delivery} entries were trimmed by MAXLEN "
                "before a group read them"
            )
        if not shard.groups:
            _say("  no consumer group yet (no worker has started)")
        for g in shard.groups:
            lag = "n/a (Redis < 7)" if g.lag is None else str(g.lag)
            _say(
                f"  group {g.name}: consumers {g.consumers}, pending {g.pending}, lag {lag}, "
                f"last delivered {g.last_delivered_id}"
            )
    by_shard = {shard.shard: shard for shard in figures.shards}
    for k, why in lagging.items():
        _say(f"WARNING: shard {k} ({by_shard[k].stream}) lags: {why}")
    if len(figures.shards) > 1 and lagging:
        _say("lagging shards: " + ",".join(str(k) for k in lagging))
    _say(f"dead letters ({names.dead_letters}): {figures.dead_letters}")
    if shown_store is not None:
        _say(f"sink {shown_store}: {figures.stored} records")
        _print_reconciliation(balances or [])


def _print_reconciliation(balances: list[ProducerBalance]) -> None:
    if not balances:
        return
    t = totals(balances)
    detail = ", ".join(f"{k} {v}" for k, v in t.lost_by_reason.items())
    _say(
        f"reconciliation over {t.producers} producers: accepted {t.accepted} = "
        f"stored {t.stored} + dead-lettered {t.dead_lettered} + lost {t.lost}"
        + (f" ({detail})" if detail else "")
        + (f" + purged by retention {t.purged}" if t.purged else "")
    )
    for b in balances:
        if b.missing or b.dropped or b.accepted is None:
            shown = ", ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in b.missing[:5])
            more = f" (+{len(b.missing) - 5} ranges)" if len(b.missing) > 5 else ""
            known = "unknown (no report yet)" if b.accepted is None else str(b.accepted)
            _say(
                f"  producer {b.producer_id}: accepted {known}, stored {b.stored}, "
                f"dead {b.dead_lettered}, dropped {dict(b.dropped)}"
                + (f", missing seqs {shown}{more}" if b.missing else "")
            )


dead_letters_app = typer.Typer(
    help="Inspect and requeue dead letters.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(dead_letters_app, name="dead-letters")


def _dead_letter_client(redis_url: str | None, stream_prefix: str | None) -> tuple[Any, str]:
    settings = load_settings(WorkerSettings, redis_url=redis_url, stream_prefix=stream_prefix)
    return connect(settings, name="rawtap-cli"), StreamNames(settings.stream_prefix).dead_letters


@dead_letters_app.command("list")
def dead_letters_list(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, show_default=True, help="How many to show.")
    ] = 50,
) -> None:
    """List dead letters, oldest first."""
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        letters = list_dead_letters(client, stream, limit)
    if not letters:
        _say(f"no dead letters in {stream}")
    for d in letters:
        _say(
            f"{d.id}  from {d.origin_stream} {d.origin_id}  deliveries {d.deliveries}  "
            f"record {d.record_id or '-'}  {d.error}"
        )


@dead_letters_app.command("show")
def dead_letters_show(
    letter_id: Annotated[str, typer.Argument(help="Id in the dead-letter stream.")],
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
) -> None:
    """Show one dead letter with its original fields."""
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        letter = get_dead_letter(client, stream, letter_id)
    if letter is None:
        _fail(f"no dead letter {letter_id} in {stream}")
    _say(
        f"id {letter.id}\norigin {letter.origin_stream} {letter.origin_id}\n"
        f"deliveries {letter.deliveries}\nerror {letter.error}"
    )
    for name, value in letter.fields.items():
        preview = value[:200].decode("utf-8", "backslashreplace")
        _say(
            f"field {name.decode('utf-8', 'backslashreplace')} ({len(value)} bytes): "
            f"{preview}{'...' if len(value) > 200 else ''}"
        )


@dead_letters_app.command("requeue")
def dead_letters_requeue(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="Ids to requeue.")] = None,
    requeue_all: Annotated[
        bool, typer.Option("--all", show_default="off", help="Requeue every dead letter.")
    ] = False,
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
) -> None:
    """Put dead letters back on their stream (after fixing what made them fail)."""
    if not letter_ids and not requeue_all:
        _fail("name dead letter ids or pass --all", 2)
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        if requeue_all:
            letters = list_dead_letters(client, stream, 1_000_000)
        else:
            found = [get_dead_letter(client, stream, i) for i in letter_ids or []]
            missing = [i for i, d in zip(letter_ids or [], found, strict=True) if d is None]
            if missing:
                _fail(f"no dead letter {', '.join(missing)} in {stream}")
            letters = [d for d in found if d is not None]
        moved = requeue(client, stream, letters)
    typer.echo(f"requeued {moved} dead letters")


@app.command()
def demo(
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, show_default=True, help="SDK calls to make.")
    ] = 1000,
    sink: Annotated[
        str,
        typer.Option(
            "--sink",
            show_default=True,
            help="Store URL; a SQLite demo file is replaced each run (only one the demo made).",
        ),
    ] = "sqlite:///rawtap-demo.db",
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            show_default="a private redis-server",
            help="Use this Redis instead of starting a private one.",
        ),
    ] = None,
) -> None:
    """Run the whole pipeline locally (private Redis, worker, SQLite) and report."""
    report = run_demo(count, sink, redis_url)
    _say(report.render())


# -- the read side ---------------------------------------------------------------------

_ANY = "any"
Session = Annotated[
    str | None, typer.Option("--session", show_default=_ANY, help="Only this session id.")
]
Provider = Annotated[
    str | None, typer.Option("--provider", show_default=_ANY, help="Only this provider.")
]
Model = Annotated[
    str | None, typer.Option("--model", show_default=_ANY, help="Only this model (derived).")
]
Status = Annotated[
    int | None, typer.Option("--status", show_default=_ANY, help="Only this HTTP status.")
]
EndStateOpt = Annotated[
    str | None,
    typer.Option(
        "--end-state",
        callback=_choice(*(e.value for e in EndState)),
        show_default=_ANY,
        help="Only this end state.",
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        show_default=_ANY,
        help="Started at or after: 2h, 30d (ago) or an ISO date/time.",
    ),
]
Until = Annotated[
    str | None,
    typer.Option(
        "--until", show_default=_ANY, help="Started before: 2h, 30d (ago) or an ISO date/time."
    ),
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", show_default="when stderr is a terminal", help="Progress bar."
    ),
]


def _query(
    session: str | None,
    provider: str | None,
    model: str | None,
    status: int | None,
    end_state: str | None,
    since: str | None,
    until: str | None,
) -> RecordQuery:
    if end_state is not None and end_state not in {e.value for e in EndState}:
        raise ConfigError(
            f"--end-state {end_state!r}: use one of {', '.join(e.value for e in EndState)}"
        )
    return RecordQuery(
        session_id=session,
        provider=provider,
        model=model,
        status=status,
        end_state=end_state,
        since_ns=None if since is None else parse_time(since),
        until_ns=None if until is None else parse_time(until),
    )


def _store(sink: str | None, *, read_only: bool = True) -> Store:
    # Never create or upgrade a store here: only `rawtap migrate` and workers do.
    url = load_settings(WorkerSettings, sink_url=sink).sink_url
    return open_sink(url, migrate=False, read_only=read_only)


@contextlib.contextmanager
def _progress(label: str, total: int, enabled: bool | None) -> Iterator[Callable[[int], None]]:
    """A progress callback: a bar on stderr when enabled (default: stderr is a terminal)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _report_unreadable(report: ExportReport) -> None:
    if report.unreadable:
        record_id, reason = report.unreadable[0]
        _fail(
            f"{len(report.unreadable)} stored record(s) could not be read and were left out "
            f"(first {record_id}: {reason})"
        )


def _table(rows: list[RecordSummary]) -> str:
    header = ("ID", "STARTED (UTC)", "PROVIDER", "MODEL", "STATUS", "END", "TOKENS IN/OUT",
              "DURATION", "BYTES", "SESSION")  # fmt: skip
    body = []
    for r in rows:
        tokens = (
            "-"
            if r.input_tokens is None and r.output_tokens is None
            else f"{r.input_tokens if r.input_tokens is not None else '-'}/"
            f"{r.output_tokens if r.output_tokens is not None else '-'}"
        )
        end = r.end_state + (" stream" if r.stream else "") + (" !parse" if r.parse_error else "")
        cells = (
            r.record_id,
            format_time(r.started_at_ns),
            r.provider,
            r.model or "-",
            "-" if r.status is None else str(r.status),
            end,
            tokens,
            "-" if r.ended_ns is None else f"{r.ended_ns / 1e6:,.0f} ms",
            f"{r.body_size:,}",
            r.session_id or "-",
        )
        body.append(tuple(printable(c) for c in cells))
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *body)
    )


@app.command("list")
def list_(
    sink: SinkUrl = None,
    session: Session = None,
    provider: Provider = None,
    model: Model = None,
    status: Status = None,
    end_state: EndStateOpt = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, show_default=True, help="At most this many.")
    ] = 50,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", show_default="off", help="Oldest first.")
    ] = False,
) -> None:
    """List stored records (newest first) as a table."""
    query = _query(session, provider, model, status, end_state, since, until)
    with _store(sink) as store:
        rows = store.summaries(query, limit=limit, newest_first=not oldest_first)
    if not rows:
        typer.echo("no records match", err=True)
        return
    _say(_table(rows))


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(help="Record id, or a unique prefix of one.")],
    sink: SinkUrl = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", show_default="off", help="Write the exact bytes the provider sent to stdout."
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", show_default="off", help="The record as one JSON line (the shared schema)."
        ),
    ] = False,
) -> None:
    """Show one record: what it is, its derived fields and its decoded body."""
    with _store(sink) as store:
        stored = resolve_record(store, record_id)
    if raw:
        sys.stdout.buffer.write(stored.record.body)
        sys.stdout.buffer.flush()
    elif as_json:
        from rawtap.consumer.read import jsonl_line

        sys.stdout.buffer.write(jsonl_line(stored, with_derived=True))
        sys.stdout.buffer.flush()
    else:
        _say(render_show(stored))


@app.command()
def export(
    sink: SinkUrl = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            show_default=True,
            help="File to write; - for stdout (JSON Lines only).",
        ),
    ] = "-",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            callback=_choice("jsonl", "parquet"),
            show_default=True,
            help="jsonl, or parquet (needs pyarrow).",
        ),
    ] = "jsonl",
    with_derived: Annotated[
        bool,
        typer.Option(
            "--derived", show_default="off", help="JSON Lines: add a `derived` key to each line."
        ),
    ] = False,
    session: Session = None,
    provider: Provider = None,
    model: Model = None,
    status: Status = None,
    end_state: EndStateOpt = None,
    since: Since = None,
    until: Until = None,
    progress: ProgressOpt = None,
) -> None:
    """Export records, oldest first: JSON Lines (the shared schema, bytes base64) or Parquet."""
    fmt = fmt.lower()
    if fmt == "parquet" and output == "-":
        raise ConfigError("Parquet needs a file: add --output records.parquet")
    query = _query(session, provider, model, status, end_state, since, until)
    with _store(sink) as store:
        total = store.count_matching(query)
        with _progress("exporting", total, progress) as advance:
            if fmt == "parquet":
                report = export_parquet(store, query, output, progress=advance)
            elif output == "-":
                report = export_jsonl(
                    store, query, sys.stdout.buffer, with_derived=with_derived, progress=advance
                )
                sys.stdout.buffer.flush()
            else:
                with open(output, "wb") as out:
                    report = export_jsonl(
                        store, query, out, with_derived=with_derived, progress=advance
                    )
    if output != "-":
        typer.echo(f"exported {report.written} records to {output}", err=True)
    _report_unreadable(report)


@app.command()
def purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            show_default="required",
            help="Delete records that started longer ago: 30d, 12h.",
        ),
    ],
    sink: SinkUrl = None,
) -> None:
    """Delete records older than a given age (PostgreSQL by day: whole partitions)."""
    age = parse_duration(older_than)
    with _store(sink, read_only=False) as store:
        deleted = purge_older_than(store, age)
    typer.echo(f"deleted {deleted} records older than {older_than}")


@app.command()
def rederive(
    sink: SinkUrl = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", show_default="off", help="Re-read every matching record, not only stale ones."
        ),
    ] = False,
    session: Session = None,
    provider: Provider = None,
    model: Model = None,
    status: Status = None,
    end_state: EndStateOpt = None,
    since: Since = None,
    until: Until = None,
    progress: ProgressOpt = None,
) -> None:
    """Re-run the parsers over stored records (those from older parser versions, or --all)."""
    query = _query(session, provider, model, status, end_state, since, until)
    with _store(sink, read_only=False) as store:
        total = store.count_matching(query)
        with _progress("re-deriving", total, progress) as advance:
            report = run_rederive(store, query, everything=everything, progress=advance)
    typer.echo(
        f"examined {report.written} records, updated {report.updated}, "
        f"unparseable {report.failures}"
    )
    _report_unreadable(report)


@app.command()
def migrate(
    sink: SinkUrl = None,
    partition: Annotated[
        str | None,
        typer.Option(
            "--partition",
            callback=_choice("none", "day"),
            show_default="none (for a new store)",
            help="PostgreSQL, new stores only: none or day.",
        ),
    ] = None,
) -> None:
    """Create or upgrade the store's schema (workers also do this when they start)."""
    url = load_settings(WorkerSettings, sink_url=sink).sink_url
    if partition is not None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("--partition applies to PostgreSQL stores only")
        url += ("&" if "?" in url else "?") + f"partition={partition.lower()}"
    with open_sink(url, migrate=True) as store:
        version = getattr(store, "schema_version", "?")
    typer.echo(f"store {display_url(url.split('?')[0])} is at schema version {version}")


@app.command()
def replay(
    sink: SinkUrl = None,
    host: Annotated[
        str, typer.Option("--host", show_default=True, help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, show_default=True, help="Port (0: any free one).")
    ] = 8765,
    match: Annotated[
        str,
        typer.Option(
            "--match",
            callback=_choice("request", "path", "sequence"),
            show_default=True,
            help="request (method+path+body), path, or sequence.",
        ),
    ] = "request",
    timing: Annotated[
        bool,
        typer.Option(
            "--timing", show_default="off", help="Send stream chunks at their recorded times."
        ),
    ] = False,
    speed: Annotated[
        float, typer.Option("--speed", show_default=True, help="Timing speed-up factor.")
    ] = 1.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            show_default=True,
            help="Connections served at once; more get a 503.",
        ),
    ] = 128,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout", show_default=True, help="Seconds an idle connection is kept open."
        ),
    ] = 10.0,
    session: Session = None,
    provider: Provider = None,
    model: Model = None,
    status: Status = None,
    end_state: EndStateOpt = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Serve stored records over HTTP in each provider's wire format, until SIGTERM/SIGINT."""
    from rawtap.consumer._replay import MatchMode, ReplayServer

    match = match.lower()
    if speed <= 0:
        raise ConfigError("--speed must be greater than zero")
    if max_connections <= 0:
        raise ConfigError("--max-connections must be greater than zero")
    if idle_timeout <= 0:
        raise ConfigError("--idle-timeout must be greater than zero")
    query = _query(session, provider, model, status, end_state, since, until)
    with _store(sink) as store:
        records = list(iter_matching(store, query))
    if not records:
        raise ConfigError("no stored records match; nothing to replay")
    try:
        server = ReplayServer(
            records,
            host=host,
            port=port,
            match=cast("MatchMode", match),
            timing=timing,
            speed=speed,
            max_connections=max_connections,
            idle_timeout_s=idle_timeout,
        )
    except OSError as e:
        _fail(f"cannot listen on {host}:{port}: {e.strerror or e}")

    def stop(_signum: int, _frame: object) -> None:
        # Runs in the serving thread: close() only asks serve_forever to return, at once.
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(f"replaying {len(records)} records on {server.url}", err=True)
    server.serve_forever()
    typer.echo(
        f"served {server.served} responses, {server.miss_count} misses, "
        f"{server.refused_connections} connections refused (busy)",
        err=True,
    )


def _exit(message: str, code: int) -> NoReturn:
    # Outside the typer app a typer.Exit would escape as a traceback: exit directly.
    typer.echo(f"rawtap: error: {_one_line(scrub_text(message))}", err=True)
    sys.exit(code)


def main() -> None:
    """Entry point of the ``rawtap`` script: run the app, turning errors into one line."""
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx else e.format_message(), err=True)
        sys.exit(2)
    except click_errors.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        _exit(e.format_message() + where, e.exit_code)
    except typer.Abort:
        _exit("interrupted", 130)
    except click_errors.ClickException as e:
        _exit(e.format_message(), e.exit_code)
    except ConfigError as e:
        if _debug:
            raise
        _exit(str(e), 2)
    except RawtapError as e:
        if _debug:
            raise
        _exit(str(e), 1)
    except redis.RedisError as e:
        if _debug:
            raise
        _exit(describe(e, "the configured URL"), 1)
    except OSError as e:
        if _debug:
            raise
        _exit(f"{e.strerror or e} ({e.filename or 'I/O'})", 1)
    except Exception as e:  # the last resort: every error stays one line
        if _debug:
            raise
        _exit(f"unexpected {type(e).__name__}: {e} (rawtap --debug ... shows the traceback)", 1)
    if isinstance(code, int) and code:
        sys.exit(code)
