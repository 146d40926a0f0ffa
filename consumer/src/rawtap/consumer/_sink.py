"""The Sink protocol every store implements, and opening one from a URL."""

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from rawtap.consumer._accounting import Accounting, ProducerBalance
from rawtap.shared import ConfigError, RawtapError, Record


class SinkError(RawtapError):
    """The sink could not commit or read; the message says what to check.

    ``transient`` errors (connection lost, database locked, disk full) make the
    worker back off and retry the same batch, acknowledging nothing. Other
    errors are the data's fault: the worker splits the batch to find the
    records the sink refuses and dead-letters them.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@runtime_checkable
class Sink(Protocol):
    """Where records are committed. Implementations: SqliteSink (PostgresSink to come).

    ``write`` commits a batch in one transaction and is idempotent on
    ``record_id``: writing the same record twice stores one row.
    """

    def write(self, records: Sequence[Record], persisted_at_ns: int) -> int:
        """Commit ``records`` atomically; return how many were new."""
        ...

    def write_accounting(self, accounting: Accounting) -> None:
        """Commit dead letters, producer reports and trimmed ids atomically (idempotent)."""
        ...

    def reconcile(self) -> list[ProducerBalance]:
        """Per-producer balances (see :mod:`rawtap.consumer._reconcile`)."""
        ...

    def ledger_counts(self) -> dict[str, int]:
        """``dead_lettered`` (not stored later) and ``trimmed`` totals."""
        ...

    def get(self, record_id: str) -> Record | None:
        """The stored record with this id, if any."""
        ...

    def count(self, producer_id: str | None = None) -> int:
        """How many records are stored (of one producer, if given)."""
        ...

    def iter_stored(self, producer_id: str | None = None) -> Iterator[tuple[Record, int]]:
        """Stored records (of one producer, if given) and ``persisted_at_ns``, oldest first."""
        ...

    def close(self) -> None:
        """Release the connection; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_sink(url: str) -> Sink:
    """Open the sink a URL names: ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``."""
    if url.startswith("sqlite://"):
        from rawtap.consumer._sqlite import SqliteSink

        return SqliteSink.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("the PostgreSQL sink is not in this release yet; use sqlite:///path.db")
    raise ConfigError(f"unknown sink URL {url!r}; expected sqlite:///path.db")
