"""``rawtap demo`` and ``rawtap replay``, added to the consumer's ``rawtap`` CLI.

The CLI calls :func:`register` through the ``rawtap.commands`` entry point.
"""

import signal
from typing import Annotated, cast

import typer

from rawtap.consumer.cli import (
    ALL_RECORDS,
    SinkUrl,
    choice,
    fail,
    open_store,
    record_filters,
    say,
)
from rawtap.consumer.read import (
    iter_matching,
)
from rawtap.consumer.store import RecordQuery
from rawtap.shared import (
    ConfigError,
)
from rawtap.tools._demo import run_demo


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
    say(report.render())


@record_filters
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
            callback=choice("request", "path", "sequence"),
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
    query: RecordQuery = ALL_RECORDS,
) -> None:
    """Serve stored records over HTTP in each provider's wire format, until SIGTERM/SIGINT."""
    from rawtap.tools.replay import MatchMode, ReplayServer

    match = match.lower()
    if speed <= 0:
        raise ConfigError("--speed must be greater than zero")
    if max_connections <= 0:
        raise ConfigError("--max-connections must be greater than zero")
    if idle_timeout <= 0:
        raise ConfigError("--idle-timeout must be greater than zero")
    with open_store(sink) as store:
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
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")

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


def register(app: typer.Typer) -> None:
    """Add ``demo`` and ``replay`` to the ``rawtap`` app."""
    app.command()(demo)
    app.command()(replay)
