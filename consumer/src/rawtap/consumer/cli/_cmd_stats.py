"""``rawtap stats``: the pipeline's figures, reconciliation and a monitor's exit code."""

import json
import os
import sys
from typing import Annotated, NoReturn

import redis
import typer

from rawtap.consumer.cli._app import app
from rawtap.consumer.cli._options import Cluster, Prefix, RedisUrl, ShardCount, SinkUrl
from rawtap.consumer.cli._output import fail, say
from rawtap.consumer.read import (
    PipelineFigures,
    StatsExit,
    document,
    error_document,
    gather,
    totals,
    verdict,
)
from rawtap.consumer.store import (
    ProducerBalance,
    SinkError,
    open_sink,
)
from rawtap.consumer.worker import (
    connect,
    describe,
)
from rawtap.shared import (
    StreamNames,
    WorkerSettings,
    display_url,
    load_settings,
    scrub_text,
)


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
        fail(message, int(code))

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
    say(f"redis {shown_redis} (stream prefix {names.prefix})")
    say(
        f"store {shown_store} (read-only)"
        if shown_store is not None
        else "store: none given (--sink or RAWTAP_SINK_URL to count and reconcile)"
    )
    if len(figures.shards) > 1:
        say(
            f"{len(figures.shards)} shards: length {figures.length}, unread {figures.backlog}, "
            f"pending {figures.pending}"
        )
    for shard in figures.shards:
        say(
            f"stream {shard.stream}: length {shard.length}, unread {shard.backlog}, "
            f"pending {shard.pending}"
        )
        if shard.trimmed_before_delivery:
            say(
                f"  WARNING: {shard.trimmed_before_delivery} entries were trimmed by MAXLEN "
                "before a group read them"
            )
        if not shard.groups:
            say("  no consumer group yet (no worker has started)")
        for g in shard.groups:
            lag = "n/a (Redis < 7)" if g.lag is None else str(g.lag)
            say(
                f"  group {g.name}: consumers {g.consumers}, pending {g.pending}, lag {lag}, "
                f"last delivered {g.last_delivered_id}"
            )
    by_shard = {shard.shard: shard for shard in figures.shards}
    for k, why in lagging.items():
        say(f"WARNING: shard {k} ({by_shard[k].stream}) lags: {why}")
    if len(figures.shards) > 1 and lagging:
        say("lagging shards: " + ",".join(str(k) for k in lagging))
    say(f"dead letters ({names.dead_letters}): {figures.dead_letters}")
    if shown_store is not None:
        say(f"sink {shown_store}: {figures.stored} records")
        _print_reconciliation(balances or [])


def _print_reconciliation(balances: list[ProducerBalance]) -> None:
    if not balances:
        return
    t = totals(balances)
    detail = ", ".join(f"{k} {v}" for k, v in t.lost_by_reason.items())
    say(
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
            say(
                f"  producer {b.producer_id}: accepted {known}, stored {b.stored}, "
                f"dead {b.dead_lettered}, dropped {dict(b.dropped)}"
                + (f", missing seqs {shown}{more}" if b.missing else "")
            )
