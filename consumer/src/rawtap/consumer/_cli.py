"""The ``rawtap`` command line.

Every failure is one line on stderr (``rawtap: error: …``) and a non-zero
exit: 1 for a runtime failure (Redis down, sink unusable), 2 for bad usage or
settings. Tracebacks are only shown with ``--debug``.
"""

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, cast

import redis
import typer

from rawtap.consumer._accounting import ProducerBalance
from rawtap.consumer._dead_letters import get_dead_letter, list_dead_letters, requeue
from rawtap.consumer._demo import run_demo
from rawtap.consumer._read import (
    ExportReport,
    export_jsonl,
    export_parquet,
    format_time,
    iter_matching,
    parse_time,
    render_show,
    resolve_record,
)
from rawtap.consumer._read import (
    rederive as run_rederive,
)
from rawtap.consumer._redis import connect, describe
from rawtap.consumer._retention import purge_older_than
from rawtap.consumer._sink import RecordQuery, RecordSummary, Store, open_sink
from rawtap.consumer._stats import gather
from rawtap.consumer._worker import Worker
from rawtap.shared import (
    ConfigError,
    EndState,
    RawtapError,
    StreamNames,
    WorkerSettings,
    display_url,
    load_settings,
    parse_duration,
    range_count,
    scrub_text,
)

app = typer.Typer(
    name="rawtap",
    help="Record every byte LLM providers send back: workers, inspection and a demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RedisUrl = Annotated[
    str | None, typer.Option("--redis-url", help="Redis URL [env: RAWTAP_REDIS_URL]")
]
Prefix = Annotated[
    str | None,
    typer.Option("--stream-prefix", help="Stream key prefix [env: RAWTAP_STREAM_PREFIX]"),
]
Group = Annotated[str | None, typer.Option("--group", help="Consumer group [env: RAWTAP_GROUP]")]
SinkUrl = Annotated[
    str | None,
    typer.Option("--sink", help="Sink URL, e.g. sqlite:///rawtap.db [env: RAWTAP_SINK_URL]"),
]
ShardCount = Annotated[
    int | None,
    typer.Option(
        "--shard-count",
        help="Shard streams producers write (rawtap:{0} ...), as they are configured "
        "[env: RAWTAP_SHARDS]",
    ),
]
Cluster = Annotated[
    bool | None,
    typer.Option(
        "--cluster/--no-cluster",
        help="Use the Redis Cluster client (implied by redis+cluster:// URLs) "
        "[env: RAWTAP_CLUSTER]",
    ),
]

_debug = False


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"rawtap: error: {scrub_text(message)}", err=True)
    sys.exit(code)


class _ScrubbingFormatter(logging.Formatter):
    """Log lines (tracebacks included) with every URL's password hidden."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
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
        typer.Option("--consumer", help="Stable consumer name [env: RAWTAP_CONSUMER]"),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Entries per read and commit [env: RAWTAP_BATCH_SIZE]"),
    ] = None,
    block_ms: Annotated[
        int | None, typer.Option("--block-ms", help="Blocking read time [env: RAWTAP_BLOCK_MS]")
    ] = None,
    shard_count: ShardCount = None,
    shards: Annotated[
        str | None,
        typer.Option(
            "--shards",
            help="Read only these shards, e.g. 0-3 or 0,2,5 (default: all) "
            "[env: RAWTAP_READ_SHARDS]",
        ),
    ] = None,
    cluster: Cluster = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
) -> None:
    """Consume the shard streams into the sink until SIGTERM/SIGINT (then exit 0)."""
    _setup_logging(log_level)
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
    )
    sink_obj = open_sink(settings.sink_url)
    client = connect(settings, name=f"rawtap-worker:{settings.consumer}")
    try:
        client.ping()
    except redis.RedisError as e:
        sink_obj.close()
        _fail(describe(e, settings.redis_url))
    names = StreamNames(settings.stream_prefix)
    logging.getLogger("rawtap.consumer").info(
        "rawtap worker %s: %s -> %s (group %s)",
        settings.consumer,
        ", ".join(names.shard(k) for k in settings.assigned_shards),
        display_url(settings.sink_url),
        settings.group,
    )
    with sink_obj:
        Worker(settings, sink=sink_obj, client=client).run(handle_signals=True)
    client.close()


@app.command()
def stats(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    sink: SinkUrl = None,
    shard_count: ShardCount = None,
    cluster: Cluster = None,
    lag_warn: Annotated[
        int, typer.Option("--lag-warn", min=1, help="Name shards with at least this many unread.")
    ] = 10_000,
    stall_s: Annotated[
        float,
        typer.Option(
            "--stall-s", min=0, help="Name shards with unread entries nobody read for this long."
        ),
    ] = 30.0,
) -> None:
    """Show each shard's length, lag and pending, dead letters, and rows in the sink."""
    settings = load_settings(
        WorkerSettings,
        redis_url=redis_url,
        stream_prefix=stream_prefix,
        sink_url=sink,
        shards=shard_count,
        cluster=cluster,
    )
    names = StreamNames(settings.stream_prefix)
    client = connect(settings, name="rawtap-cli")
    sink_obj = open_sink(settings.sink_url) if sink or "RAWTAP_SINK_URL" in os.environ else None
    sink_reconciliation: list[ProducerBalance] = []
    try:
        figures = gather(client, names.shards(settings.shards), names.dead_letters, sink_obj)
        if sink_obj is not None:
            sink_reconciliation = sink_obj.reconcile()
    except redis.RedisError as e:
        _fail(describe(e, settings.redis_url))
    finally:
        client.close()
        if sink_obj is not None:
            sink_obj.close()
    if len(figures.shards) > 1:
        typer.echo(
            f"{len(figures.shards)} shards: length {figures.length}, unread {figures.backlog}, "
            f"pending {figures.pending}"
        )
    lagging = []
    for shard in figures.shards:
        typer.echo(
            f"stream {shard.stream}: length {shard.length}, unread {shard.backlog}, "
            f"pending {shard.pending}"
        )
        if shard.trimmed_before_delivery:
            typer.echo(
                f"  WARNING: {shard.trimmed_before_delivery} entries were trimmed by MAXLEN "
                "before a group read them"
            )
        if not shard.groups:
            typer.echo("  no consumer group yet (no worker has started)")
        for g in shard.groups:
            lag = "n/a (Redis < 7)" if g.lag is None else str(g.lag)
            typer.echo(
                f"  group {g.name}: consumers {g.consumers}, pending {g.pending}, lag {lag}, "
                f"last delivered {g.last_delivered_id}"
            )
        why = shard.lagging(lag_warn, int(stall_s * 1000))
        if why is not None:
            lagging.append((shard, why))
    for shard, why in lagging:
        typer.echo(f"WARNING: shard {shard.shard} ({shard.stream}) lags: {why}")
    if len(figures.shards) > 1 and lagging:
        typer.echo("lagging shards: " + ",".join(str(shard.shard) for shard, _ in lagging))
    typer.echo(f"dead letters ({names.dead_letters}): {figures.dead_letters}")
    if sink_obj is not None:
        typer.echo(f"sink {display_url(settings.sink_url)}: {figures.stored} records")
        _print_reconciliation(sink_reconciliation)


def _print_reconciliation(balances: list[ProducerBalance]) -> None:
    if not balances:
        return
    accepted = sum(b.accepted or 0 for b in balances)
    stored = sum(b.stored for b in balances)
    dead = sum(b.dead_lettered for b in balances)
    reasons: dict[str, int] = {}
    for b in balances:
        for reason, n in b.dropped.items():
            reasons[reason] = reasons.get(reason, 0) + n
        if b.missing:
            reasons["missing"] = reasons.get("missing", 0) + range_count(b.missing)
    lost = sum(reasons.values())
    purged = sum(b.purged for b in balances)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    typer.echo(
        f"reconciliation over {len(balances)} producers: accepted {accepted} = "
        f"stored {stored} + dead-lettered {dead} + lost {lost}"
        + (f" ({detail})" if detail else "")
        + (f" + purged by retention {purged}" if purged else "")
    )
    for b in balances:
        if b.missing or b.dropped or b.accepted is None:
            shown = ", ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in b.missing[:5])
            more = f" (+{len(b.missing) - 5} ranges)" if len(b.missing) > 5 else ""
            known = "unknown (no report yet)" if b.accepted is None else str(b.accepted)
            typer.echo(
                f"  producer {b.producer_id}: accepted {known}, stored {b.stored}, "
                f"dead {b.dead_lettered}, dropped {dict(b.dropped)}"
                + (f", missing seqs {shown}{more}" if b.missing else "")
            )


dead_letters_app = typer.Typer(help="Inspect and requeue dead letters.", no_args_is_help=True)
app.add_typer(dead_letters_app, name="dead-letters")


def _dead_letter_client(redis_url: str | None, stream_prefix: str | None) -> tuple[Any, str]:
    settings = load_settings(WorkerSettings, redis_url=redis_url, stream_prefix=stream_prefix)
    return connect(settings, name="rawtap-cli"), StreamNames(settings.stream_prefix).dead_letters


@dead_letters_app.command("list")
def dead_letters_list(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    limit: Annotated[int, typer.Option("--limit", help="How many to show.")] = 50,
) -> None:
    """List dead letters, oldest first."""
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        letters = list_dead_letters(client, stream, limit)
    if not letters:
        typer.echo(f"no dead letters in {stream}")
    for d in letters:
        typer.echo(
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
    typer.echo(
        f"id {letter.id}\norigin {letter.origin_stream} {letter.origin_id}\n"
        f"deliveries {letter.deliveries}\nerror {letter.error}"
    )
    for name, value in letter.fields.items():
        preview = value[:200].decode("utf-8", "backslashreplace")
        typer.echo(
            f"field {name.decode('utf-8', 'backslashreplace')} ({len(value)} bytes): "
            f"{preview}{'...' if len(value) > 200 else ''}"
        )


@dead_letters_app.command("requeue")
def dead_letters_requeue(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="Ids to requeue.")] = None,
    requeue_all: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
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
    count: Annotated[int, typer.Option("--count", "-n", help="SDK calls to make.")] = 1000,
    sink: Annotated[str, typer.Option("--sink", help="Sink URL.")] = "sqlite:///rawtap-demo.db",
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="Use this Redis instead of starting a private one."),
    ] = None,
) -> None:
    """Run the whole pipeline locally (private Redis, worker, SQLite) and report."""
    report = run_demo(count, sink, redis_url)
    typer.echo(report.render())


# -- the read side ---------------------------------------------------------------------

Session = Annotated[str | None, typer.Option("--session", help="Only this session id.")]
Provider = Annotated[str | None, typer.Option("--provider", help="Only this provider.")]
Model = Annotated[str | None, typer.Option("--model", help="Only this model (derived).")]
Status = Annotated[int | None, typer.Option("--status", help="Only this HTTP status.")]
EndStateOpt = Annotated[
    str | None,
    typer.Option(
        "--end-state",
        help="Only this end state: " + ", ".join(e.value for e in EndState) + ".",
    ),
]
Since = Annotated[
    str | None,
    typer.Option("--since", help="Started at or after: 2h, 30d (ago) or an ISO date/time."),
]
Until = Annotated[
    str | None, typer.Option("--until", help="Started before: 2h, 30d (ago) or an ISO date/time.")
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar (default: when on a terminal)."),
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


def _store(sink: str | None, migrate: bool = False) -> Store:
    return open_sink(load_settings(WorkerSettings, sink_url=sink).sink_url, migrate=migrate)


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
        body.append(
            (
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
        )
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
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Oldest first.")] = False,
) -> None:
    """List stored records (newest first) as a table."""
    query = _query(session, provider, model, status, end_state, since, until)
    with _store(sink) as store:
        rows = store.summaries(query, limit=limit, newest_first=not oldest_first)
    if not rows:
        typer.echo("no records match", err=True)
        return
    typer.echo(_table(rows))


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(help="Record id, or a unique prefix of one.")],
    sink: SinkUrl = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Write the exact bytes the provider sent to stdout.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The record as one JSON line (the shared schema).")
    ] = False,
) -> None:
    """Show one record: what it is, its derived fields and its decoded body."""
    with _store(sink) as store:
        stored = resolve_record(store, record_id)
    if raw:
        sys.stdout.buffer.write(stored.record.body)
        sys.stdout.buffer.flush()
    elif as_json:
        from rawtap.consumer._read import jsonl_line

        sys.stdout.buffer.write(jsonl_line(stored, with_derived=True))
        sys.stdout.buffer.flush()
    else:
        typer.echo(render_show(stored))


@app.command()
def export(
    sink: SinkUrl = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write; - for stdout (JSON Lines only).")
    ] = "-",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="jsonl, or parquet (needs pyarrow).")
    ] = "jsonl",
    with_derived: Annotated[
        bool, typer.Option("--derived", help="JSON Lines: add a `derived` key to each line.")
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
    if fmt not in ("jsonl", "parquet"):
        raise ConfigError(f"--format {fmt!r}: use jsonl or parquet")
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
        str, typer.Option("--older-than", help="Delete records that started longer ago: 30d, 12h.")
    ],
    sink: SinkUrl = None,
) -> None:
    """Delete records older than a given age (PostgreSQL by day: whole partitions)."""
    age = parse_duration(older_than)
    with _store(sink) as store:
        deleted = purge_older_than(store, age)
    typer.echo(f"deleted {deleted} records older than {older_than}")


@app.command()
def rederive(
    sink: SinkUrl = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Re-read every matching record, not only stale ones.")
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
    with _store(sink) as store:
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
        typer.Option("--partition", help="PostgreSQL, new stores only: none or day."),
    ] = None,
) -> None:
    """Create or upgrade the store's schema (workers also do this when they start)."""
    url = load_settings(WorkerSettings, sink_url=sink).sink_url
    if partition is not None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("--partition applies to PostgreSQL stores only")
        url += ("&" if "?" in url else "?") + f"partition={partition}"
    with open_sink(url, migrate=True) as store:
        version = getattr(store, "schema_version", "?")
    typer.echo(f"store {display_url(url.split('?')[0])} is at schema version {version}")


@app.command()
def replay(
    sink: SinkUrl = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 8765,
    match: Annotated[
        str, typer.Option("--match", help="request (method+path+body), path, or sequence.")
    ] = "request",
    timing: Annotated[
        bool, typer.Option("--timing", help="Send stream chunks at their recorded times.")
    ] = False,
    speed: Annotated[float, typer.Option("--speed", help="Timing speed-up factor.")] = 1.0,
    max_connections: Annotated[
        int,
        typer.Option("--max-connections", help="Connections served at once; more get a 503."),
    ] = 128,
    idle_timeout: Annotated[
        float,
        typer.Option("--idle-timeout", help="Seconds an idle connection is kept open."),
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

    if match not in ("request", "path", "sequence"):
        raise ConfigError(f"--match {match!r}: use request, path or sequence")
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
    typer.echo(f"rawtap: error: {scrub_text(message)}", err=True)
    sys.exit(code)


def main() -> None:
    """Entry point of the ``rawtap`` script: run the app, turning errors into one line."""
    try:
        app()
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
