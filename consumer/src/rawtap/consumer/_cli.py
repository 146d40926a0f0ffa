"""The ``rawtap`` command line.

Every failure is one line on stderr (``rawtap: error: …``) and a non-zero
exit: 1 for a runtime failure (Redis down, sink unusable), 2 for bad usage or
settings. Tracebacks are only shown with ``--debug``.
"""

import logging
import os
import sys
from typing import Annotated, Any, NoReturn

import redis
import typer

from rawtap.consumer._accounting import ProducerBalance
from rawtap.consumer._dead_letters import get_dead_letter, list_dead_letters, requeue
from rawtap.consumer._demo import run_demo
from rawtap.consumer._redis import connect, describe
from rawtap.consumer._sink import open_sink
from rawtap.consumer._stats import gather
from rawtap.consumer._worker import Worker
from rawtap.shared import (
    ConfigError,
    RawtapError,
    StreamNames,
    WorkerSettings,
    load_settings,
    range_count,
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

_debug = False


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"rawtap: error: {message}", err=True)
    sys.exit(code)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
) -> None:
    """Consume the stream into the sink until SIGTERM/SIGINT (then exit 0)."""
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
    )
    sink_obj = open_sink(settings.sink_url)
    client = connect(settings, name=f"rawtap-worker:{settings.consumer}")
    try:
        client.ping()
    except redis.RedisError as e:
        sink_obj.close()
        _fail(describe(e, settings.redis_url))
    logging.getLogger("rawtap.consumer").info(
        "rawtap worker %s: %s -> %s (group %s)",
        settings.consumer,
        StreamNames(settings.stream_prefix).shard(0),
        settings.sink_url,
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
) -> None:
    """Show stream length, group lag and pending, dead letters and rows in the sink."""
    settings = load_settings(
        WorkerSettings, redis_url=redis_url, stream_prefix=stream_prefix, sink_url=sink
    )
    names = StreamNames(settings.stream_prefix)
    client = connect(settings, name="rawtap-cli")
    sink_obj = open_sink(settings.sink_url) if sink or "RAWTAP_SINK_URL" in os.environ else None
    sink_reconciliation: list[ProducerBalance] = []
    try:
        figures = gather(client, names.shard(0), names.dead_letters, sink_obj)
        if sink_obj is not None:
            sink_reconciliation = sink_obj.reconcile()
    except redis.RedisError as e:
        _fail(describe(e, settings.redis_url))
    finally:
        client.close()
        if sink_obj is not None:
            sink_obj.close()
    typer.echo(
        f"stream {figures.stream}: length {figures.length}, dead letters {figures.dead_letters}"
    )
    if figures.trimmed_before_delivery:
        typer.echo(
            f"  WARNING: {figures.trimmed_before_delivery} entries were trimmed by MAXLEN "
            "before a group read them"
        )
    if not figures.groups:
        typer.echo("  no consumer group yet (no worker has started)")
    for g in figures.groups:
        lag = "n/a (Redis < 7)" if g.lag is None else str(g.lag)
        typer.echo(
            f"  group {g.name}: consumers {g.consumers}, pending {g.pending}, lag {lag}, "
            f"last delivered {g.last_delivered_id}"
        )
    if sink_obj is not None:
        typer.echo(f"sink {settings.sink_url}: {figures.stored} records")
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
    detail = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    typer.echo(
        f"reconciliation over {len(balances)} producers: accepted {accepted} = "
        f"stored {stored} + dead-lettered {dead} + lost {lost}" + (f" ({detail})" if detail else "")
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
    count: Annotated[int, typer.Option("--count", "-n", help="Records to send through.")] = 3000,
    sink: Annotated[str, typer.Option("--sink", help="Sink URL.")] = "sqlite:///rawtap-demo.db",
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="Use this Redis instead of starting a private one."),
    ] = None,
) -> None:
    """Run the whole pipeline locally (private Redis, worker, SQLite) and report."""
    report = run_demo(count, sink, redis_url)
    typer.echo(report.render())


def main() -> None:
    """Entry point of the ``rawtap`` script: run the app, turning errors into one line."""
    try:
        app()
    except ConfigError as e:
        if _debug:
            raise
        _fail(str(e), 2)
    except RawtapError as e:
        if _debug:
            raise
        _fail(str(e))
    except redis.RedisError as e:
        if _debug:
            raise
        _fail(describe(e, "the configured URL"))
    except OSError as e:
        if _debug:
            raise
        _fail(f"{e.strerror or e} ({e.filename or 'I/O'})")
