"""The ``rawtap`` command line.

Every failure is one line on stderr (``rawtap: error: …``) and a non-zero
exit: 1 for a runtime failure (Redis down, sink unusable), 2 for bad usage or
settings. Tracebacks are only shown with ``--debug``.
"""

import logging
import os
import sys
from typing import Annotated, NoReturn

import redis
import typer

from rawtap.consumer._demo import run_demo
from rawtap.consumer._redis import connect, describe
from rawtap.consumer._sink import open_sink
from rawtap.consumer._stats import gather
from rawtap.consumer._worker import Worker
from rawtap.shared import ConfigError, RawtapError, StreamNames, WorkerSettings, load_settings

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
    try:
        figures = gather(client, names.shard(0), names.dead_letters, sink_obj)
    except redis.RedisError as e:
        _fail(describe(e, settings.redis_url))
    finally:
        client.close()
        if sink_obj is not None:
            sink_obj.close()
    typer.echo(
        f"stream {figures.stream}: length {figures.length}, dead letters {figures.dead_letters}"
    )
    if not figures.groups:
        typer.echo("  no consumer group yet (no worker has started)")
    for g in figures.groups:
        lag = "n/a (Redis < 7)" if g.lag is None else str(g.lag)
        typer.echo(
            f"  group {g.name}: consumers {g.consumers}, pending {g.pending}, lag {lag}, "
            f"last delivered {g.last_delivered_id}"
        )
    if figures.stored is not None:
        typer.echo(f"sink {settings.sink_url}: {figures.stored} records")


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
