"""What every part of the worker counts into, and the backoff they share."""

from dataclasses import asdict, dataclass

BACKOFF_FIRST_S = 0.1
"""First wait after a Redis or sink failure; doubled on each failure in a row."""
BACKOFF_MAX_S = 5.0


@dataclass(slots=True)
class WorkerStats:
    """What a worker has done since it started."""

    batches: int = 0
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    reports: int = 0
    dead_lettered: int = 0
    trimmed_lost: int = 0
    claimed: int = 0
    acked: int = 0
    sink_errors: int = 0
    redis_errors: int = 0
    groups_created: int = 0
    consumers_removed: int = 0
    derive_failures: int = 0
    purged: int = 0
    ledger_refused: int = 0

    def summary(self) -> str:
        """One dense line of counters for logs."""
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())
