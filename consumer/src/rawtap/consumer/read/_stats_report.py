"""``rawtap stats --json`` and the exit codes a monitor can act on.

The document (one JSON object) and the codes are documented in docs/cli.md;
change them only compatibly (add fields, never rename).
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from rawtap.consumer.read._stats import PipelineFigures
from rawtap.consumer.store import ProducerBalance
from rawtap.shared import range_count


class StatsExit(IntEnum):
    """Exit codes of ``rawtap stats``; the most severe finding wins."""

    OK = 0
    """Everything read; nothing lost or missing; no shard over ``--max-lag``."""
    USAGE = 2
    """Bad options or settings (as every command)."""
    REDIS_UNREACHABLE = 3
    """Redis could not be read: nothing else was judged."""
    STORE_UNAVAILABLE = 4
    """The store is unreachable, missing, or needs ``rawtap migrate``."""
    LOST = 5
    """Reconciliation found records lost (dropped by a producer, or missing seqs)."""
    LAG = 6
    """A shard has more than ``--max-lag`` entries unread (and nothing was lost)."""


STATUS = {
    StatsExit.OK: "ok",
    StatsExit.USAGE: "usage",
    StatsExit.REDIS_UNREACHABLE: "redis_unreachable",
    StatsExit.STORE_UNAVAILABLE: "store_unavailable",
    StatsExit.LOST: "lost",
    StatsExit.LAG: "lag",
}
"""The ``status`` field of the JSON document for each exit code."""


@dataclass(frozen=True, slots=True)
class Totals:
    """The reconciliation summed over producers."""

    producers: int
    accepted: int
    stored: int
    dead_lettered: int
    lost: int
    lost_by_reason: dict[str, int]
    purged: int
    unreported: int
    """Producers that sent no report yet (their ``accepted`` is unknown)."""


def totals(balances: list[ProducerBalance]) -> Totals:
    """Sum the per-producer balances (``missing`` seqs are lost with reason ``missing``)."""
    reasons: dict[str, int] = {}
    for b in balances:
        for reason, n in b.dropped.items():
            reasons[reason] = reasons.get(reason, 0) + n
        if b.missing:
            reasons["missing"] = reasons.get("missing", 0) + range_count(b.missing)
    return Totals(
        producers=len(balances),
        accepted=sum(b.accepted or 0 for b in balances),
        stored=sum(b.stored for b in balances),
        dead_lettered=sum(b.dead_lettered for b in balances),
        lost=sum(reasons.values()),
        lost_by_reason=dict(sorted(reasons.items())),
        purged=sum(b.purged for b in balances),
        unreported=sum(1 for b in balances if b.accepted is None),
    )


def verdict(
    figures: PipelineFigures, balances: list[ProducerBalance] | None, max_lag: int | None
) -> StatsExit:
    """The exit code for what was read: lost records first, then lag.

    Records a producer dropped are lost for sure. Missing ones (below
    ``accepted``, neither stored nor dropped) may still be in the stream, unread
    or pending: they count as lost only when there are more of them than entries
    left in Redis, so a lagging shard alone is ``lag``, never ``lost``.
    """
    if balances:
        t = totals(balances)
        missing = t.lost_by_reason.get("missing", 0)
        in_flight = figures.backlog + figures.pending
        if t.lost - missing > 0 or missing > in_flight:
            return StatsExit.LOST
    if max_lag is not None and any(s.backlog > max_lag for s in figures.shards):
        return StatsExit.LAG
    return StatsExit.OK


def document(
    *,
    redis: str,
    stream_prefix: str,
    store: str | None,
    figures: PipelineFigures,
    balances: list[ProducerBalance] | None,
    lagging: dict[int, str],
    code: StatsExit,
) -> dict[str, Any]:
    """The ``--json`` document (URLs already masked by the caller)."""
    t = None if balances is None else totals(balances)
    return {
        "status": STATUS[code],
        "exit_code": int(code),
        "redis": redis,
        "stream_prefix": stream_prefix,
        "store": store,
        "length": figures.length,
        "unread": figures.backlog,
        "pending": figures.pending,
        "dead_letters": figures.dead_letters,
        "stored": figures.stored,
        "shards": [
            {
                "shard": s.shard,
                "stream": s.stream,
                "length": s.length,
                "unread": s.backlog,
                "pending": s.pending,
                "trimmed_before_delivery": s.trimmed_before_delivery,
                "lagging": lagging.get(s.shard),
                "groups": [
                    {
                        "name": g.name,
                        "consumers": g.consumers,
                        "pending": g.pending,
                        "lag": g.lag,
                        "last_delivered_id": g.last_delivered_id,
                        "idle_ms": g.idle_ms,
                    }
                    for g in s.groups
                ],
            }
            for s in figures.shards
        ],
        "reconciliation": None
        if t is None or balances is None
        else {
            "producers": t.producers,
            "accepted": t.accepted,
            "stored": t.stored,
            "dead_lettered": t.dead_lettered,
            "lost": t.lost,
            "lost_by_reason": t.lost_by_reason,
            "purged": t.purged,
            "unreported": t.unreported,
            "unbalanced_producers": [
                {
                    "producer_id": b.producer_id,
                    "accepted": b.accepted,
                    "stored": b.stored,
                    "dead_lettered": b.dead_lettered,
                    "dropped": dict(b.dropped),
                    "missing": [[lo, hi] for lo, hi in b.missing],
                }
                for b in balances
                if b.missing or b.dropped or b.accepted is None
            ],
        },
    }


def error_document(code: StatsExit, message: str, redis: str, store: str | None) -> dict[str, Any]:
    """The ``--json`` document when Redis or the store could not be read."""
    return {
        "status": STATUS[code],
        "exit_code": int(code),
        "error": message,
        "redis": redis,
        "store": store,
    }
