"""``rawtap worker`` and ``rawtap migrate``: run a consumer, create or upgrade a store."""

import logging
from typing import Annotated

import typer

from rawtap.consumer.cli._app import app
from rawtap.consumer.cli._logs import LOG_FORMATS, LOG_LEVELS, setup_logging
from rawtap.consumer.cli._options import (
    Cluster,
    Group,
    Prefix,
    RedisUrl,
    ShardCount,
    SinkUrl,
    choice,
    setting,
)
from rawtap.consumer.store import (
    open_sink,
)
from rawtap.consumer.worker import (
    Worker,
)
from rawtap.shared import (
    ConfigError,
    StreamNames,
    WorkerSettings,
    display_url,
    load_settings,
)


@app.command()
def worker(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    group: Group = None,
    sink: SinkUrl = None,
    consumer: Annotated[
        str | None,
        setting("--consumer", field="consumer", help="Stable consumer name."),
    ] = None,
    batch_size: Annotated[
        int | None,
        setting("--batch-size", field="batch_size", help="Entries per read and commit."),
    ] = None,
    block_ms: Annotated[
        int | None, setting("--block-ms", field="block_ms", help="Blocking read time (ms).")
    ] = None,
    shard_count: ShardCount = None,
    shards: Annotated[
        str | None,
        setting(
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
            callback=choice(*LOG_LEVELS),
            envvar="RAWTAP_LOG_LEVEL",
            show_envvar=True,
            show_default=True,
            help="Log this level and above.",
        ),
    ] = "info",
    log_format: Annotated[
        str | None,
        setting(
            "--log-format",
            field="log_format",
            callback=choice(*LOG_FORMATS),
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
def migrate(
    sink: SinkUrl = None,
    partition: Annotated[
        str | None,
        typer.Option(
            "--partition",
            callback=choice("none", "day"),
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
